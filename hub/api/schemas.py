"""Pydantic models of the API's requests and responses: the edge's validation and the source of
`/openapi.json`. Responses are built from store records by the `*_out` functions."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Annotated, Any, Literal

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    SerializerFunctionWrapHandler,
    model_serializer,
)

from deliverers.config import CONFIG_MODELS, IntegrationType, mask
from hub.store.records import EventRecord, IntegrationRecord, JobRecord, LogRecord

Name = Annotated[str, Field(min_length=1, max_length=255)]
Description = Annotated[str, Field(max_length=4096)]
EventKey = Annotated[str, Field(min_length=1, max_length=128)]


def timestamp(value: datetime | None) -> str | None:
    """RFC 3339 UTC with milliseconds and `Z`."""
    if value is None:
        return None
    utc = value.astimezone(UTC)
    return utc.strftime("%Y-%m-%dT%H:%M:%S.") + f"{utc.microsecond // 1000:03d}Z"


class _In(BaseModel):
    model_config = ConfigDict(extra="forbid")


# --- requests ----------------------------------------------------------------------------------


class IntegrationCreate(_In):
    """`data` of `POST /v2/integrations`."""

    type: Literal["integration"]
    name: Name
    description: Description | None = None
    enabled: bool = False
    integration_type: IntegrationType
    observes: Annotated[list[EventKey], Field(min_length=1, max_length=200)]
    configuration: dict[str, Any] = Field(
        description="By integration_type: webhook {url, secret_key?}; aws_sqs {url, "
        "aws_access_key_id, aws_secret_access_key, region}; stomp {addresses, destination, "
        "username?, password?}."
    )
    # Read-only attributes an EP client may echo back from a GET; accepted and ignored.
    id: str | None = None
    links: dict[str, Any] | None = None
    meta: dict[str, Any] | None = None
    disabled_reason: str | None = None


class IntegrationUpdate(_In):
    """`data` of `PUT /v2/integrations/{id}`: only the attributes given change.

    `configuration` is merged into the stored one key by key (unless `integration_type`
    changes, when it replaces it); a secret sent back in its masked form keeps its value, and
    `null` removes an optional field.
    """

    type: Literal["integration"]
    name: Name | None = None
    description: Description | None = None
    enabled: bool | None = None
    integration_type: IntegrationType | None = None
    observes: Annotated[list[EventKey], Field(min_length=1, max_length=200)] | None = None
    configuration: dict[str, Any] | None = None
    id: str | None = None
    links: dict[str, Any] | None = None
    meta: dict[str, Any] | None = None
    disabled_reason: str | None = None


class EventIn(_In):
    """One event of `POST /v2/events`."""

    type: Literal["event"]
    triggered_by: EventKey
    payload: dict[str, Any] = Field(
        description='The resource document: `{"data": {...}, "included": {...}}`.'
    )
    id: Annotated[str, Field(min_length=1, max_length=255)] | None = Field(
        default=None, description="Client id: publishing the same id again creates nothing."
    )


class PublishRequest(BaseModel):
    data: EventIn | Annotated[list[EventIn], Field(min_length=1, max_length=100)]


class IntegrationCreateRequest(BaseModel):
    data: IntegrationCreate


class IntegrationUpdateRequest(BaseModel):
    data: IntegrationUpdate


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
    configuration: dict[str, Any] = Field(description="Secrets masked: all but the last 4 as `*`.")
    disabled_reason: str | None = Field(description="(beyond EP) why the hub disabled it.")
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
    next_attempt_at: str | None
    triggered_by: str
    last_error: str | None
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


class SecretOut(BaseModel):
    type: Literal["integration-secret"] = "integration-secret"
    secret: str


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


def masked_configuration(integration_type: str, configuration: dict[str, Any]) -> dict[str, Any]:
    secrets = CONFIG_MODELS[integration_type].SECRET_FIELDS
    return {
        key: mask(value) if key in secrets and isinstance(value, str) else value
        for key, value in configuration.items()
    }


def integration_out(base: str, r: IntegrationRecord) -> IntegrationOut:
    return IntegrationOut(
        id=str(r.id),
        name=r.name,
        description=r.description,
        enabled=r.enabled,
        integration_type=r.integration_type,
        observes=list(r.observes),
        configuration=masked_configuration(r.integration_type, r.configuration),
        disabled_reason=r.disabled_reason,
        links=Links(self=f"{base}/v2/integrations/{r.id}"),
        meta=Meta(
            timestamps=Timestamps(created_at=_ts(r.created_at), updated_at=_ts(r.updated_at))
        ),
    )


def _ts(value: datetime) -> str:
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
        relationships=JobRelationships(
            integration=RefData(data=Ref(type="integration", id=str(r.integration_id))),
            event=RefData(data=Ref(type="event", id=str(r.event_id))),
            retry_of=(
                RefData(data=Ref(type="integration-job", id=str(r.retry_of)))
                if r.retry_of
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
