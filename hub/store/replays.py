"""The replay's SQL: re-queue a window of an integration's jobs as new jobs, and count them.

A replay re-delivers each *event* at most once: of the events whose jobs (of this integration)
were created in ``[since, until)``, those whose **latest** job for that integration ended in
one of the asked statuses. An event whose failed job was retried with success since is
therefore not replayed, and replaying the same window twice replays only what failed again.
The new jobs are ordinary pending jobs (attempts from 1, `retry_of` pointing at the job they
replay, `replay_id` at the replay), so their progress is simply counted from them.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from uuid import UUID

from sqlalchemy import func, insert, select, text, update
from sqlalchemy.ext.asyncio import AsyncConnection

from hub.ids import uuid7
from hub.store.enqueue import notify
from hub.store.models import jobs, replays
from hub.store.records import ReplayRecord

_REQUEUE = text(
    """
    WITH window_events AS (
        SELECT DISTINCT j.event_id
        FROM integration_jobs AS j
        WHERE j.integration_id = :integration_id
          AND j.created_at >= :since AND j.created_at < :until
    ),
    latest AS (
        SELECT DISTINCT ON (j.event_id) j.id, j.store_id, j.event_id, j.triggered_by, j.status
        FROM integration_jobs AS j
        JOIN window_events AS w ON w.event_id = j.event_id
        WHERE j.integration_id = :integration_id
        ORDER BY j.event_id, j.created_at DESC, j.id DESC
    )
    INSERT INTO integration_jobs (
        id, store_id, event_id, integration_id, triggered_by, status, attempts,
        next_attempt_at, retry_of, replay_id, created_at, updated_at
    )
    SELECT gen_random_uuid(), l.store_id, l.event_id, :integration_id, l.triggered_by,
           'pending', 0, now(), l.id, :replay_id, now(), now()
    FROM latest AS l
    WHERE l.status = ANY(CAST(:statuses AS text[]))
    """
)


async def create(
    conn: AsyncConnection,
    *,
    store_id: UUID,
    integration_id: UUID,
    since: datetime,
    until: datetime,
    statuses: Sequence[str],
) -> ReplayRecord:
    """Record the replay and queue its jobs, in the caller's transaction."""
    replay_id = uuid7()
    created_at = (
        await conn.execute(
            insert(replays)
            .values(
                id=replay_id,
                store_id=store_id,
                integration_id=integration_id,
                since=since,
                until=until,
                statuses=list(statuses),
                total=0,
            )
            .returning(replays.c.created_at)
        )
    ).scalar_one()
    result = await conn.execute(
        _REQUEUE,
        {
            "integration_id": integration_id,
            "replay_id": replay_id,
            "since": since,
            "until": until,
            "statuses": list(statuses),
        },
    )
    total = result.rowcount
    if total:
        await conn.execute(update(replays).where(replays.c.id == replay_id).values(total=total))
        await notify(conn)
    return ReplayRecord(
        id=replay_id,
        store_id=store_id,
        integration_id=integration_id,
        since=since,
        until=until,
        statuses=tuple(statuses),
        total=total,
        created_at=created_at,
        jobs={"pending": total} if total else {},
    )


async def get(
    conn: AsyncConnection, store_id: UUID, integration_id: UUID, replay_id: UUID
) -> ReplayRecord | None:
    """The replay with its jobs counted by status; None if it is not this store's."""
    row = (
        await conn.execute(
            select(replays).where(
                replays.c.id == replay_id,
                replays.c.store_id == store_id,
                replays.c.integration_id == integration_id,
            )
        )
    ).first()
    if row is None:
        return None
    counts = await conn.execute(
        select(jobs.c.status, func.count())
        .where(jobs.c.replay_id == replay_id)
        .group_by(jobs.c.status)
    )
    return ReplayRecord(
        id=row.id,
        store_id=row.store_id,
        integration_id=row.integration_id,
        since=row.since,
        until=row.until,
        statuses=tuple(row.statuses),
        total=row.total,
        created_at=row.created_at,
        jobs={status: count for status, count in counts},
    )
