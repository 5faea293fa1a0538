"""The API's reads of jobs: an integration's jobs, an event's jobs, one job.

Every query that serves a request is scoped by `store_id` (or by an event or integration already
found in the store). The queue's writes to jobs are the phase modules' (`hub.store`).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any
from uuid import UUID

from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncConnection

from hub.store import listing
from hub.store.listing import NEWEST_FIRST, Condition, Order
from hub.store.models import jobs
from hub.store.records import JobRecord, Page


def job_record(row: Any) -> JobRecord:
    return JobRecord(
        id=row.id,
        store_id=row.store_id,
        event_id=row.event_id,
        integration_id=row.integration_id,
        triggered_by=row.triggered_by,
        status=row.status,
        attempts=row.attempts,
        next_attempt_at=row.next_attempt_at,
        last_error=row.last_error,
        retry_of=row.retry_of,
        created_at=row.created_at,
        updated_at=row.updated_at,
        completed_at=row.completed_at,
        ordering_value=row.ordering_value,
        blocked_by=row.blocked_by,
    )


#: What a job list can be filtered on (`hub.store.listing`).
FILTERABLE = {
    "status": jobs.c.status,
    "triggered_by": jobs.c.triggered_by,
    "created_at": jobs.c.created_at,
    "updated_at": jobs.c.updated_at,
    "completed_at": jobs.c.completed_at,
}
#: …and sorted on.
SORTABLE = {"created_at": jobs.c.created_at, "updated_at": jobs.c.updated_at}


async def list_jobs(
    conn: AsyncConnection,
    store_id: UUID,
    integration_id: UUID,
    conditions: Sequence[Condition] = (),
    *,
    order: Order = NEWEST_FIRST,
    limit: int,
    offset: int,
) -> Page[JobRecord]:
    """The integration's jobs that meet every condition, a page in `order`."""
    where = [
        jobs.c.store_id == store_id,
        jobs.c.integration_id == integration_id,
        *listing.where(conditions, FILTERABLE),
    ]
    total = (await conn.execute(select(func.count()).select_from(jobs).where(*where))).scalar_one()
    rows = await conn.execute(
        select(jobs)
        .where(*where)
        .order_by(*listing.order_by(order, SORTABLE, jobs.c.id))
        .limit(limit)
        .offset(offset)
    )
    return Page([job_record(r) for r in rows], total)


async def jobs_of_event(conn: AsyncConnection, event_id: UUID, *, limit: int) -> list[JobRecord]:
    rows = await conn.execute(
        select(jobs)
        .where(jobs.c.event_id == event_id)
        .order_by(jobs.c.created_at.desc(), jobs.c.id.desc())
        .limit(limit)
    )
    return [job_record(r) for r in rows]


async def job_counts_by_event(conn: AsyncConnection, event_ids: Sequence[UUID]) -> dict[UUID, int]:
    if not event_ids:
        return {}
    rows = await conn.execute(
        select(jobs.c.event_id, func.count())
        .where(jobs.c.event_id.in_(list(event_ids)))
        .group_by(jobs.c.event_id)
    )
    return {row[0]: row[1] for row in rows}


async def get_job(
    conn: AsyncConnection, store_id: UUID, integration_id: UUID, job_id: UUID
) -> JobRecord | None:
    row = (
        await conn.execute(
            select(jobs).where(
                jobs.c.id == job_id,
                jobs.c.store_id == store_id,
                jobs.c.integration_id == integration_id,
            )
        )
    ).first()
    return None if row is None else job_record(row)
