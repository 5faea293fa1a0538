"""The queue's SQL: enqueue, claim, record attempts, release, cancel. No other module writes
to `integration_jobs` or `integration_logs`.

Job life: ``pending`` → (claimed) ``delivering`` → ``succeeded`` | ``pending`` (retry scheduled)
| ``failed``; ``pending`` → ``cancelled`` when its integration is disabled or deleted.

Claiming sets a lease (`lease_owner`, `lease_expires_at`). `attempts` counts *recorded* attempts:
an attempt is numbered ``attempts + 1`` when claimed and counted only when its log row is
written, in the same transaction. A worker that dies mid-attempt therefore leaves no log and no
count; once its lease expires `release_stalled` puts the job back to ``pending`` and the same
attempt number is tried again (the only way a delivery can be duplicated).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, cast
from uuid import UUID

from sqlalchemy import Table, func, insert, select, text, update
from sqlalchemy.ext.asyncio import AsyncConnection
from uuid_utils.compat import uuid7

from hub.store.models import Integration, IntegrationJob, IntegrationLog
from hub.store.records import JobRecord
from hub.store.repository import events, job_record

jobs = cast(Table, IntegrationJob.__table__)
logs = cast(Table, IntegrationLog.__table__)
integrations = cast(Table, Integration.__table__)

#: The channel a publish transaction notifies so that idle workers wake at once.
CHANNEL = "hub_jobs"


@dataclass(frozen=True, slots=True)
class NewJob:
    integration_id: UUID
    event_id: UUID
    triggered_by: str


async def enqueue(
    conn: AsyncConnection, store_id: UUID, new: Sequence[NewJob], now: datetime
) -> list[UUID]:
    """Insert pending jobs, due now, and notify the workers (delivered at commit)."""
    if not new:
        return []
    ids = [uuid7() for _ in new]
    await conn.execute(
        insert(jobs),
        [
            {
                "id": job_id,
                "store_id": store_id,
                "event_id": job.event_id,
                "integration_id": job.integration_id,
                "triggered_by": job.triggered_by,
                "status": "pending",
                "attempts": 0,
                "next_attempt_at": now,
                "created_at": now,
                "updated_at": now,
            }
            for job_id, job in zip(ids, new, strict=True)
        ],
    )
    await notify(conn)
    return ids


async def notify(conn: AsyncConnection) -> None:
    await conn.execute(select(func.pg_notify(CHANNEL, "")))


@dataclass(frozen=True, slots=True)
class ClaimedJob:
    """A leased job with everything its delivery needs."""

    id: UUID
    store_id: UUID
    event_id: UUID
    integration_id: UUID
    triggered_by: str
    attempt: int
    """The number of the attempt about to be made (1-based)."""
    payload: dict[str, Any]
    event_time: datetime
    integration_name: str
    integration_description: str | None
    integration_type: str
    configuration: dict[str, Any]
    signing_secret: str
    integration_live: bool
    """False when the integration was disabled or deleted since the job was queued."""


async def claim(
    conn: AsyncConnection, *, owner: str, limit: int, lease: timedelta
) -> list[ClaimedJob]:
    """Lease up to `limit` due jobs in one statement; concurrent workers skip each other's rows."""
    due = (
        select(jobs.c.id)
        .where(jobs.c.status == "pending", jobs.c.next_attempt_at <= func.now())
        .order_by(jobs.c.next_attempt_at)
        .limit(limit)
        .with_for_update(skip_locked=True)
        .scalar_subquery()
    )
    stmt = (
        update(jobs)
        .where(
            jobs.c.id.in_(due),
            events.c.id == jobs.c.event_id,
            integrations.c.id == jobs.c.integration_id,
        )
        .values(
            status="delivering",
            lease_owner=owner,
            lease_expires_at=func.now() + lease,
            updated_at=func.now(),
        )
        .returning(
            jobs.c.id,
            jobs.c.store_id,
            jobs.c.event_id,
            jobs.c.integration_id,
            jobs.c.triggered_by,
            jobs.c.attempts,
            events.c.payload,
            events.c.created_at.label("event_time"),
            integrations.c.name,
            integrations.c.description,
            integrations.c.integration_type,
            integrations.c.configuration,
            integrations.c.signing_secret,
            (integrations.c.enabled & integrations.c.deleted_at.is_(None)).label("live"),
        )
    )
    return [
        ClaimedJob(
            id=row.id,
            store_id=row.store_id,
            event_id=row.event_id,
            integration_id=row.integration_id,
            triggered_by=row.triggered_by,
            attempt=row.attempts + 1,
            payload=row.payload,
            event_time=row.event_time,
            integration_name=row.name,
            integration_description=row.description,
            integration_type=row.integration_type,
            configuration=row.configuration,
            signing_secret=row.signing_secret,
            integration_live=row.live,
        )
        for row in await conn.execute(stmt)
    ]


@dataclass(frozen=True, slots=True)
class AttemptRecord:
    """The outcome of one attempt and the policy's answer, to be written atomically."""

    job_id: UUID
    store_id: UUID
    integration_id: UUID
    attempt: int
    succeeded: bool
    processing_time: float
    status_code: int | None
    body: str | None
    error_detail: str | None
    status: str
    """The job's next status: succeeded, pending (retry), or failed."""
    next_attempt_at: datetime | None
    disable_reason: str | None = None
    """Set when the outcome disables the integration (410 Gone)."""


