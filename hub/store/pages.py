"""The console's lists, a keyset page at a time (`hub.store.keyset`): a store's integrations,
an integration's jobs and attempts, and the store's attempts with their integration's name (the
live log's history). Each is one index range scan from its cursor; the filters they take are
`hub.store.listing`'s conditions, on the columns each list names.

And the other reads of the console's pages: the live log's stream (`stream_rows`, the attempts
since the last one sent) and its filter's choices (`integration_names`), the names of the
integrations a page mentions (`names_of`), and the status columns of a page of integrations
(`statuses_of`). The console builds no SQL of its own.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any
from uuid import UUID

from sqlalchemy import ColumnElement, Integer, Select, and_, func, literal, or_, select, true
from sqlalchemy.dialects.postgresql import ARRAY
from sqlalchemy.dialects.postgresql import UUID as PG_UUID
from sqlalchemy.ext.asyncio import AsyncConnection

from hub.store import integrations as integration_store
from hub.store import jobs as job_store
from hub.store import listing
from hub.store import logs as log_store
from hub.store.compiled import DELIVERING, HELD, PENDING
from hub.store.keyset import KeysetPage, Window, fetch
from hub.store.listing import Condition
from hub.store.models import integrations, jobs, logs
from hub.store.records import (
    IntegrationRecord,
    IntegrationStatusRecord,
    JobRecord,
    LastErrorRecord,
    LogRecord,
)


async def integrations_page(
    conn: AsyncConnection,
    store_id: UUID,
    conditions: Sequence[Condition],
    *,
    window: Window,
    limit: int,
) -> KeysetPage[IntegrationRecord]:
    """The store's live integrations that meet every condition (`ix_integrations_store_created`)."""
    query = select(integrations).where(
        integrations.c.store_id == store_id,
        integrations.c.deleted_at.is_(None),
        *listing.where(conditions, integration_store.FILTERABLE),
    )
    return await fetch(
        conn,
        query,
        at=integrations.c.created_at,
        id_=integrations.c.id,
        window=window,
        limit=limit,
        convert=integration_store.integration_record,
    )


async def jobs_page(
    conn: AsyncConnection,
    store_id: UUID,
    integration_id: UUID,
    conditions: Sequence[Condition],
    *,
    window: Window,
    limit: int,
) -> KeysetPage[JobRecord]:
    """The integration's jobs that meet every condition
    (`ix_integration_jobs_integration_created`)."""
    query = select(jobs).where(
        jobs.c.integration_id == integration_id,
        jobs.c.store_id == store_id,
        *listing.where(conditions, job_store.FILTERABLE),
    )
    return await fetch(
        conn,
        query,
        at=jobs.c.created_at,
        id_=jobs.c.id,
        window=window,
        limit=limit,
        convert=job_store.job_record,
    )


async def logs_page(
    conn: AsyncConnection,
    store_id: UUID,
    integration_id: UUID,
    conditions: Sequence[Condition],
    *,
    window: Window,
    limit: int,
) -> KeysetPage[LogRecord]:
    """The integration's attempts that meet every condition
    (`ix_integration_logs_integration_created`)."""
    outcomes = [outcome(bool(c.values[0])) for c in conditions if c.field == "succeeded"]
    others = [c for c in conditions if c.field != "succeeded"]
    query = select(logs).where(
        logs.c.integration_id == integration_id,
        logs.c.store_id == store_id,
        *outcomes,
        *listing.where(others, log_store.FILTERABLE),
    )
    return await fetch(
        conn,
        query,
        at=logs.c.created_at,
        id_=logs.c.id,
        window=window,
        limit=limit,
        convert=log_store.log_record,
    )


def outcome(succeeded: bool) -> ColumnElement[bool]:
    """`succeeded` or `NOT succeeded`, without a parameter: the latter is the predicate of
    `ix_integration_logs_failed`, which `succeeded IS false` or `= $1` would not match."""
    return logs.c.succeeded if succeeded else ~logs.c.succeeded


