"""Pydantic models of the API's requests and responses: the edge's validation and the source of
`/openapi.json`. Responses are built from store records by the `*_out` functions."""

from __future__ import annotations

import functools
from datetime import UTC, datetime
from typing import Annotated, Any, Literal

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    SerializerFunctionWrapHandler,
    model_serializer,
)

from hub.services.inputs import (
    MAX_IN_FLIGHT_DOC,
    ORDERING_KEY_DOC,
    RATE_LIMIT_DOC,
    EventIn,
    IntegrationCreate,
    IntegrationUpdate,
    ReplayCreate,
)
from hub.services.integrations import masked_configuration
from hub.store.records import (
    EventRecord,
    IntegrationRecord,
    JobRecord,
    LogRecord,
    ReplayRecord,
    VapidKeyRecord,
)


def timestamp(value: datetime | None) -> str | None:
    """RFC 3339 UTC with milliseconds and `Z`."""
    if value is None:
        return None
    # isoformat truncates to milliseconds, as the spec's examples do; it is C and ~10x strftime.
    return value.astimezone(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


# --- request envelopes (the OpenAPI document's; the inputs are `hub.services.inputs`) --


class PublishRequest(BaseModel):
    data: EventIn | Annotated[list[EventIn], Field(min_length=1, max_length=100)]


class IntegrationCreateRequest(BaseModel):
    data: IntegrationCreate


class IntegrationUpdateRequest(BaseModel):
    data: IntegrationUpdate


class ReplayCreateRequest(BaseModel):
    data: ReplayCreate


# --- responses ---------------------------------------------------------------------------------


class Links(BaseModel):
    self: str


class Timestamps(BaseModel):
    created_at: str
    updated_at: str


class CreatedTimestamps(BaseModel):
    created_at: str


class JobTimestamps(BaseModel):
    created_at: str
    updated_at: str
    completed_at: str | None


class Meta(BaseModel):
    timestamps: Timestamps


class CreatedMeta(BaseModel):
    timestamps: CreatedTimestamps


class IntegrationOut(BaseModel):
    id: str
    type: Literal["integration"] = "integration"
    name: str
    description: str | None
    enabled: bool
    integration_type: str
    observes: list[str]
    configuration: dict[str, Any] = Field(
        description="Secrets masked: all but the last 4 as `*`; an AMQP `url` as "
        "`amqp://user:****@host/vhost`."
    )
    conditions: dict[str, Any] | None = Field(
        description="(beyond EP) the payload filter in its canonical form; null: none."
    )
    disabled_reason: str | None = Field(description="(beyond EP) why the hub disabled it.")
    max_in_flight: int | None = Field(description=MAX_IN_FLIGHT_DOC)
    rate_limit: float | None = Field(description=RATE_LIMIT_DOC)
    failing_since: str | None = Field(
        description="(beyond EP) since when every delivery attempt has failed (the circuit "
        "breaker's clock; a success clears it); null while deliveries succeed."
    )
    ordering_key: str | None = Field(description=ORDERING_KEY_DOC)
    links: Links
    meta: Meta


class Ref(BaseModel):
    type: str
    id: str


class RefData(BaseModel):
    data: Ref


class JobRelationships(BaseModel):
    integration: RefData
    event: RefData
    retry_of: RefData | None = None
    blocked_by: RefData | None = Field(
        default=None,
        description="(beyond EP) While the job waits for an earlier job of its ordering key "
        "value (its status is `pending`, or `held`): that job, the one before it in the "
        "value's queue. It proceeds once that job ends, whether succeeded, failed or cancelled. "
        "null otherwise.",
    )


class JobMeta(BaseModel):
    timestamps: JobTimestamps


class JobOut(BaseModel):
    id: str
    type: Literal["integration-job"] = "integration-job"
    status: Literal["pending", "delivering", "succeeded", "failed", "cancelled", "held"] = Field(
        description="`held` (beyond EP): waiting while the circuit breaker has the integration "
        "switched off; re-enabling it makes the job pending again."
    )
    attempts: int
    next_attempt_at: str | None = Field(
        description="When the next attempt is due, while pending; null for a job waiting for "
        "an earlier one of its ordering key value (see `relationships.blocked_by`)."
    )
    triggered_by: str
    last_error: str | None
    ordering_key_value: str | None = Field(
        default=None,
        description="(beyond EP) The value of the integration's `ordering_key` in the event "
        "payload: the jobs of one value are delivered one at a time, in publish order. null: "
        "unordered.",
    )
    relationships: JobRelationships
    links: Links
    meta: JobMeta


class LogRelationships(BaseModel):
    integration: RefData
    job: RefData


class LogMeta(BaseModel):
    timestamps: CreatedTimestamps


class LogOut(BaseModel):
    id: str
    type: Literal["integration-log"] = "integration-log"
    succeeded: bool
    attempt: int
    processing_time: float = Field(description="Seconds.")
    body: str | None = Field(description="The response body, truncated to 4 KiB.")
    status_code: int | None
    error_detail: str | None
    relationships: LogRelationships
    meta: LogMeta


class EventJob(BaseModel):
    type: Literal["integration-job"] = "integration-job"
    id: str
    integration_id: str
    status: str
    attempts: int


class EventJobs(BaseModel):
    model_config = ConfigDict(json_schema_mode_override="serialization")

    total: int
    data: list[EventJob] | None = Field(
        default=None,
        description="(GET only; absent in the publish answer) the newest 100 jobs and their "
        "statuses.",
    )

    @model_serializer(mode="wrap")
    def _omit_absent_data(self, handler: SerializerFunctionWrapHandler) -> dict[str, Any]:
        out: dict[str, Any] = handler(self)
        if out.get("data") is None:
            out.pop("data", None)
        return out


class EventOut(BaseModel):
    id: str
    type: Literal["event"] = "event"
    triggered_by: str
    client_id: str | None
    payload: dict[str, Any]
    jobs: EventJobs
    links: Links
    meta: CreatedMeta


class ReplayJobs(BaseModel):
    total: int = Field(description="Jobs the replay created.")
    pending: int = Field(description="Not finished yet: pending, delivering or held.")
    succeeded: int
    failed: int
    cancelled: int


class ReplayRelationships(BaseModel):
    integration: RefData


class ReplayOut(BaseModel):
    id: str
    type: Literal["integration-replay"] = "integration-replay"
    status: Literal["running", "completed"] = Field(
        description="`completed` once none of its jobs is pending any more."
    )
    since: str
    until: str
    job_statuses: list[str] = Field(description="The `status` values it replayed.")
    jobs: ReplayJobs
    relationships: ReplayRelationships
    links: Links
    meta: CreatedMeta


class SecretOut(BaseModel):
    type: Literal["integration-secret"] = "integration-secret"
    secret: str
    previous_secret_expires_at: str | None = Field(
        default=None,
        description="(beyond EP) Until when the secret replaced by the last rotation still signs "
        "deliveries (a second `v1,` signature); null when none does.",
    )


class VapidKeyOut(BaseModel):
    """(beyond EP) The store's VAPID public key, for browsers' `applicationServerKey`."""

    type: Literal["vapid-key"] = "vapid-key"
    public_key: str = Field(
        description="The uncompressed P-256 public key in base64url (87 characters): pass it, "
        "decoded to bytes, as `applicationServerKey` to `pushManager.subscribe`."
    )
    links: Links
    meta: CreatedMeta


def vapid_key_out(base: str, r: VapidKeyRecord) -> VapidKeyOut:
    return VapidKeyOut(
        public_key=r.public_key,
        links=Links(self=f"{base}/v2/push/vapid-key"),
        meta=CreatedMeta(timestamps=CreatedTimestamps(created_at=_ts(r.created_at))),
    )


class DeletedOut(BaseModel):
    type: Literal["integration"] = "integration"
    id: str


class PageMeta(BaseModel):
    limit: int
    offset: int
    current: int
    total: int


class ResultsMeta(BaseModel):
    total: int


class ListMeta(BaseModel):
    page: PageMeta
    results: ResultsMeta


class LogListMeta(ListMeta):
    """A log list's `meta`: also the page's numbers directly, as Elastic Path documents."""

    limit: int
    offset: int
    current: int
    total: int = Field(description="The number of pages, as `page.total`.")


class AccessTokenOut(BaseModel):
    """Elastic Path's token body (`POST /oauth/access_token`)."""

    access_token: str = Field(description="`hubt_…`: send it as `Authorization: Bearer`.")
    token_type: Literal["Bearer"] = "Bearer"  # noqa: S105 - the OAuth token type, no secret
    expires: int = Field(description="When it expires, in Unix seconds.")
    expires_in: int = Field(description="Its lifetime in seconds (`HUB_TOKEN_TTL`).")
    identifier: Literal["client_credentials"] = Field(description="The grant that issued it.")


class ListLinks(BaseModel):
    self: str
    first: str
    last: str
    next: str | None
    prev: str | None


class ErrorOut(BaseModel):
    status: int
    title: str
    detail: str
    source: str | None = None


class ErrorsOut(BaseModel):
    errors: list[ErrorOut]


# --- builders ----------------------------------------------------------------------------------


def integration_out(base: str, r: IntegrationRecord) -> IntegrationOut:
    return IntegrationOut(
        id=str(r.id),
        name=r.name,
        description=r.description,
        enabled=r.enabled,
        integration_type=r.integration_type,
        observes=list(r.observes),
        configuration=masked_configuration(r.integration_type, r.configuration),
        conditions=r.conditions,
        disabled_reason=r.disabled_reason,
        max_in_flight=r.max_in_flight,
        rate_limit=r.rate_limit,
        failing_since=timestamp(r.failing_since),
        ordering_key=r.ordering_key,
        links=Links(self=f"{base}/v2/integrations/{r.id}"),
        meta=Meta(
            timestamps=Timestamps(created_at=_ts(r.created_at), updated_at=_ts(r.updated_at))
        ),
    )


@functools.lru_cache(maxsize=256)
def _ts(value: datetime) -> str:
    # Memoised: the events of a batch share their creation time.
    out = timestamp(value)
    assert out is not None
    return out


def job_out(base: str, r: JobRecord) -> JobOut:
    return JobOut(
        id=str(r.id),
        status=r.status,
        attempts=r.attempts,
        next_attempt_at=timestamp(r.next_attempt_at) if r.status == "pending" else None,
        triggered_by=r.triggered_by,
        last_error=r.last_error,
        ordering_key_value=r.ordering_value,
        relationships=JobRelationships(
            integration=RefData(data=Ref(type="integration", id=str(r.integration_id))),
            event=RefData(data=Ref(type="event", id=str(r.event_id))),
            retry_of=(
                RefData(data=Ref(type="integration-job", id=str(r.retry_of)))
                if r.retry_of
                else None
            ),
            blocked_by=(
                RefData(data=Ref(type="integration-job", id=str(r.blocked_by)))
                if r.blocked_by
                else None
            ),
        ),
        links=Links(self=f"{base}/v2/integrations/{r.integration_id}/jobs/{r.id}"),
        meta=JobMeta(
            timestamps=JobTimestamps(
                created_at=_ts(r.created_at),
                updated_at=_ts(r.updated_at),
                completed_at=timestamp(r.completed_at),
            )
        ),
    )


def log_out(r: LogRecord) -> LogOut:
    return LogOut(
        id=str(r.id),
        succeeded=r.succeeded,
        attempt=r.attempt,
        processing_time=r.processing_time,
        body=r.body,
        status_code=r.status_code,
        error_detail=r.error_detail,
        relationships=LogRelationships(
            integration=RefData(data=Ref(type="integration", id=str(r.integration_id))),
            job=RefData(data=Ref(type="integration-job", id=str(r.job_id))),
        ),
        meta=LogMeta(timestamps=CreatedTimestamps(created_at=_ts(r.created_at))),
    )


def replay_out(base: str, r: ReplayRecord) -> ReplayOut:
    finished = {k: r.jobs.get(k, 0) for k in ("succeeded", "failed", "cancelled")}
    pending = sum(r.jobs.get(k, 0) for k in ("pending", "delivering", "held"))
    return ReplayOut(
        id=str(r.id),
        status="running" if pending else "completed",
        since=_ts(r.since),
        until=_ts(r.until),
        job_statuses=list(r.statuses),
        jobs=ReplayJobs(total=r.total, pending=pending, **finished),
        relationships=ReplayRelationships(
            integration=RefData(data=Ref(type="integration", id=str(r.integration_id)))
        ),
        links=Links(self=f"{base}/v2/integrations/{r.integration_id}/replays/{r.id}"),
        meta=CreatedMeta(timestamps=CreatedTimestamps(created_at=_ts(r.created_at))),
    )


def published_event(base: str, r: EventRecord, *, jobs_total: int) -> dict[str, Any]:
    """`event_out(base, r, jobs_total=…).model_dump(mode="json")`, built directly: the publish
    answer is the API's hottest path (tests/unit/test_published_event.py holds the two equal)."""
    return {
        "id": str(r.id),
        "type": "event",
        "triggered_by": r.triggered_by,
        "client_id": r.client_id,
        "payload": r.payload,
        "jobs": {"total": jobs_total},
        "links": {"self": f"{base}/v2/events/{r.id}"},
        "meta": {"timestamps": {"created_at": _ts(r.created_at)}},
    }


def event_out(
    base: str, r: EventRecord, *, jobs_total: int, jobs: list[JobRecord] | None = None
) -> EventOut:
    return EventOut(
        id=str(r.id),
        triggered_by=r.triggered_by,
        client_id=r.client_id,
        payload=r.payload,
        jobs=EventJobs(
            total=jobs_total,
            data=None
            if jobs is None
            else [
                EventJob(
                    id=str(j.id),
                    integration_id=str(j.integration_id),
                    status=j.status,
                    attempts=j.attempts,
                )
                for j in jobs
            ],
        ),
        links=Links(self=f"{base}/v2/events/{r.id}"),
        meta=CreatedMeta(timestamps=CreatedTimestamps(created_at=_ts(r.created_at))),
    )
