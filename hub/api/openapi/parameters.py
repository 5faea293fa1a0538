"""The OpenAPI document's shared parameters and error answers (`hub.api.openapi.operations`
names them by key)."""

from __future__ import annotations

from typing import Any

from deliverers.config import INTEGRATION_TYPES
from hub.api import filters
from hub.api.errors import api_error
from hub.api.http import DEFAULT_LIMIT, MAX_LIMIT
from hub.errors import (
    ApiError,
    BadRequest,
    Conflict,
    NotFound,
    PayloadTooLarge,
    PermissionDenied,
    RequestTimeout,
    StorageUnavailable,
    TooManyRequests,
    Unauthenticated,
    UnsupportedMediaType,
    ValidationFailed,
)
from hub.store.models import JOB_STATUSES

# --- parameters ---------------------------------------------------------------------------------

_FILTER_BOOL = {"type": "boolean"}
_BOOL_NOTE = " `true`/`false` (also `1`/`0`); anything else is a 400."


def _param(where: str, name: str, schema: dict[str, Any], description: str, **more: Any) -> Any:
    return {"name": name, "in": where, "description": description, "schema": schema, **more}


def _ep_filter(spec: filters.ListSpec, example: str) -> Any:
    """The `filter` parameter of a list, its fields and their operators read from `spec`."""
    fields = "; ".join(
        f"`{name}` ({found.kind.value}"
        + (": " + ", ".join(f"`{c}`" for c in found.choices) if found.choices else "")
        + "): "
        + ", ".join(f"`{op.value}`" for op in filters.OPERATORS[found.kind])
        for name, found in spec.fields.items()
    )
    return _param(
        "query",
        "filter",
        # No maxLength: the limit is the handler's (a 400), not the schema's.
        {"type": "string", "examples": [example]},
        "Elastic Path's filter syntax: `operator(field,value)` terms joined by `:`, all of "
        "which must hold. Operators: `eq`; `in` (one or more values); `like` (`*` matches any "
        "run of characters, case is ignored); `gt`, `ge`, `lt`, `le`. A value with `,`, `(`, "
        '`)` or `"` in it is written in double quotes (`\\"` and `\\\\` escape). Times are '
        "RFC 3339 with `Z` or an offset. Fields and the operators each takes: "
        f"{fields}. An unknown field or operator, an operator the field does not take, or a "
        "bad value is a 400 naming it (`source: filter`). At most 20 terms, 100 values per "
        "`in`, 4,096 characters. Combines (AND) with the `filter[...]` parameters.",
    )


def _sort(spec: filters.ListSpec) -> Any:
    keys = [k for key in spec.sortable for k in (key, f"-{key}")]
    return _param(
        "query",
        "sort",
        {"type": "string", "enum": keys},
        "Sort by this key, ascending, or descending with `-` first. Default: newest first "
        "(`-created_at`). Ties are broken by id, in the same direction, so pages are stable. "
        "Another key is a 400.",
    )