@dataclass(frozen=True, slots=True)
class StoreLogRow:
    """One attempt of the store's log, with its integration's name."""

    id: UUID
    integration_id: UUID
    integration_name: str
    job_id: UUID
    attempt: int
    succeeded: bool
    processing_time: float
    status_code: int | None
    error_detail: str | None
    created_at: datetime


def store_log_query(*where: ColumnElement[bool]) -> Select[Any]:
    """The store's attempts with their integration's name, as `store_log_row` reads them."""
    return (
        select(
            logs.c.id,
            logs.c.integration_id,
            integrations.c.name,
            logs.c.job_id,
            logs.c.attempt,
            logs.c.succeeded,
            logs.c.processing_time,
            logs.c.status_code,
            logs.c.error_detail,
            logs.c.created_at,
        )
        .join(integrations, integrations.c.id == logs.c.integration_id)
        .where(*where)
    )


def store_log_row(row: Any) -> StoreLogRow:
    return StoreLogRow(
        id=row.id,
        integration_id=row.integration_id,
        integration_name=row.name,
        job_id=row.job_id,
        attempt=row.attempt,
        succeeded=row.succeeded,
        processing_time=row.processing_time,
        status_code=row.status_code,
        error_detail=row.error_detail,
        created_at=row.created_at,
    )


async def store_logs_page(
    conn: AsyncConnection,
    store_id: UUID,
    *,
    integration_id: UUID | None = None,
    succeeded: bool | None = None,
    window: Window,
    limit: int,
) -> KeysetPage[StoreLogRow]:
    """The store's attempts, optionally one integration's or of one outcome
    (`ix_integration_logs_store_created`, or the integration's index)."""
    where = [logs.c.store_id == store_id]
    if integration_id is not None:
        where.append(logs.c.integration_id == integration_id)
    if succeeded is not None:
        where.append(outcome(succeeded))
    return await fetch(
        conn,
        store_log_query(*where),
        at=logs.c.created_at,
        id_=logs.c.id,
        window=window,
        limit=limit,
        convert=store_log_row,
        count=select(logs.c.id).where(*where),
    )


async def stream_rows(
    conn: AsyncConnection,
    store_id: UUID,
    *,
    after: tuple[datetime, UUID] | None,
    limit: int,
    integration_id: UUID | None = None,
    succeeded: bool | None = None,
) -> list[StoreLogRow]:
    """The store's newest attempts (newest first) or, after `after`, those that came since
    (oldest first, so that a stream can append them in order); only one integration's, or
    only those that succeeded (or failed), when asked (the live log's pages' filter)."""
    where = [logs.c.store_id == store_id]
    if integration_id is not None:
        where.append(logs.c.integration_id == integration_id)
    if succeeded is not None:
        where.append(outcome(succeeded))
    query = store_log_query(*where).limit(limit)
    if after is None:
        query = query.order_by(logs.c.created_at.desc(), logs.c.id.desc())
    else:
        at, last_id = after
        query = query.where(
            or_(logs.c.created_at > at, and_(logs.c.created_at == at, logs.c.id > last_id))
        ).order_by(logs.c.created_at, logs.c.id)
    return [store_log_row(r) for r in await conn.execute(query)]


async def integration_names(
    conn: AsyncConnection, store_id: UUID, *, limit: int
) -> list[tuple[UUID, str]]:
    """The store's live integrations, (id, name) by name: what the live log's filter offers."""
    rows = await conn.execute(
        select(integrations.c.id, integrations.c.name)
        .where(integrations.c.store_id == store_id, integrations.c.deleted_at.is_(None))
        .order_by(integrations.c.name, integrations.c.id)
        .limit(limit)
    )
    return [(r.id, r.name) for r in rows]


