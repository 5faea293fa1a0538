"""What the OpenAPI document says about each operation.

One `Op` per route of `hub.api.routes` (and the operational ones of `hub.api.ops`), with its
roles, parameters, body and every status it can answer (parameters and error answers are
`hub.api.openapi.parameters`'s); `hub.api.openapi.document` turns this table and the pydantic
models into the document. Descriptions are CommonMark; **(beyond EP)** marks what Elastic
Path's Integrations API does not have, **Decision** what the spec left open.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from hub.api.openapi.parameters import _PAGE
from hub.auth import Permission

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
    body_media: tuple[str, ...] = ("application/json",)  # what the request body may be


_AUTH, _INT, _JOBS, _EVENTS, _PUSH, _OPS = (
    "Authentication",
    "Integrations",
    "Jobs and logs",
    "Events",
    "Web Push",
    "Operations",
)
TAGS = (_AUTH, _INT, _JOBS, _EVENTS, _PUSH, _OPS)
_BODY = (400, 408, 413, 415, 422)
_ONE = "the integration"
_LIST = (
    "\n\nFilter with Elastic Path's `filter=op(field,value):…` (see the parameter) and "
    "the `filter[...]` forms, which combine with AND; an unknown field, operator or "
    "`filter[...]` parameter is a 400, never ignored. `sort` orders by one key."
)
_LOG_FILTERS = ("FilterLogs", "FilterSucceeded", "FilterCreatedGte", "FilterCreatedLte", "SortLogs")
_LOG_LIST = (
    _LIST + "\n\n**EP's log list fields:** besides `meta.page` and `meta.results`, the answer "
    "has `results.total` at the top and the page's `limit`, `offset`, `current` and `total` "
    "in `meta` itself, as Elastic Path documents them (and its JS SDK's "
    "`IntegrationLogsResponse` type reads them)."
)

OPERATIONS: tuple[Op, ...] = (
    Op(
        "post",
        "/oauth/access_token",
        "access_token",
        _AUTH,
        "Get an access token",
        "Elastic Path's token endpoint, at the root (not under `/v2`): what EP's SDKs call "
        "before their first request, and again when a request answers 401. Send "
        "`grant_type=client_credentials`, `client_id` (the key's first 16 characters, `hub_` "
        "and 12 hex digits: `hub keys create` and `hub keys list` print it) and "
        "`client_secret` (the key), form-encoded as EP's clients do, or as a JSON object. The "
        "answer is EP's token body; send the token as `Authorization: Bearer <access_token>` "
        "wherever a key goes. It has the key's store and role, lives `expires_in` seconds "
        "(`HUB_TOKEN_TTL`, default 3600; `expires` is the same instant in Unix seconds), and "
        "dies with the key: once the key is revoked its tokens answer 401 at once, as an "
        "expired one does. The key itself keeps working as a bearer too.\n\n**Decision:** "
        "`grant_type=implicit` (EP's storefront grant: a client id alone) is refused with a "
        "400, as is any grant but `client_credentials`: the hub never hands out a token "
        "without the key's secret. A client id and secret that do not name one active key are "
        "a 401 (which of the two is wrong is not said); a missing field is a 422 naming it; a "
        "body that is neither form-encoded nor JSON is a 415. The token request counts "
        "against the key's rate limit (429).",
        None,
        {200: ("AccessTokenOut", "The token.")},
        body="TokenRequest",
        errors=(400, 401, 413, 415, 422, 429, 503),
        body_media=("application/x-www-form-urlencoded", "application/json"),
    ),
    Op(
        "post",
        "/v2/integrations",
        "create_integration",
        _INT,
        "Create an integration",
        "Creates an integration in the key's store. `enabled` defaults to `false`, as in EP. "
        "`observes` takes catalogue keys, custom `<name>.created|updated|deleted` keys and "
        "**(beyond EP)** the hub's operational events (`integration.disabled`, "
        "`integration.enabled`, `job.failed`: see the introduction) and the wildcards "
        "`<resource>.*` and `*` (which does not select operational events), each at most once. "
        "`configuration` "
        "must match `integration_type`; secrets are stored encrypted and answered masked (all "
        "but the last 4 characters `*`; an AMQP `url` as `amqp://user:****@host/vhost`).\n\n"
        "**(beyond EP)** `amqp` publishes a CloudEvent to an exchange (publisher confirms, "
        "`mandatory`: an unroutable message is a failed attempt); `web_push` takes a browser's "
        "`PushSubscription.toJSON()` as its configuration (EP's `save-vapid-subscription`) and "
        "sends the webhook body, encrypted and VAPID-signed with the store's key (`GET "
        "/v2/push/vapid-key`), trimmed to 4 KiB; a 404 or 410 from the push service disables it."
        "\n\n**Decision (SSRF guard):** targets (webhook and SQS URLs, STOMP addresses, AMQP "
        "brokers, push endpoints) must be public: a literal non-public address (loopback, private, "
        "link-local, ... in any spelling) or an internal-only name (`localhost`, `*.internal`) is "
        "a 422 unless `HUB_ALLOWED_NETWORKS` lists its network; names are judged again, resolved, "
        "at every delivery.\n\n**(beyond EP)** A Standard Webhooks signing secret is generated; "
        "read it with `GET /v2/integrations/{id}/secret`.\n\n**(beyond EP)** `conditions` "
        "filters the observed events on their payload (see the attribute); they are checked "
        "here (422s with `source` inside `data.conditions`), stored in canonical form, and "
        "evaluated when an event is published: an event they do not hold for creates no job."
        "\n\n**(beyond EP)** `ordering_key` orders delivery per value of a payload path: one "
        "job of a value at a time, in publish order, other values concurrently (see the "
        "attribute)."
        "\n\n**Quota:** a store has at most `HUB_MAX_INTEGRATIONS_PER_STORE` (default 1000) "
        "integrations, deleted ones aside; one more is a 422 titled `Quota Exceeded`.",
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
        "`filter[integration_type]`, `filter[observes]`; they combine with AND."
        "\n\n**Decision:** `filter=eq(observes,order.paid)` finds what `filter[observes]` "
        "does: the integrations that would receive `order.paid`." + _LIST,
        Permission.READ,
        {200: ("IntegrationList", "A page of integrations.")},
        params=(
            *_PAGE,
            "FilterIntegrations",
            "FilterEnabled",
            "FilterIntegrationType",
            "FilterObserves",
            "SortIntegrations",
        ),
        errors=(400,),
    ),
    Op(
        "get",
        "/v2/integrations/{id}",
        "get_integration",
        _INT,
        "Get an integration",
        "Secrets in `configuration` are masked. `disabled_reason` **(beyond EP)** says why the hub "
        "disabled it (a `410 Gone` answer, a push subscription's 404 or 410, or the circuit "
        "breaker).\n\n**(beyond EP)** "
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
        "**(beyond EP)** `conditions` replaces the stored ones; `null` removes them. "
        "**(beyond EP)** Switching `enabled` off or on publishes the operational event "
        "`integration.disabled` or `integration.enabled` (`cause: operator`, the key's id in "
        "`key_id`) in the same transaction; an update that leaves `enabled` as it was publishes "
        "nothing.\n\n"
        "**Decision (retargeting):** stored credentials never follow a target to a new host. "
        "When the update makes the configuration name an endpoint (scheme, host and port of "
        "the webhook or SQS `url`, of a STOMP address) that the stored one did not, each stored "
        "secret (`secret_key`; `aws_access_key_id` and `aws_secret_access_key`; `password`) "
        "must be given again in the same request, or removed with `null`: otherwise a 422 "
        "names each one. A new path or queue on the same endpoint, or STOMP addresses "
        "reordered or removed, keep them.",
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
        "included), newest first." + _LOG_LIST,
        Permission.READ,
        {200: ("LogList", "A page of logs.")},
        params=(*_PAGE, *_LOG_FILTERS),
        errors=(400,),
    ),
    Op(
        "get",
        "/v2/integrations/{id}/logs",
        "list_integration_logs",
        _JOBS,
        f"List the logs of {_ONE}",
        "Every delivery attempt of its jobs, newest first." + _LOG_LIST,
        Permission.READ,
        {200: ("LogList", "A page of logs.")},
        params=("IntegrationId", *_PAGE, *_LOG_FILTERS),
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
        "`filter[created_at][lte]`, which combine with AND. On an integration with an "
        "`ordering_key`, a job waiting for an earlier one of its value is `pending` with no "
        "`next_attempt_at` and names that job in `relationships.blocked_by`." + _LIST,
        Permission.READ,
        {200: ("JobList", "A page of jobs.")},
        params=(
            "IntegrationId",
            *_PAGE,
            "FilterJobs",
            "FilterStatus",
            "FilterTriggeredBy",
            "FilterCreatedGte",
            "FilterCreatedLte",
            "SortJobs",
        ),
        errors=(400,),
    ),
    Op(
        "get",
        "/v2/integrations/{id}/jobs/{job_id}",
        "get_job",
        _JOBS,
        "Get a job",
        "**(beyond EP)** One job with its status (and, while it waits for an earlier job of "
        "its ordering key value, `relationships.blocked_by`).",
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
        "Its delivery attempts, newest attempt first." + _LOG_LIST,
        Permission.READ,
        {200: ("LogList", "A page of logs.")},
        params=("IntegrationId", "JobId", *_PAGE, *_LOG_FILTERS),
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
        "disabled integration, is a 409.\n\n**Decision (ordering):** on an integration with "
        "an `ordering_key` the new job keeps the key value of the job it retries and goes to "
        "the **end** of that value's queue, as if published now (later jobs of the value may "
        "have been delivered since); `relationships.blocked_by` shows what it waits for.",
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
        "A window without matching jobs gives a replay of 0 jobs, already `completed`. On an "
        "integration with an `ordering_key` the new jobs go to the end of their values' "
        "queues, as a retry does, in the order of the jobs they replay.",
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
        "a wildcard, and never one of the hub's operational events (`integration.disabled`, "
        "`integration.enabled`, `job.failed`: a 422 saying so), which only the hub publishes. "
        "Client ids (`id`, `Idempotency-Key`) starting with `hub:` are the hub's own: a 422."
        "\n\n**Decision:** 202 if at least one event was new, 200 if all were "
        "repeats.\n\n**Idempotency:** an event's client id is its `id` or, for a single event, "
        "the `Idempotency-Key` header (in a batch, the header plus `:<index>` for events without "
        "an `id`). Publishing a client id the store has seen with the same event returns the "
        "stored event and creates nothing; of concurrent duplicates exactly one wins. A single "
        "event whose `id` differs from the header, or a batch naming a client id twice, is a "
        "422.\n\n**Decision (a client id reused for another event):** a 409, as the IETF "
        "idempotency-key draft and Stripe refuse a key reused with other parameters (the draft "
        "suggests 422; the hub keeps 422 for bodies that are invalid in themselves). The same "
        "event is judged on its canonical form, `triggered_by` and `payload` with object keys "
        "sorted, not on the request's bytes: key order and spacing do not matter. `source` is "
        "`Idempotency-Key`, `data.id` or, in a batch, `data[<index>].id` / `data[<index>]`; a "
        "batch is judged event by event and refused whole (nothing of it is stored). Events "
        "stored before the hub kept digests repeat as before.\n\nLimits: 1 MiB per "
        "payload (`HUB_MAX_EVENT_BYTES`), 10 MiB per request (`HUB_MAX_BODY_BYTES`); 413 beyond. "
        "**Decision:** a request whose events would create more than `HUB_MAX_JOBS_PER_PUBLISH` "
        "(default 10000) jobs together is a 413 too, before anything is stored (not a 429: "
        "waiting would not help, sending fewer events per request does).\n\n**Admission:** "
        "while the process cannot store more in time (a publish queued longer than "
        "`HUB_PUBLISH_MAX_WAIT`, or its event loop running later than `HUB_PUBLISH_MAX_LAG`), a "
        'publish is a 503 with `Retry-After: 1` ("Too many events are waiting to be stored"), '
        "answered at once, before the key is checked or the body read: nothing of it is stored, "
        "and it may be sent again as it was.",
        Permission.PUBLISH,
        {
            202: ("PublishResponse", "At least one event was new; its jobs are queued."),
            200: ("PublishResponse", "Every event was a repeat: the stored ones, nothing created."),
        },
        params=("IdempotencyKey",),
        body="PublishRequest",
        errors=(*_BODY, 409),
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
        "/v2/status",
        "get_status",
        _OPS,
        "The deployment's status",
        "**(beyond EP)** The deployment as a whole, for operators (admin keys): the live "
        "`hub serve` and `hub worker` processes (each heartbeats every "
        "`HUB_HEARTBEAT_INTERVAL` seconds; one silent for `HUB_HEARTBEAT_STALE_AFTER` drops "
        "out), the queue by lane (first attempts and retries, each due now or scheduled; "
        "delivering; held by the circuit breaker), how long the oldest due job has waited "
        "(`lag_seconds`), and the delivery attempts of the last minute. Every store's jobs "
        "count. `hub status` prints the same; `/metrics` has them as gauges.",
        Permission.DEPLOYMENT,
        {200: ("DeploymentStatusResponse", "The status.")},
    ),
    Op(
        "get",
        "/v2/push/vapid-key",
        "get_vapid_key",
        _PUSH,
        "Get the store's VAPID public key",
        "**(beyond EP)** The public half of the store's VAPID key pair (RFC 8292), which signs "
        "every `web_push` delivery: a browser passes it as `applicationServerKey` to "
        "`pushManager.subscribe()`, and the resulting `PushSubscription.toJSON()` is the "
        "configuration of a `web_push` integration (this is what EP's `POST "
        "/api/integrations/save-vapid-subscription` stored). The key pair is made on first use "
        "(this call, or creating a `web_push` integration); its private half is stored "
        "encrypted and never answered.\n\n**Decision:** every role may read it (it is public, "
        "and a page's backend may hold only a `publish` key).",
        Permission.PUSH_KEY,
        {200: ("VapidKeyResponse", "The public key.")},
    ),
    Op(
        "post",
        "/v2/push/vapid-key/rotate",
        "rotate_vapid_key",
        _PUSH,
        "Rotate the store's VAPID key pair",
        "**(beyond EP)** Makes a new key pair at once and answers its public key; every later "
        "push is signed with it. A subscription is bound to the key it was made with, so each "
        "browser must subscribe again with the new key and its integration's configuration be "
        "replaced (`PUT`); until then its pushes fail (the push service answers 401 or 403) "
        "and are retried on the schedule. No body.\n\n**Decision:** no grace period: push "
        "services accept exactly one key per subscription.",
        Permission.WRITE,
        {200: ("VapidKeyResponse", "The new public key.")},
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
        "The Prometheus text exposition format.\n\n**Decision:** open unless "
        "`HUB_METRICS_TOKEN` is set; then it needs `Authorization: Bearer <HUB_METRICS_TOKEN>` "
        "(compared in constant time), and anything else is a 401. Without the token, expose it "
        "only where the network is trusted.",
        None,
        {200: ({"type": "string"}, "Metrics.")},
        errors=(401,),
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