PARAMETERS: dict[str, Any] = {
    "IntegrationId": _param(
        "path",
        "id",
        {"type": "string", "format": "uuid"},
        "The integration's id. Not a UUID, or another store's: 404.",
        required=True,
    ),
    "EventId": _param(
        "path",
        "id",
        {"type": "string", "format": "uuid"},
        "The event's id (the hub's, not the client id). Not a UUID, or another store's: 404.",
        required=True,
    ),
    "JobId": _param(
        "path",
        "job_id",
        {"type": "string", "format": "uuid"},
        "The job's id (the webhook body's `id`). It must belong to the integration: else 404.",
        required=True,
    ),
    "ReplayId": _param(
        "path",
        "replay_id",
        {"type": "string", "format": "uuid"},
        "The replay's id. It must belong to the integration: else 404.",
        required=True,
    ),
    "PageOffset": _param(
        "query",
        "page[offset]",
        {"type": "integer", "minimum": 0, "maximum": 2**63 - 1, "default": 0},
        "0-based index of the first result. Negative, over 2^63-1 or not an integer: 400.",
    ),
    "PageLimit": _param(
        "query",
        "page[limit]",
        {"type": "integer", "minimum": 1, "maximum": MAX_LIMIT, "default": DEFAULT_LIMIT},
        f"Results per page, 1 to {MAX_LIMIT} (outside: 400, not clamped).",
    ),
    "FilterEnabled": _param(
        "query",
        "filter[enabled]",
        _FILTER_BOOL,
        "**(beyond EP)** Only (not) enabled ones." + _BOOL_NOTE,
    ),
    "FilterIntegrationType": _param(
        "query",
        "filter[integration_type]",
        {"type": "string", "enum": list(INTEGRATION_TYPES)},
        "**(beyond EP)** Only integrations of this type; another value is a 400.",
    ),
    "FilterObserves": _param(
        "query",
        "filter[observes]",
        {"type": "string", "examples": ["order.paid", "order.*"]},
        "**(beyond EP)** A concrete key (`order.paid`) finds every integration that would receive "
        "that event: those observing `order.paid`, `order.*` or `*`. A wildcard (`order.*`, `*`) "
        "finds the integrations whose `observes` lists that very wildcard.",
    ),
    "FilterStatus": _param(
        "query",
        "filter[status]",
        {"type": "array", "items": {"type": "string", "enum": list(JOB_STATUSES)}, "minItems": 1},
        "**(beyond EP)** Comma-separated job statuses (`failed,cancelled`); an unknown one is "
        "a 400.",
        style="form",
        explode=False,
    ),
    "FilterTriggeredBy": _param(
        "query",
        "filter[triggered_by]",
        {"type": "array", "items": {"type": "string"}, "minItems": 1, "maxItems": 50},
        "**(beyond EP)** Comma-separated event keys (`order.paid,order.created`): only jobs of "
        "events with one of these keys. Exact keys, no wildcards; a malformed key is a 400.",
        style="form",
        explode=False,
    ),
    "FilterCreatedGte": _param(
        "query",
        "filter[created_at][gte]",
        {"type": "string", "format": "date-time"},
        "**(beyond EP)** Only those created at or after this RFC 3339 time (with `Z` or an "
        "offset; without one, unparsable, or outside 0001-01-01T00:00:00Z to "
        "9999-12-31T23:59:59.999999Z once in UTC, such as `0001-01-01T00:00:00+14:00`: 400). "
        "The same as `filter=ge(created_at,…)`.",
    ),
    "FilterCreatedLte": _param(
        "query",
        "filter[created_at][lte]",
        {"type": "string", "format": "date-time"},
        "**(beyond EP)** Only those created at or before this RFC 3339 time (the same "
        "rules); `filter=le(created_at,…)`.",
    ),
    "FilterIntegrations": _ep_filter(
        filters.INTEGRATIONS, "eq(enabled,true):eq(integration_type,webhook)"
    ),
    "FilterJobs": _ep_filter(filters.JOBS, "in(status,failed,cancelled)"),
    "FilterLogs": _ep_filter(
        filters.LOGS, "eq(succeeded,false):ge(created_at,2026-11-22T10:00:00Z)"
    ),
    "SortIntegrations": _sort(filters.INTEGRATIONS),
    "SortJobs": _sort(filters.JOBS),
    "SortLogs": _sort(filters.LOGS),
    "FilterSucceeded": _param(
        "query",
        "filter[succeeded]",
        _FILTER_BOOL,
        "**(beyond EP)** Only successful (or failed) attempts." + _BOOL_NOTE,
    ),
    "IdempotencyKey": _param(
        "header",
        "Idempotency-Key",
        {"type": "string", "minLength": 1, "maxLength": 255},
        "The client id of a single event without `data.id` (with one, the two must be equal, "
        "else 422); in a batch, events without an `id` get `<Idempotency-Key>:<index>`. "
        "Longer than 255 characters: 400. Reused with another event: 409.",
    ),
    "XHubStore": _param(
        "header",
        "X-Hub-Store",
        {"type": "string"},
        "**(beyond EP)** The name of the store to act on. Only `admin` keys may name another store "
        "than their own (403 otherwise); an unknown store is a 404.",
    ),
}

_PAGE = ("PageOffset", "PageLimit")


# --- responses ----------------------------------------------------------------------------------

ERRORS: dict[int, tuple[str, str, ApiError]] = {
    400: (
        "BadRequest",
        "Malformed JSON or a bad query parameter.",
        BadRequest("page[limit] must be between 1 and 100", source="page[limit]"),
    ),
    401: (
        "Unauthorized",
        "No `Authorization: Bearer` key or token, an unknown or revoked key, or an unknown or "
        "expired access token (or one whose key was revoked).",
        api_error(Unauthenticated()),
    ),
    403: (
        "Forbidden",
        "The key's role lacks this permission, or a non-admin sent `X-Hub-Store`.",
        api_error(
            PermissionDenied("This key's role (publish) does not allow this action", role="publish")
        ),
    ),
    404: (
        "NotFound",
        "No such resource in this store (another store's answer the same), or an "
        "unknown `X-Hub-Store`.",
        api_error(NotFound()),
    ),
    408: (
        "RequestTimeout",
        "The body did not arrive within `HUB_BODY_TIMEOUT` seconds of the headers; the "
        "connection is closed.",
        RequestTimeout(30),
    ),
    409: (
        "Conflict",
        "The resource's state forbids the change, or a client id (`Idempotency-Key`, `id`) "
        "was already used for another event.",
        api_error(Conflict("Only a failed or cancelled job can be retried; this one is pending")),
    ),
    413: (
        "PayloadTooLarge",
        "The body is over `HUB_MAX_BODY_BYTES`, an event payload over `HUB_MAX_EVENT_BYTES`, or "
        "a publish would create more jobs than `HUB_MAX_JOBS_PER_PUBLISH`.",
        api_error(
            PayloadTooLarge(
                "the event payload is 1048577 bytes; the limit is 1048576", source="data.payload"
            )
        ),
    ),
    415: (
        "UnsupportedMediaType",
        "The request body's Content-Type is not JSON (`application/json` or `…+json`).",
        UnsupportedMediaType("text/plain"),
    ),
    422: (
        "ValidationError",
        "Validation failed: one error object per problem, `source` naming the field. Also a "
        "body whose objects and arrays nest more than 64 levels deep, or that holds a NUL "
        "character (`\\u0000`).",
        api_error(
            ValidationFailed(
                [
                    ("data.name is required", "data.name"),
                    ("data.configuration.url is required", "data.configuration.url"),
                ]
            ),
        ),
    ),
    429: (
        "TooManyRequests",
        "The key is over its rate limit (`HUB_API_RATE_LIMIT` requests per second per key, "
        "bursts of `HUB_API_RATE_BURST`); retry after `Retry-After` seconds.",
        TooManyRequests(1),
    ),
    503: (
        "ServiceUnavailable",
        "Storage is unavailable; retry after `Retry-After` seconds.",
        StorageUnavailable(),
    ),
}