async def names_of(
    conn: AsyncConnection, store_id: UUID, integration_ids: Sequence[UUID]
) -> dict[UUID, str]:
    """The names of these integrations of the store (deleted ones too)."""
    if not integration_ids:
        return {}
    rows = await conn.execute(
        select(integrations.c.id, integrations.c.name).where(
            integrations.c.store_id == store_id, integrations.c.id.in_(list(integration_ids))
        )
    )
    return {row.id: row.name for row in rows}


async def statuses_of(
    conn: AsyncConnection,
    records: Sequence[IntegrationRecord],
    *,
    window: timedelta,
    recent: Mapping[UUID, tuple[int, int]] | None = None,
) -> list[IntegrationStatusRecord]:
    """`logs.integration_status` of a page of integrations in two statements rather than three
    per integration, its `jobs` counting only the unfinished ones (pending, delivering, held:
    `ix_integration_jobs_integration_status`); its last success as recorded on the integration
    (`integrations.last_success_at`, by its primary key); the rest from each one's newest logs
    (`ix_integration_logs_integration_created`, `ix_integration_logs_failed`), each a
    `LIMIT 1` probe or a `window` range.

    `recent`, when given, is each integration's (attempts, successes) of the window, already
    counted (from the rollup): the `window` range of the logs is then not read."""
    if not records:
        return []
    ids = [r.id for r in records]
    unfinished: dict[UUID, dict[str, int]] = {i: {} for i in ids}
    for integration_id, status, count in await conn.execute(
        select(jobs.c.integration_id, jobs.c.status, func.count())
        .where(jobs.c.integration_id.in_(ids), jobs.c.status.in_([PENDING, DELIVERING, HELD]))
        .group_by(jobs.c.integration_id, jobs.c.status)
    ):
        unfinished[integration_id][status] = count
    page = (
        func.unnest(literal(ids, ARRAY(PG_UUID(as_uuid=True))))
        .table_valued("id")
        .render_derived(name="page")
    )
    mine = logs.c.integration_id == page.c.id
    newest = (logs.c.created_at.desc(), logs.c.id.desc())
    last_attempt = select(logs.c.created_at).where(mine).order_by(*newest).limit(1)
    last_success = select(integrations.c.last_success_at).where(integrations.c.id == page.c.id)
    failure = (
        select(logs.c.created_at, logs.c.error_detail, logs.c.status_code)
        .where(mine, ~logs.c.succeeded)
        .order_by(*newest)
        .limit(1)
        .lateral("failure")
    )
    counted = (
        select(
            func.count().label("attempts"),
            func.count().filter(logs.c.succeeded).label("succeeded"),
        )
        .where(mine, logs.c.created_at >= func.now() - window)
        .lateral("recent")
    )
    columns = [
        page.c.id,
        last_attempt.scalar_subquery().label("last_attempt_at"),
        last_success.scalar_subquery().label("last_success_at"),
        failure.c.created_at.label("failed_at"),
        failure.c.error_detail,
        failure.c.status_code,
    ]
    query = select(*columns).select_from(page).outerjoin(failure, true())
    if recent is None:
        query = query.add_columns(
            func.coalesce(counted.c.attempts, literal(0, Integer)).label("attempts"),
            func.coalesce(counted.c.succeeded, literal(0, Integer)).label("succeeded"),
        ).outerjoin(counted, true())
    rows = await conn.execute(query)
    found = {row.id: row for row in rows}
    out = []
    for record in records:
        row = found[record.id]
        out.append(
            IntegrationStatusRecord(
                integration=record,
                jobs=unfinished[record.id],
                last_attempt_at=row.last_attempt_at,
                last_success_at=row.last_success_at,
                last_error=None
                if row.failed_at is None
                else LastErrorRecord(
                    at=row.failed_at, detail=row.error_detail, status_code=row.status_code
                ),
                recent_attempts=row.attempts
                if recent is None
                else recent.get(record.id, (0, 0))[0],
                recent_successes=row.succeeded
                if recent is None
                else recent.get(record.id, (0, 0))[1],
            )
        )
    return out
