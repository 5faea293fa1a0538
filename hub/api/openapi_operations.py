"""What the OpenAPI document says about each route: parameters, error answers and operations.

One `Op` per route of `hub.api.routes` (and the operational ones of `hub.api.app`), with its
roles, parameters, body and every status it can answer; `hub.api.openapi` turns this table and
the pydantic models into the document. Descriptions are CommonMark; **(beyond EP)** marks what
Elastic Path's Integrations API does not have, **Decision** what the spec left open.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from deliverers.config import INTEGRATION_TYPES
from hub.api.http import DEFAULT_LIMIT, MAX_LIMIT
from hub.auth import Permission
from hub.errors import (
    ApiError,
    BadRequest,
    Conflict,
    Forbidden,
    NotFound,
    PayloadTooLarge,
    StorageUnavailable,
    TooManyRequests,
    Unauthorized,
    ValidationFailed,
)
from hub.store.models import JOB_STATUSES

# --- parameters ---------------------------------------------------------------------------------

_FILTER_BOOL = {"type": "boolean"}
_BOOL_NOTE = " `true`/`false` (also `1`/`0`); anything else is a 400."


def _param(where: str, name: str, schema: dict[str, Any], description: str, **more: Any) -> Any:
    return {"name": name, "in": where, "description": description, "schema": schema, **more}


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
        "**(beyond EP)** Only jobs created at or after this RFC 3339 time (with `Z` or an "
        "offset; without one, or unparsable: 400).",
    ),
    "FilterCreatedLte": _param(
        "query",
        "filter[created_at][lte]",
        {"type": "string", "format": "date-time"},
        "**(beyond EP)** Only jobs created at or before this RFC 3339 time.",
    ),
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
        "Longer than 255 characters: 400.",
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
        "No `Authorization: Bearer` key, or an unknown/revoked one.",
        Unauthorized(),
    ),
    403: (
        "Forbidden",
        "The key's role lacks this permission, or a non-admin sent `X-Hub-Store`.",
        Forbidden("This key's role (publish) does not allow this action"),
    ),
    404: (
        "NotFound",
        "No such resource in this store (another store's answer the same), or an "
        "unknown `X-Hub-Store`.",
        NotFound(),
    ),
    409: (
        "Conflict",
        "The resource's state forbids the change.",
        Conflict("Only a failed or cancelled job can be retried; this one is pending"),
    ),
    413: (
        "PayloadTooLarge",
        "The body is over `HUB_MAX_BODY_BYTES` or an event payload over `HUB_MAX_EVENT_BYTES`.",
        PayloadTooLarge(
            "the event payload is 1048577 bytes; the limit is 1048576", source="data.payload"
        ),
    ),
    422: (
        "ValidationError",
        "Validation failed: one error object per problem, `source` naming the field.",
        ValidationFailed(
            [
                ("data.name is required", "data.name"),
                ("data.configuration.url is required", "data.configuration.url"),
            ]
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


# --- operations ---------------------------------------------------------------------------------


Schema = str | dict[str, Any]
"""A component schema's name, or an inline JSON schema."""


@dataclass(frozen=True, slots=True)
class Op:
    """One operation. Authenticated ones (`permission` set) also answer 401, 403, 404 and 503."""

    method: str
    path: str
    operation_id: str
    tag: str
    summary: str
    description: str
    permission: Permission | None
    success: dict[int, tuple[Schema, str]]  # status → (body schema, description)
    params: tuple[str, ...] = ()  # names in PARAMETERS
    body: str | None = None  # the request body's component schema
    errors: tuple[int, ...] = ()  # error statuses beyond the authenticated ones, keys of ERRORS
    media: str = "application/json"  # of the success bodies


_INT, _JOBS, _EVENTS, _OPS = "Integrations", "Jobs and logs", "Events", "Operations"
TAGS = (_INT, _JOBS, _EVENTS, _OPS)
_BODY = (400, 413, 422)
_ONE = "the integration"

