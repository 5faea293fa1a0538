"""Read helpers of the console that the store's modules have no need for (read-only queries)."""

from __future__ import annotations

from datetime import datetime
from uuid import UUID

from sqlalchemy import and_, or_, select
from sqlalchemy.ext.asyncio import AsyncConnection

from hub.store.models import integrations, logs
from hub.store.pages import StoreLogRow, outcome, store_log_query, store_log_row


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
