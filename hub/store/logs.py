"""The attempts' log: the API's list of logs, and an integration's status drawn from its jobs
and logs. One row per attempt, written only by `hub.store.attempts`.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import timedelta
from typing import Any
from uuid import UUID

from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncConnection

from hub.store import listing
from hub.store.listing import NEWEST_FIRST, Condition, Order
from hub.store.models import integrations, jobs, logs
from hub.store.records import (
    IntegrationRecord,
    IntegrationStatusRecord,
    LastErrorRecord,
    LogRecord,
    Page,
)


def _log(row: Any) -> LogRecord:
    return LogRecord(
        id=row.id,
        store_id=row.store_id,
        integration_id=row.integration_id,
        job_id=row.job_id,
        attempt=row.attempt,
        succeeded=row.succeeded,
        processing_time=row.processing_time,
        status_code=row.status_code,
        body=row.body,
        error_detail=row.error_detail,
        created_at=row.created_at,
    )


log_record = _log
"""A row of `integration_logs` as its record (for the store's other lists of logs)."""

#: What a log list can be filtered on (`hub.store.listing`).
FILTERABLE = {
    "succeeded": logs.c.succeeded,
    "status_code": logs.c.status_code,
    "attempt": logs.c.attempt,
    "created_at": logs.c.created_at,
}
#: …and sorted on.
SORTABLE = {"created_at": logs.c.created_at}


@dataclass(frozen=True, slots=True)
class LogScope:
    """Whose logs: the whole store's, one integration's, or one job's."""

    integration_id: UUID | None = None
    job_id: UUID | None = None


async def list_logs(
    conn: AsyncConnection,
    store_id: UUID,
    scope: LogScope,
    conditions: Sequence[Condition] = (),
    *,
    order: Order | None = None,
    limit: int,
    offset: int,
) -> Page[LogRecord]:
    """The scope's logs that meet every condition, a page in `order`; by default newest first
    (a job's: newest attempt first)."""
    where = [logs.c.store_id == store_id, *listing.where(conditions, FILTERABLE)]
    if scope.integration_id is not None:
        where.append(logs.c.integration_id == scope.integration_id)
    if scope.job_id is not None:
        where.append(logs.c.job_id == scope.job_id)
    total = (await conn.execute(select(func.count()).select_from(logs).where(*where))).scalar_one()
    if order is not None:
        by = listing.order_by(order, SORTABLE, logs.c.id)
    elif scope.job_id is not None:
        by = (logs.c.attempt.desc(), logs.c.id.desc())
    else:
        by = listing.order_by(NEWEST_FIRST, SORTABLE, logs.c.id)
    rows = await conn.execute(select(logs).where(*where).order_by(*by).limit(limit).offset(offset))
    return Page([_log(r) for r in rows], total)


async def integration_status(
    conn: AsyncConnection, integration: IntegrationRecord, *, window: timedelta
) -> IntegrationStatusRecord:
    """Job counts by status and the attempts' story: last attempt, success, error, recent rate.

    Served by the indexes on jobs (integration_id, status) and logs (integration_id,
    created_at DESC, id DESC), and the last success as recorded on the integration
    (`last_success_at`); `window` is how far back the recent counts look.
    """
    job_counts = {
        status: count
        for status, count in await conn.execute(
            select(jobs.c.status, func.count())
            .where(jobs.c.integration_id == integration.id)
            .group_by(jobs.c.status)
        )
    }
    mine = logs.c.integration_id == integration.id
    newest = (logs.c.created_at.desc(), logs.c.id.desc())
    recent = (
        select(
            func.count().label("attempts"),
            func.count().filter(logs.c.succeeded).label("succeeded"),
        )
        .where(mine, logs.c.created_at >= func.now() - window)
        .subquery()
    )
    summary = (
        await conn.execute(
            select(
                select(logs.c.created_at).where(mine).order_by(*newest).limit(1).scalar_subquery(),
                select(integrations.c.last_success_at)
                .where(integrations.c.id == integration.id)
                .scalar_subquery(),
                recent.c.attempts,
                recent.c.succeeded,
            )
        )
    ).one()
    failure = (
        await conn.execute(
            select(logs.c.created_at, logs.c.error_detail, logs.c.status_code)
            .where(mine, ~logs.c.succeeded)  # `NOT succeeded`: ix_integration_logs_failed
            .order_by(*newest)
            .limit(1)
        )
    ).first()
    return IntegrationStatusRecord(
        integration=integration,
        jobs=job_counts,
        last_attempt_at=summary[0],
        last_success_at=summary[1],
        last_error=None
        if failure is None
        else LastErrorRecord(
            at=failure.created_at, detail=failure.error_detail, status_code=failure.status_code
        ),
        recent_attempts=summary[2],
        recent_successes=summary[3],
    )