OPERATIONS: tuple[Op, ...] = (
    Op(
        "post",
        "/v2/integrations",
        "create_integration",
        _INT,
        "Create an integration",
        "Creates an integration in the key's store. `enabled` defaults to `false`, as in EP. "
        "`observes` takes catalogue keys, custom `<name>.created|updated|deleted` keys and "
        "**(beyond EP)** the wildcards `<resource>.*` and `*`, each at most once. `configuration` "
        "must match `integration_type`; secrets are stored encrypted and answered masked (all "
        "but the last 4 characters `*`).\n\n**Decision (SSRF guard):** targets (webhook and SQS "
        "URLs, STOMP addresses) must be public: a literal non-public address (loopback, private, "
        "link-local, ... in any spelling) or an internal-only name (`localhost`, `*.internal`) is "
        "a 422 unless `HUB_ALLOWED_NETWORKS` lists its network; names are judged again, resolved, "
        "at every delivery.\n\n**(beyond EP)** A Standard Webhooks signing secret is generated; "
        "read it with `GET /v2/integrations/{id}/secret`.\n\n**(beyond EP)** `conditions` "
        "filters the observed events on their payload (see the attribute); they are checked "
        "here (422s with `source` inside `data.conditions`), stored in canonical form, and "
        "evaluated when an event is published: an event they do not hold for creates no job.",
        Permission.WRITE,
        {201: ("IntegrationResponse", "Created.")},
        body="IntegrationCreateRequest",
        errors=_BODY,
    ),
    Op(
        "get",
        "/v2/integrations",
        "list_integrations",
        _INT,
        "List integrations",
        "The store's integrations, newest first. **(beyond EP)** filters: `filter[enabled]`, "
        "`filter[integration_type]`, `filter[observes]`; they combine with AND.",
        Permission.READ,
        {200: ("IntegrationList", "A page of integrations.")},
        params=(*_PAGE, "FilterEnabled", "FilterIntegrationType", "FilterObserves"),
        errors=(400,),
    ),
    Op(
        "get",
        "/v2/integrations/{id}",
        "get_integration",
        _INT,
        "Get an integration",
        "Secrets in `configuration` are masked. `disabled_reason` **(beyond EP)** says why the hub "
        "disabled it (a `410 Gone` answer, or the circuit breaker).\n\n**(beyond EP)** "
        "**Circuit breaker:** `failing_since` is when the current unbroken stretch of failed "
        "attempts began (a success clears it; a `429` answer neither starts nor ends it). When "
        "a failed attempt finds it older than `HUB_BREAKER_AFTER` (default 5 days), the "
        "integration is disabled and its pending jobs are `held`, not cancelled; enabling it "
        "again (`PUT`) resumes them. `max_in_flight` and `rate_limit` are its delivery limits.",
        Permission.READ,
        {200: ("IntegrationResponse", "The integration.")},
        params=("IntegrationId",),
    ),
    Op(
        "put",
        "/v2/integrations/{id}",
        "update_integration",
        _INT,
        "Update an integration",
        "Partial update: only the attributes given change (`type` is required). `name`, "
        "`enabled`, `observes` and `integration_type` cannot be `null`; `description: null` "
        "clears it.\n\n**Decision:** `configuration` is merged into the stored one key by key; "
        "`null` removes an optional field, and a secret echoed back in its masked form keeps its "
        "stored value, so the body of a GET can be sent back as is. When `integration_type` "
        "changes, `configuration` replaces the stored one. Enabling clears `disabled_reason`; "
        "disabling cancels the pending jobs. A `data.id` other than the path's is a 422. "
        "**(beyond EP)** Enabling an integration that the circuit breaker disabled makes its "
        "`held` jobs pending again (due at once); switching `enabled` either way restarts the "
        "breaker's clock (`failing_since`). `max_in_flight` and `rate_limit`: `null` removes the "
        "limit. "
        "**(beyond EP)** `conditions` replaces the stored ones; `null` removes them.",
        Permission.WRITE,
        {200: ("IntegrationResponse", "The updated integration.")},
        params=("IntegrationId",),
        body="IntegrationUpdateRequest",
        errors=_BODY,
    ),
    Op(
        "delete",
        "/v2/integrations/{id}",
        "delete_integration",
        _INT,
        "Delete an integration",
        "Deletes it; its pending jobs are cancelled and its logs are kept (see "
        "`GET /v2/integrations/logs`).",
        Permission.WRITE,
        {200: ("DeletedResponse", '`{"data": {"type", "id"}}`.')},
        params=("IntegrationId",),
    ),
    Op(
        "get",
        "/v2/integrations/{id}/secret",
        "get_secret",
        _INT,
        "Read the signing secret",
        "**(beyond EP)** The Standard Webhooks secret (`whsec_…`) that signs every webhook "
        "delivery (`webhook-id`, `webhook-timestamp`, `webhook-signature: v1,<base64 "
        "HMAC-SHA256>`). Only roles that may change integrations can read it. "
        "`previous_secret_expires_at` tells whether the secret replaced by the last rotation "
        "still signs too.",
        Permission.WRITE,
        {200: ("SecretResponse", "The secret.")},
        params=("IntegrationId",),
    ),
    Op(
        "post",
        "/v2/integrations/{id}/secret/rotate",
        "rotate_secret",
        _INT,
        "Rotate the signing secret",
        "**(beyond EP)** Generates a new signing secret and answers it. No body. The secret it "
        "replaces keeps signing for a grace period (`HUB_SIGNING_SECRET_GRACE`, default 24 h, "
        "until `previous_secret_expires_at`): every delivery then carries two signatures in "
        "`webhook-signature` (`v1,<new> v1,<old>`), as Standard Webhooks allows, so consumers "
        "can switch to the new secret at their own pace.\n\n**Decision:** only the last "
        "replaced secret is kept: rotating again during the grace period drops the older one. "
        "The secrets are stored encrypted (`HUB_SECRET_KEY`).",
        Permission.WRITE,
        {200: ("SecretResponse", "The new secret.")},
        params=("IntegrationId",),
    ),
    Op(
        "post",
        "/v2/integrations/{id}/test",
        "send_test_event",
        _INT,
        "Send a test event",
        '**(beyond EP)** Publishes a synthetic `integration.test` event (payload `{"data": '
        '{"type": "integration-test", "id": <event id>, "integration_id", "message"}}`) and '
        "queues a job for this integration alone: other integrations observing "
        "`integration.test` get none, and this one gets it even if it does not observe it and "
        "whatever its `conditions`. It is delivered through the normal path (dispatcher, "
        "retries, logs); poll the job returned. No body.\n\n**Decision:** a disabled "
        "integration is a 409, since none of its jobs would be delivered.",
        Permission.WRITE,
        {202: ("JobResponse", "The test event's job, accepted for delivery.")},
        params=("IntegrationId",),
        errors=(409,),
    ),
    Op(
        "get",
        "/v2/integrations/{id}/status",
        "get_integration_status",
        _INT,
        "Get an integration's status",
        "**(beyond EP)** How the integration is doing, at a glance: whether it is enabled and "
        "why the hub disabled it, its newest attempt, newest success and newest failure "
        "(`last_error`: when, `error_detail`, HTTP status), its jobs counted by status, and "
        "the attempts and success rate over the last hour (`success_rate_1h` is null when "
        "there was no attempt).",
        Permission.READ,
        {200: ("IntegrationStatusResponse", "The status.")},
        params=("IntegrationId",),
    ),
    Op(
        "get",
        "/v2/integrations/logs",
        "list_store_logs",
        _JOBS,
        "List all logs of the store",
        "One log per delivery attempt, of every integration of the store (deleted ones "
        "included), newest first.",
        Permission.READ,
        {200: ("LogList", "A page of logs.")},
        params=(*_PAGE, "FilterSucceeded"),
        errors=(400,),
    ),
    Op(
        "get",
        "/v2/integrations/{id}/logs",
        "list_integration_logs",
        _JOBS,
        f"List the logs of {_ONE}",
        "Every delivery attempt of its jobs, newest first.",
        Permission.READ,
        {200: ("LogList", "A page of logs.")},
        params=("IntegrationId", *_PAGE, "FilterSucceeded"),
        errors=(400,),
    ),
    Op(
        "get",
        "/v2/integrations/{id}/jobs",
        "list_jobs",
        _JOBS,
        f"List the jobs of {_ONE}",
        "A job is one event delivered to one integration. EP shows only `id` and `type`; "
        "**(beyond EP)** the hub adds status, attempts, next attempt, last error, relations and "
        "the filters `filter[status]`, `filter[triggered_by]`, `filter[created_at][gte]` and "
        "`filter[created_at][lte]`, which combine with AND.",
        Permission.READ,
        {200: ("JobList", "A page of jobs.")},
        params=(
            "IntegrationId",
            *_PAGE,
            "FilterStatus",
            "FilterTriggeredBy",
            "FilterCreatedGte",
            "FilterCreatedLte",
        ),
        errors=(400,),
    ),
    Op(
        "get",
        "/v2/integrations/{id}/jobs/{job_id}",
        "get_job",
        _JOBS,
        "Get a job",
        "**(beyond EP)** One job with its status.",
        Permission.READ,
        {200: ("JobResponse", "The job.")},
        params=("IntegrationId", "JobId"),
    ),
    Op(
        "get",
        "/v2/integrations/{id}/jobs/{job_id}/logs",
        "list_job_logs",
        _JOBS,
        "List the logs of a job",
        "Its delivery attempts, newest first.",
        Permission.READ,
        {200: ("LogList", "A page of logs.")},
        params=("IntegrationId", "JobId", *_PAGE, "FilterSucceeded"),
        errors=(400,),
    ),
    Op(
        "post",
        "/v2/integrations/{id}/jobs/{job_id}/retry",
        "retry_job",
        _JOBS,
        "Retry a job",
        "**(beyond EP)** Creates a new pending job for the same event and integration; its "
        "`relationships.retry_of` points back. No body.\n\n**Decision:** only a `failed` or "
        "`cancelled` job of an **enabled** integration can be retried; any other status, or a "
        "disabled integration, is a 409.",
        Permission.WRITE,
        {202: ("JobResponse", "The new job, accepted for delivery.")},
        params=("IntegrationId", "JobId"),
        errors=(409,),
    ),
    Op(
        "post",
        "/v2/integrations/{id}/replay",
        "replay_jobs",
        _JOBS,
        "Replay a window of jobs",
        "**(beyond EP)** Re-queues, as new jobs, the events whose jobs of this integration were "
        "created in `[since, until)` (`until` defaults to now) and whose **latest** job for "
        "the integration ended in one of `status` (default `failed`; add `succeeded` and "
        "`cancelled` to replay everything that finished). An event retried with success since "
        "is therefore not replayed, and replaying a window again replays only what failed "
        "again. Each new job starts from attempt 1; `relationships.retry_of` points at the job "
        "it replays. The jobs are queued before the answer, which is the replay: poll "
        "`links.self` until `status` is `completed`.\n\n**Decision:** a disabled integration is "
        "a 409 (as for a retry); `until` not after `since`, or a time without a zone, is a 422. "
        "A window without matching jobs gives a replay of 0 jobs, already `completed`.",
        Permission.WRITE,
        {202: ("ReplayResponse", "The replay, its jobs queued.")},
        params=("IntegrationId",),
        body="ReplayCreateRequest",
        errors=(*_BODY, 409),
    ),
    Op(
        "get",
        "/v2/integrations/{id}/replays/{replay_id}",
        "get_replay",
        _JOBS,
        "Get a replay",
        "**(beyond EP)** A replay and its progress, counted from the jobs it created: `total`, "
        "`pending` (pending, delivering or held), `succeeded`, `failed`, `cancelled`. `status` is "
        "`running` while any is pending, then `completed`. Counts of jobs purged by retention "
        "(`HUB_RETENTION_DAYS`) drop out; `total` stays.",
        Permission.READ,
        {200: ("ReplayResponse", "The replay.")},
        params=("IntegrationId", "ReplayId"),
    ),
    Op(
        "post",
        "/v2/events",
        "publish_events",
        _EVENTS,
        "Publish events",
        "**(the hub's ingest)** Stores the event and one job per matching enabled integration of "
        "the store in one transaction, before answering. `data` may be an array of 1 to 100 "
        "events (one transaction; the answer is then the array, in order). `triggered_by` is a "
        "catalogue key, a custom `<name>.created|updated|deleted` key or `integration.test`; never "
        "a wildcard.\n\n**Decision:** 202 if at least one event was new, 200 if all were "
        "repeats.\n\n**Idempotency:** an event's client id is its `id` or, for a single event, "
        "the `Idempotency-Key` header (in a batch, the header plus `:<index>` for events without "
        "an `id`). Publishing a client id the store has seen returns the stored event and creates "
        "nothing; of concurrent duplicates exactly one wins. A single event whose `id` differs "
        "from the header, or a batch naming a client id twice, is a 422.\n\nLimits: 1 MiB per "
        "payload (`HUB_MAX_EVENT_BYTES`), 10 MiB per request (`HUB_MAX_BODY_BYTES`); 413 beyond.",
        Permission.PUBLISH,
        {
            202: ("PublishResponse", "At least one event was new; its jobs are queued."),
            200: ("PublishResponse", "Every event was a repeat: the stored ones, nothing created."),
        },
        params=("IdempotencyKey",),
        body="PublishRequest",
        errors=_BODY,
    ),
    Op(
        "get",
        "/v2/events/{id}",
        "get_event",
        _EVENTS,
        "Get an event",
        "**(beyond EP)** The event with `jobs.data`: its newest 100 jobs and their statuses.",
        Permission.READ_EVENTS,
        {200: ("EventResponse", "The event.")},
        params=("EventId",),
    ),
    Op(
        "get",
        "/healthz",
        "healthz",
        _OPS,
        "Liveness",
        "The process is up; touches nothing.",
        None,
        {200: ("HealthOut", "Up.")},
    ),
    Op(
        "get",
        "/readyz",
        "readyz",
        _OPS,
        "Readiness",
        "The database answers a query.",
        None,
        {200: ("HealthOut", "Ready.")},
        errors=(503,),
    ),
    Op(
        "get",
        "/metrics",
        "metrics",
        _OPS,
        "Prometheus metrics",
        "The Prometheus text exposition format.",
        None,
        {200: ({"type": "string"}, "Metrics.")},
        media="text/plain",
    ),
    Op(
        "get",
        "/openapi.json",
        "openapi_json",
        _OPS,
        "This document",
        "The OpenAPI 3.1 description of the API.",
        None,
        {200: ({"type": "object"}, "The document.")},
    ),
    Op(
        "get",
        "/docs",
        "docs",
        _OPS,
        "API docs",
        "This document rendered as one self-contained HTML page.",
        None,
        {200: ({"type": "string"}, "The page.")},
        media="text/html",
    ),
)

