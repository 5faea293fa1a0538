"""The status documents (beyond EP): one integration's health (`GET /v2/integrations/{id}/status`)
and the deployment's processes and queue (`GET /v2/status`, `hub status`)."""

from __future__ import annotations

from datetime import datetime
from typing import Literal

from pydantic import BaseModel, Field

from hub.api.schemas import Links, timestamp
from hub.services.processes import DeploymentStatus
from hub.store.records import IntegrationStatusRecord


def _ts(value: datetime) -> str:
    out = timestamp(value)
    assert out is not None
    return out


class JobCounts(BaseModel):
    pending: int
    delivering: int
    succeeded: int
    failed: int
    cancelled: int
    held: int


class LastErrorOut(BaseModel):
    at: str
    detail: str | None = Field(description="The attempt's `error_detail`.")
    status_code: int | None


class IntegrationStatusOut(BaseModel):
    id: str = Field(description="The integration's id.")
    type: Literal["integration-status"] = "integration-status"
    enabled: bool
    disabled_reason: str | None = Field(description="Why the hub disabled it, if it did.")
    last_attempt_at: str | None = Field(description="The newest delivery attempt; null: none.")
    last_success_at: str | None = Field(description="The newest successful attempt.")
    last_error: LastErrorOut | None = Field(
        description="The newest failed attempt (even if a success came after it; compare "
        "`at` with `last_success_at`); null: no attempt ever failed."
    )
    jobs: JobCounts = Field(description="The integration's jobs by status (all time).")
    attempts_1h: int = Field(description="Attempts over the last hour.")
    success_rate_1h: float | None = Field(
        description="Successful / all attempts over the last hour, 0 to 1; null: no attempt."
    )
    links: Links


class ProcessOut(BaseModel):
    id: str = Field(description="`host:pid:random`; also the lease owner of its jobs in flight.")
    role: Literal["api", "worker", "api+worker"] = Field(
        description="`api` (`hub serve --no-worker`), `worker` (`hub worker`) or `api+worker` "
        "(`hub serve`)."
    )
    host: str
    pid: int
    version: str = Field(description="The hub's version the process runs.")
    address: str | None = Field(description="Where an API process listens; null: a worker.")
    started_at: str
    last_seen_at: str = Field(description="Its last heartbeat.")
    jobs_in_flight: int = Field(description="Jobs its dispatcher held at its last heartbeat.")


class LaneOut(BaseModel):
    due: int = Field(description="Pending jobs whose time has come.")
    scheduled: int = Field(description="Pending jobs waiting for their time (retries' delays).")


class QueueOut(BaseModel):
    first_attempts: LaneOut = Field(description="Jobs not attempted yet.")
    retries: LaneOut = Field(description="Jobs attempted before.")
    delivering: int = Field(description="Jobs claimed by a dispatcher, in flight.")
    held: int = Field(
        description="Jobs held while the circuit breaker keeps their integration switched off."
    )


class DeliveriesOut(BaseModel):
    succeeded: int
    failed: int


class DeploymentStatusOut(BaseModel):
    id: Literal["hub"] = "hub"
    type: Literal["hub-status"] = "hub-status"
    at: str = Field(description="When these figures were read (the database's clock).")
    processes: list[ProcessOut] = Field(
        description="The live processes: those whose heartbeat is younger than "
        "`HUB_HEARTBEAT_STALE_AFTER`; API processes first, oldest first."
    )
    queue: QueueOut
    oldest_due_at: str | None = Field(
        description="When the job that has waited longest became due; null: none is due."
    )
    lag_seconds: float = Field(description="How long that job has been waiting (0: none due).")
    deliveries_1m: DeliveriesOut = Field(
        description="Delivery attempts recorded over the last minute, by outcome."
    )
    links: Links


def status_out(base: str, r: IntegrationStatusRecord) -> IntegrationStatusOut:
    error = r.last_error
    return IntegrationStatusOut(
        id=str(r.integration.id),
        enabled=r.integration.enabled,
        disabled_reason=r.integration.disabled_reason,
        last_attempt_at=timestamp(r.last_attempt_at),
        last_success_at=timestamp(r.last_success_at),
        last_error=None
        if error is None
        else LastErrorOut(at=_ts(error.at), detail=error.detail, status_code=error.status_code),
        jobs=JobCounts(**{status: r.jobs.get(status, 0) for status in JobCounts.model_fields}),
        attempts_1h=r.recent_attempts,
        success_rate_1h=round(r.recent_successes / r.recent_attempts, 4)
        if r.recent_attempts
        else None,
        links=Links(self=f"{base}/v2/integrations/{r.integration.id}/status"),
    )


def deployment_status_out(base: str, r: DeploymentStatus) -> DeploymentStatusOut:
    q = r.queue
    return DeploymentStatusOut(
        at=_ts(q.at),
        processes=[
            ProcessOut(
                id=p.id,
                role=p.role,
                host=p.host,
                pid=p.pid,
                version=p.version,
                address=p.address,
                started_at=_ts(p.started_at),
                last_seen_at=_ts(p.last_seen_at),
                jobs_in_flight=p.jobs_in_flight,
            )
            for p in r.processes
        ],
        queue=QueueOut(
            first_attempts=LaneOut(due=q.first_due, scheduled=q.first_scheduled),
            retries=LaneOut(due=q.retries_due, scheduled=q.retries_scheduled),
            delivering=q.delivering,
            held=q.held,
        ),
        oldest_due_at=timestamp(q.oldest_due_at),
        lag_seconds=round(q.lag_seconds, 3),
        deliveries_1m=DeliveriesOut(succeeded=r.deliveries.succeeded, failed=r.deliveries.failed),
        links=Links(self=f"{base}/v2/status"),
    )
