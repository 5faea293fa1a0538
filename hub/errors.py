"""The hub's exceptions, in one place.

::

    HubError
    ├── ApiError                  rendered as the spec's error envelope, with its status
    │   ├── BadRequest            400 malformed JSON or query parameter
    │   ├── Unauthorized          401 missing or unknown API key
    │   ├── Forbidden             403 the key lacks the role
    │   ├── NotFound              404 absent, or another store's
    │   ├── Conflict              409 the resource's state forbids the change
    │   ├── PayloadTooLarge       413 body or event over its limit
    │   ├── ValidationFailed      422 one error object per problem
    │   ├── TooManyRequests       429 the key's request rate is over HUB_API_RATE_LIMIT
    │   └── StorageUnavailable    503 the database cannot be reached
    ├── UnknownIntegrationType    no deliverer is registered for a type
    ├── MessageRejected           an AMQP message the ingest dead-letters (invalid, unauthorised)
    ├── ConfigurationError        settings that cannot work (bad URL, no embedded server)
    ├── SecretsUnavailable        a secret must be encrypted or decrypted but no HUB_SECRET_KEY
    ├── SecretsUnreadable         stored secrets that no key of HUB_SECRET_KEY decrypts
    └── TargetRefused (OSError)   the SSRF guard refuses a delivery's address
"""

from __future__ import annotations

from dataclasses import dataclass


class HubError(Exception):
    """Base of every error the hub raises on purpose."""


@dataclass(frozen=True, slots=True)
class ErrorItem:
    """One entry of the `errors` array."""

    status: int
    title: str
    detail: str
    source: str | None = None


class ApiError(HubError):
    """An error the API answers with the spec's envelope."""

    status: int = 500
    title: str = "Internal Server Error"

    def __init__(self, detail: str, *, source: str | None = None) -> None:
        super().__init__(detail)
        self.items: list[ErrorItem] = [ErrorItem(self.status, self.title, detail, source)]
        self.headers: dict[str, str] = {}


class BadRequest(ApiError):
    status = 400
    title = "Bad Request"


class Unauthorized(ApiError):
    status = 401
    title = "Unauthorized"

    def __init__(self, detail: str = "Unable to validate access token") -> None:
        super().__init__(detail)


class Forbidden(ApiError):
    status = 403
    title = "Forbidden"


class NotFound(ApiError):
    status = 404
    title = "Not Found"

    def __init__(self, detail: str = "The resource could not be found") -> None:
        super().__init__(detail)


class Conflict(ApiError):
    status = 409
    title = "Conflict"


class PayloadTooLarge(ApiError):
    status = 413
    title = "Payload Too Large"


class ValidationFailed(ApiError):
    status = 422
    title = "Validation Error"

    def __init__(self, problems: list[tuple[str, str | None]]) -> None:
        """`problems` is a list of (detail, source field path)."""
        super().__init__(problems[0][0] if problems else "invalid input")
        self.items = [ErrorItem(self.status, self.title, d, s) for d, s in problems]


class TooManyRequests(ApiError):
    status = 429
    title = "Too Many Requests"

    def __init__(self, retry_after: int) -> None:
        super().__init__(
            f"This key is over its rate limit; retry after {retry_after} s", source=None
        )
        self.headers = {"Retry-After": str(retry_after)}


class StorageUnavailable(ApiError):
    status = 503
    title = "Service Unavailable"

    def __init__(self, detail: str = "Storage is unavailable; try again shortly") -> None:
        super().__init__(detail)
        self.headers = {"Retry-After": "1"}


class UnknownIntegrationType(HubError):
    """No deliverer is registered for this `integration_type`."""

    def __init__(self, integration_type: str) -> None:
        super().__init__(f"no deliverer for integration_type {integration_type!r}")
        self.integration_type = integration_type


class MessageRejected(HubError):
    """An AMQP message that can never be stored as it is; `reason` goes into its dead letter."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


class ConfigurationError(HubError):
    """The settings cannot work as given."""


class SecretsUnavailable(HubError):
    """A secret must be encrypted or decrypted, but no `HUB_SECRET_KEY` is configured."""


class SecretsUnreadable(HubError):
    """A stored secret that no key of `HUB_SECRET_KEY` decrypts (the key was changed without
    keeping the old one, or the value was altered)."""


class TargetRefused(HubError, OSError):
    """The SSRF guard refuses to connect to `address` (for `host`); `reason` is a readable
    sentence. An `OSError`, so that it travels through connection libraries' resolvers."""

    def __init__(self, host: str, address: str, reason: str) -> None:
        super().__init__(reason)
        self.host = host
        self.address = address
        self.reason = reason