_WEBHOOK = {"url": "https://example.com/hooks/orders", "secret_key": "s3cr3t-value"}
_ORDER = {"data": {"type": "order", "id": "8d3c2a52-4c1a-4f0e-9a55-1f6f4b0f5c11"}}

BODY_EXAMPLES: dict[str, dict[str, Any]] = {
    "IntegrationCreateRequest": {
        "webhook": {
            "data": {
                "type": "integration",
                "name": "Order notifications",
                "enabled": True,
                "integration_type": "webhook",
                "observes": ["order.paid", "order.*"],
                "configuration": _WEBHOOK,
            }
        },
        "webhook with conditions": {
            "data": {
                "type": "integration",
                "name": "Big paid orders",
                "enabled": True,
                "integration_type": "webhook",
                "observes": ["order.paid"],
                "configuration": _WEBHOOK,
                "conditions": {
                    "all": [
                        {"field": "data.status", "equals": "paid"},
                        {
                            "any": [
                                {"field": "data.total", "gte": 100},
                                {"field": "data.tags", "exists": True},
                            ]
                        },
                    ]
                },
            }
        },
        "stomp": {
            "data": {
                "type": "integration",
                "name": "ERP feed",
                "integration_type": "stomp",
                "observes": ["*"],
                "configuration": {
                    "addresses": ["stomp+ssl://mq1:61614", "stomp+ssl://mq2:61614"],
                    "destination": "/queue/erp",
                    "username": "hub",
                    "password": "hunter22",
                },
            }
        },
    },
    "IntegrationUpdateRequest": {
        "disable": {"data": {"type": "integration", "enabled": False}},
        "new URL, secret kept": {
            "data": {
                "type": "integration",
                "configuration": {
                    "url": "https://example.com/hooks/v2",
                    "secret_key": "********alue",
                },
            }
        },
    },
    "ReplayCreateRequest": {
        "failed since a date": {
            "data": {"type": "integration-replay", "since": "2026-11-20T08:00:00.000Z"}
        },
        "everything in a window": {
            "data": {
                "type": "integration-replay",
                "since": "2026-11-20T08:00:00.000Z",
                "until": "2026-11-20T12:00:00.000Z",
                "status": ["failed", "succeeded", "cancelled"],
            }
        },
    },
    "PublishRequest": {
        "one event": {"data": {"type": "event", "triggered_by": "order.paid", "payload": _ORDER}},
        "batch": {
            "data": [
                {
                    "type": "event",
                    "id": "ord-1001-paid",
                    "triggered_by": "order.paid",
                    "payload": _ORDER,
                },
                {"type": "event", "triggered_by": "wishlist.created", "payload": {"data": {}}},
            ]
        },
    },
}

INFO = (
    "An event-driven integration hub: a superset of Elastic Path Commerce's Integrations API "
    "(an EP client pointed at `<server>/v2` works unchanged). What is marked **(beyond EP)** is "
    "the hub's own.\n\n"
    "**Auth:** `Authorization: Bearer <api key>`. Every key belongs to one store; everything it "
    "creates, lists or publishes is confined to that store, and another store's resources answer "
    "404. Roles: `view` (read), `manage` (read, change integrations, retry jobs), `publish` "
    "(publish events, read them back), `admin` (all stores, via `X-Hub-Store`). Each key is "
    "rate limited (429 with `Retry-After`); bodies over `HUB_MAX_BODY_BYTES` are a 413. "
    "Integration credentials and signing secrets are stored encrypted and answered masked.\n\n"
    '**Resources:** `{"data": {...}}` with `id`, `type`, `links.self` and `meta.timestamps` '
    '(RFC 3339 UTC with milliseconds and `Z`). **Lists:** `{"data": [...], "links", '
    '"meta"}`, newest first, ties broken by id.\n\n'
    '**Errors:** `{"errors": [{"status", "title", "detail", "source"?}]}` (ErrorsOut); '
    "responses carry `X-Request-Id`."
)
