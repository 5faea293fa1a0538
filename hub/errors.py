"""The hub's exceptions, in one place.

::

    HubError
    ├── DomainError               a use case refuses; each edge maps it to its own answer (the
    │   │                         API to a status and the error envelope, the AMQP ingest to a
    │   │                         dead letter's reason, the console to a page)
    │   ├── NotFound              absent, or another store's
    │   │   └── UnknownStore      no store has that name
    │   ├── Conflict              the resource's state forbids the change
    │   │   └── IdempotencyConflict  a client id reused for a different event
    │   ├── PayloadTooLarge       an event over its size limit
    │   │   └── FanOutTooLarge    a publish that would create more jobs than one may
    │   ├── ValidationFailed      the input breaks rules: one (detail, source) per problem
    │   │   └── QuotaExceeded     the store has as many integrations as it may
    │   ├── Unauthenticated       a missing, malformed, unknown or revoked key, or an
    │   │                         unknown or expired access token
    │   ├── UnsupportedGrant      an OAuth grant type the hub does not serve (implicit, …)
    │   ├── PermissionDenied      the key's role lacks the permission, or names another store
    │   └── Overloaded            the process takes no more work now; come back shortly
    ├── ApiError                  the HTTP edge's own answers, rendered with their status
    │   ├── BadRequest            400 malformed JSON or query parameter
    │   ├── RequestTimeout        408 the body did not arrive within HUB_BODY_TIMEOUT
    │   ├── UnsupportedMediaType  415 a request body that is not JSON (or, for the token
    │   │                         endpoint, form-encoded)
    │   ├── TooManyRequests       429 the key's request rate is over HUB_API_RATE_LIMIT
    │   └── StorageUnavailable    503 the database cannot be reached
    ├── UnknownIntegrationType    no deliverer is registered for a type
    ├── MessageRejected           an AMQP message the ingest dead-letters (invalid, unauthorised)
    ├── ConfigurationError        settings that cannot work (bad URL, no embedded server)
    ├── SecretsUnavailable        a secret must be encrypted or decrypted but no HUB_SECRET_KEY
    ├── SecretsUnreadable         stored secrets that no key of HUB_SECRET_KEY decrypts
    ├── TargetUnavailable         a delivery target's part cannot be read now (a VAPID key)
    └── TargetRefused (OSError)   the SSRF guard refuses a delivery's address

Domain errors carry no HTTP status: `hub.api.errors` maps them to the API's statuses and titles.
"""

from __future__ import annotations

from dataclasses import dataclass

Problem = tuple[str, str | None]
"""One problem with some input: a sentence for people, and the field it is about (if any)."""


class HubError(Exception):
    """Base of every error the hub raises on purpose."""


# --- what a use case refuses -------------------------------------------------------------------


class DomainError(HubError):
    """A use case's refusal. `problems` lists what is wrong, each with the field it concerns."""

    default_detail = "The request cannot be carried out"

    def __init__(self, detail: str | None = None, *, source: str | None = None) -> None:
        detail = detail or self.default_detail
        super().__init__(detail)
        self.problems: list[Problem] = [(detail, source)]

    @property
    def detail(self) -> str:
        """Every problem's sentence, in one line."""
        return "; ".join(detail for detail, _ in self.problems)


class NotFound(DomainError):
    """Absent, or another store's: the two are indistinguishable to a caller."""

    default_detail = "The resource could not be found"


class UnknownStore(NotFound):
    """No store has this name (an admin key's `X-Hub-Store`, an AMQP message's `x-hub-store`)."""

    def __init__(self, name: str) -> None:
        super().__init__(f"There is no store named {name!r}")
        self.name = name


class Conflict(DomainError):
    """The resource's state forbids the change (a disabled integration, a job in flight)."""


