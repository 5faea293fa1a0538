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
    │   └── StorageUnavailable    503 the database cannot be reached
    ├── UnknownIntegrationType    no deliverer is registered for a type
    └── ConfigurationError        settings that cannot work (bad URL, no embedded server)
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


class ConfigurationError(HubError):
    """The settings cannot work as given."""
