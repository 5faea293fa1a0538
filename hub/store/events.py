"""The API's reads of events, scoped by `store_id`. Publishing's insert is `hub.store.enqueue`'s."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any
from uuid import UUID

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncConnection

from hub.store.models import events
from hub.store.records import EventRecord


def _event(row: Any) -> EventRecord:
    return EventRecord(
        id=row.id,
        store_id=row.store_id,
        client_id=row.client_id,
        triggered_by=row.triggered_by,
        payload=row.payload,
        created_at=row.created_at,
    )


async def events_by_client_id(
    conn: AsyncConnection, store_id: UUID, client_ids: Sequence[str]
) -> dict[str, tuple[EventRecord, bytes | None]]:
    """The store's events with these client ids, each with its request digest (None for an
    event stored before digests were)."""
    if not client_ids:
        return {}
    rows = await conn.execute(
        select(events).where(events.c.store_id == store_id, events.c.client_id.in_(client_ids))
    )
    return {row.client_id: (_event(row), row.request_digest) for row in rows}


async def get_event(conn: AsyncConnection, store_id: UUID, event_id: UUID) -> EventRecord | None:
    row = (
        await conn.execute(
            select(events).where(events.c.id == event_id, events.c.store_id == store_id)
        )
    ).first()
    return None if row is None else _event(row)