class IdempotencyConflict(Conflict):
    """A client id (an event's `id`, an `Idempotency-Key`, an AMQP `message_id`) that the store
    has seen with another event: one problem per event of the request that reuses one."""

    def __init__(self, problems: list[Problem]) -> None:
        super().__init__(problems[0][0], source=problems[0][1])
        self.problems = list(problems)


class PayloadTooLarge(DomainError):
    """An event payload over its size limit."""


class FanOutTooLarge(PayloadTooLarge):
    """A publish request whose events would create more jobs than `HUB_MAX_JOBS_PER_PUBLISH`."""


class ValidationFailed(DomainError):
    """The input breaks the rules; one problem per broken rule."""

    def __init__(self, problems: list[Problem]) -> None:
        """`problems` is a list of (detail, source field path)."""
        super().__init__(problems[0][0] if problems else "invalid input")
        self.problems = list(problems) or self.problems


class QuotaExceeded(ValidationFailed):
    """The store already has `HUB_MAX_INTEGRATIONS_PER_STORE` integrations."""

    def __init__(self, detail: str) -> None:
        super().__init__([(detail, None)])


class Unauthenticated(DomainError):
    """No key, or a malformed, unknown or revoked one; or an unknown or expired access token,
    or one whose key is revoked."""

    default_detail = "Unable to validate access token"


class UnsupportedGrant(DomainError):
    """An OAuth grant type the hub does not serve (`implicit`, `password`, …): only
    `client_credentials` gives an access token."""


class PermissionDenied(DomainError):
    """A valid key that may not do this: its `role` lacks the permission or, with
    `other_store`, only admin keys may act on another store than their own."""

    def __init__(self, detail: str, *, role: str, other_store: bool = False) -> None:
        super().__init__(detail)
        self.role = role
        self.other_store = other_store


class Overloaded(DomainError):
    """This process cannot take the work on now without making everyone wait (admission
    control); the caller should try again after `retry_after` seconds."""

    def __init__(self, detail: str, *, retry_after: int = 1) -> None:
        super().__init__(detail)
        self.retry_after = retry_after


# --- the HTTP edge's own answers ---------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class ErrorItem:
    """One entry of the `errors` array."""

    status: int
    title: str
    detail: str
    source: str | None = None


class ApiError(HubError):
    """An answer of the API's own (not a use case's), with its status and the spec's envelope."""

    status: int = 500
    title: str = "Internal Server Error"

    def __init__(self, detail: str, *, source: str | None = None) -> None:
        super().__init__(detail)
        self.items: list[ErrorItem] = [ErrorItem(self.status, self.title, detail, source)]
        self.headers: dict[str, str] = {}


class BadRequest(ApiError):
    status = 400
    title = "Bad Request"


class UnsupportedMediaType(ApiError):
    status = 415
    title = "Unsupported Media Type"

    def __init__(self, media: str, *, accepted: tuple[str, ...] = ("application/json",)) -> None:
        super().__init__(
            f"The request body is {media or 'of no media type'}; send "
            + " or ".join(accepted)
            + " and say so in Content-Type",
            source="Content-Type",
        )


class RequestTimeout(ApiError):
    status = 408
    title = "Request Timeout"

    def __init__(self, seconds: float) -> None:
        super().__init__(f"The request body did not arrive within {seconds:g} s (HUB_BODY_TIMEOUT)")
        self.headers = {"Connection": "close"}


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


# --- elsewhere ---------------------------------------------------------------------------------


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


class TargetUnavailable(HubError):
    """A part of a delivery target that is read when the target is built (a store's VAPID key)
    cannot be read now; the attempt fails with this text and is retried."""


class TargetRefused(HubError, OSError):
    """The SSRF guard refuses to connect to `address` (for `host`); `reason` is a readable
    sentence. An `OSError`, so that it travels through connection libraries' resolvers."""

    def __init__(self, host: str, address: str, reason: str) -> None:
        super().__init__(reason)
        self.host = host
        self.address = address
        self.reason = reason
