"""Read helpers of the console that the store's modules have no need for (read-only queries)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from uuid import UUID

from sqlalchemy import and_, or_, select
from sqlalchemy.ext.asyncio import AsyncConnection

from hub.store.models import integrations, logs


@dataclass(frozen=True, slots=True)
class StreamRow:
    """One attempt of the store's log stream, with its integration's name."""

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


async def stream_rows(
    conn: AsyncConnection,
    store_id: UUID,
    *,
    after: tuple[datetime, UUID] | None,
    limit: int,
    integration_id: UUID | None = None,
    succeeded: bool | None = None,
) -> list[StreamRow]:
    """The store's newest attempts (newest first) or, after `after`, those that came since
    (oldest first, so that a stream can append them in order); only one integration's, or
    only those that succeeded (or failed), when asked."""
    query = (
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
        .where(logs.c.store_id == store_id)
        .limit(limit)
    )
    if integration_id is not None:
        query = query.where(logs.c.integration_id == integration_id)
    if succeeded is not None:
        query = query.where(logs.c.succeeded.is_(succeeded))
    if after is None:
        query = query.order_by(logs.c.created_at.desc(), logs.c.id.desc())
    else:
        at, last_id = after
        query = query.where(
            or_(logs.c.created_at > at, and_(logs.c.created_at == at, logs.c.id > last_id))
        ).order_by(logs.c.created_at, logs.c.id)
    rows = await conn.execute(query)
    return [
        StreamRow(
            id=r.id,
            integration_id=r.integration_id,
            integration_name=r.name,
            job_id=r.job_id,
            attempt=r.attempt,
            succeeded=r.succeeded,
            processing_time=r.processing_time,
            status_code=r.status_code,
            error_detail=r.error_detail,
            created_at=r.created_at,
        )
        for r in rows
    ]


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