_RECORD_JOBS = text(
    """
    UPDATE integration_jobs AS j
    SET status = v.status,
        attempts = v.attempt,
        next_attempt_at = v.next_attempt_at,
        last_error = v.last_error,
        completed_at = CASE WHEN v.status IN ('succeeded', 'failed') THEN now() END,
        lease_owner = NULL,
        lease_expires_at = NULL,
        updated_at = now()
    FROM unnest(
        CAST(:ids AS uuid[]), CAST(:statuses AS text[]), CAST(:attempts AS int[]),
        CAST(:next_at AS timestamptz[]), CAST(:errors AS text[])
    ) AS v(id, status, attempt, next_attempt_at, last_error)
    WHERE j.id = v.id AND j.status = 'delivering' AND j.lease_owner = :owner
    RETURNING j.id
    """
)


async def record_attempts(
    conn: AsyncConnection, owner: str, records: Sequence[AttemptRecord]
) -> set[UUID]:
    """Write one log per attempt and move each job on, in the caller's transaction.

    A log is written for every attempt that ran, even when the lease was lost meanwhile; the
    job itself is only moved on while `owner` still holds it. Returns the jobs moved on.
    """
    if not records:
        return set()
    await conn.execute(
        insert(logs),
        [
            {
                "id": uuid7(),
                "store_id": r.store_id,
                "integration_id": r.integration_id,
                "job_id": r.job_id,
                "attempt": r.attempt,
                "succeeded": r.succeeded,
                "processing_time": r.processing_time,
                "status_code": r.status_code,
                "body": r.body,
                "error_detail": r.error_detail,
            }
            for r in records
        ],
    )
    moved = {
        row.id
        for row in await conn.execute(
            _RECORD_JOBS,
            {
                "owner": owner,
                "ids": [r.job_id for r in records],
                "statuses": [r.status for r in records],
                "attempts": [r.attempt for r in records],
                "next_at": [r.next_attempt_at for r in records],
                "errors": [None if r.succeeded else r.error_detail for r in records],
            },
        )
    }
    for r in records:
        if r.disable_reason is not None:
            await disable_integration(conn, r.integration_id, r.disable_reason)
    return moved


async def disable_integration(conn: AsyncConnection, integration_id: UUID, reason: str) -> None:
    """Switch an integration off with a visible reason and cancel its pending jobs."""
    await conn.execute(
        update(integrations)
        .where(integrations.c.id == integration_id)
        .values(enabled=False, disabled_reason=reason, updated_at=func.now())
    )
    await cancel_pending(conn, integration_id, reason="the integration was disabled")


async def cancel_pending(conn: AsyncConnection, integration_id: UUID, *, reason: str) -> int:
    """Cancel the integration's jobs that are waiting; jobs in flight finish their attempt."""
    result = await conn.execute(
        update(jobs)
        .where(jobs.c.integration_id == integration_id, jobs.c.status == "pending")
        .values(
            status="cancelled",
            last_error=reason,
            next_attempt_at=None,
            completed_at=func.now(),
            updated_at=func.now(),
        )
    )
    return result.rowcount


async def cancel_claimed(conn: AsyncConnection, owner: str, job_ids: Sequence[UUID]) -> None:
    """Cancel claimed jobs whose integration went away before their attempt ran."""
    if not job_ids:
        return
    await conn.execute(
        update(jobs)
        .where(jobs.c.id.in_(list(job_ids)), jobs.c.lease_owner == owner)
        .values(
            status="cancelled",
            last_error="the integration was disabled or deleted",
            next_attempt_at=None,
            lease_owner=None,
            lease_expires_at=None,
            completed_at=func.now(),
            updated_at=func.now(),
        )
    )


async def release(conn: AsyncConnection, owner: str, job_ids: Sequence[UUID]) -> int:
    """Give leased jobs back (due now) without counting an attempt: a worker stopping early."""
    if not job_ids:
        return 0
    result = await conn.execute(
        update(jobs)
        .where(
            jobs.c.id.in_(list(job_ids)),
            jobs.c.lease_owner == owner,
            jobs.c.status == "delivering",
        )
        .values(
            status="pending",
            lease_owner=None,
            lease_expires_at=None,
            next_attempt_at=func.now(),
            updated_at=func.now(),
        )
    )
    await notify(conn)
    return result.rowcount


async def release_stalled(conn: AsyncConnection) -> int:
    """Put jobs whose lease expired (their worker died) back to pending, due now."""
    result = await conn.execute(
        update(jobs)
        .where(jobs.c.status == "delivering", jobs.c.lease_expires_at < func.now())
        .values(
            status="pending",
            lease_owner=None,
            lease_expires_at=None,
            next_attempt_at=func.now(),
            updated_at=func.now(),
        )
    )
    return result.rowcount


async def next_due_in(conn: AsyncConnection) -> float | None:
    """Seconds until the earliest pending job is due (≤ 0: due now); None when none waits."""
    value = (
        await conn.execute(
            select(func.extract("epoch", func.min(jobs.c.next_attempt_at) - func.now())).where(
                jobs.c.status == "pending"
            )
        )
    ).scalar_one()
    return None if value is None else float(value)


async def retry_job(conn: AsyncConnection, job: JobRecord) -> JobRecord:
    """A new pending job for the same event and integration, pointing back with `retry_of`."""
    row = (
        await conn.execute(
            insert(jobs)
            .values(
                id=uuid7(),
                store_id=job.store_id,
                event_id=job.event_id,
                integration_id=job.integration_id,
                triggered_by=job.triggered_by,
                status="pending",
                attempts=0,
                next_attempt_at=func.now(),
                retry_of=job.id,
            )
            .returning(jobs)
        )
    ).one()
    await notify(conn)
    return job_record(row)
