"""Enqueueing: publishing's insert of events and their jobs, the wake-up NOTIFY, and a manual
retry's new job. The life of a job from here on: `hub.store`; ordered jobs go to the end of
their keys' queues (`hub.store.ordered`).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any
from uuid import UUID

import asyncpg
import structlog
from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncConnection

from hub.ids import uuid7
from hub.store import ordered
from hub.store.engine import distrust_connections, driver_of, storage_unavailable
from hub.store.jobs import get_job
from hub.store.records import JobRecord

log = structlog.get_logger(__name__)

#: The channel a publish transaction notifies so that idle workers wake at once.
CHANNEL = "hub_jobs"


@dataclass(frozen=True, slots=True)
class NewEvent:
    id: UUID
    store_id: UUID
    client_id: str | None
    triggered_by: str
    payload: dict[str, Any]
    payload_json: str
    """`payload` as JSON text, as stored."""
    digest: bytes | None = None
    """With a client id: the event's digest (`hub.services.events.request_digest`)."""


@dataclass(frozen=True, slots=True)
class NewJob:
    integration_id: UUID
    event_id: UUID
    triggered_by: str
    ordering_value: str | None = None
    """The event's key value for an ordered integration (`hub.ordering`); None: unordered."""


async def insert_published(
    db: asyncpg.Connection,
    new_events: Sequence[NewEvent],
    new_jobs: Sequence[NewJob],
    now: datetime,
    *,
    wake: bool = True,
) -> set[UUID]:
    """Insert events (of any stores) and their pending jobs (due now) in one statement, and wake
    the workers (unless not to `wake`: the caller sends the wake-up, `wake_after_commit`).

    An event whose client id its store has already used is skipped, and so are its jobs (and so
    is the second of two events with one client id in `new_events`): the ids actually inserted
    are returned. One statement is atomic on its own, so no transaction is needed around it (it
    joins the caller's if there is one). Ordered jobs take a transaction (`_insert_ordered`).
    """
    if not new_events:
        return set()
    if any(j.ordering_value is not None for j in new_jobs):
        inserted = await _insert_ordered(db, new_events, new_jobs, now)
    else:
        inserted = await _insert(db, new_events, new_jobs, now)
    if wake and any(job.event_id in inserted for job in new_jobs):
        if db.is_in_transaction():
            await wake_workers(db)  # at the caller's commit; its failure fails the transaction
        else:
            await wake_after_commit(db)
    return inserted


async def _insert(
    db: asyncpg.Connection,
    new_events: Sequence[NewEvent],
    new_jobs: Sequence[NewJob],
    now: datetime,
) -> set[UUID]:
    rows = await db.fetch(
        _INSERT_PUBLISHED,
        now,
        [e.id for e in new_events],
        [e.store_id for e in new_events],
        [e.client_id for e in new_events],
        [e.triggered_by for e in new_events],
        [e.payload_json for e in new_events],
        [e.digest for e in new_events],
        [uuid7() for _ in new_jobs],
        [j.event_id for j in new_jobs],
        [j.integration_id for j in new_jobs],
        [j.triggered_by for j in new_jobs],
    )
    return {row[0] for row in rows}


async def _insert_ordered(
    db: asyncpg.Connection,
    new_events: Sequence[NewEvent],
    new_jobs: Sequence[NewJob],
    now: datetime,
) -> set[UUID]:
    """A publish with ordered jobs: its integrations' queue locks first (before any row lock,
    see `ordered.lock_queues`), the events and unordered jobs as any publish, then the ordered
    jobs of the events inserted at the end of their keys; in one transaction (a savepoint in the
    caller's). Unordered publishes never come here: their path is one statement, as before."""
    ordered_jobs = [j for j in new_jobs if j.ordering_value is not None]
    async with db.transaction():
        await ordered.lock_queues(db, {j.integration_id for j in ordered_jobs})
        unordered = [j for j in new_jobs if j.ordering_value is None]
        inserted = await _insert(db, new_events, unordered, now)
        store_of = {e.id: e.store_id for e in new_events}
        by_store: dict[UUID, list[ordered.QueuedJob]] = {}
        for j in ordered_jobs:
            if j.event_id in inserted:
                by_store.setdefault(store_of[j.event_id], []).append(
                    ordered.QueuedJob(
                        uuid7(), j.event_id, j.integration_id, j.triggered_by, j.ordering_value
                    )
                )
        for store_id, queued in by_store.items():
            await ordered.append_jobs(db, store_id, queued, now)
    return inserted


async def wake_after_commit(db: asyncpg.Connection) -> None:
    """Wake the workers for jobs already committed: should the database fail now, the publish
    still stands (workers poll, so a lost wake-up costs at most a poll interval)."""
    try:
        await wake_workers(db)
    except Exception as exc:
        if not storage_unavailable(exc):
            raise
        distrust_connections()
        log.warning("wake_up_lost", error=type(exc).__name__)


#: The events, then the jobs of those actually inserted (a data-modifying WITH runs whether or
#: not the outer query reads it): one round trip and one statement text (arrays, not rows of
#: parameters) whatever the number of events and jobs.
_INSERT_PUBLISHED = """
    WITH inserted AS (
        INSERT INTO events (
            id, store_id, client_id, triggered_by, payload, request_digest, created_at
        )
        SELECT e.id, e.store_id, e.client_id, e.triggered_by, e.payload, e.request_digest, $1
        FROM unnest($2::uuid[], $3::uuid[], $4::text[], $5::text[], $6::jsonb[], $7::bytea[])
             AS e(id, store_id, client_id, triggered_by, payload, request_digest)
        ON CONFLICT (store_id, client_id) WHERE client_id IS NOT NULL DO NOTHING
        RETURNING id, store_id
    ), queued AS (
        INSERT INTO integration_jobs (
            id, store_id, event_id, integration_id, triggered_by, status, attempts,
            next_attempt_at, created_at, updated_at
        )
        SELECT j.id, i.store_id, j.event_id, j.integration_id, j.triggered_by, 'pending', 0,
               $1, $1, $1
        FROM unnest($8::uuid[], $9::uuid[], $10::uuid[], $11::text[])
             AS j(id, event_id, integration_id, triggered_by)
        JOIN inserted AS i ON i.id = j.event_id
    )
    SELECT id FROM inserted
"""


async def wake_workers(db: asyncpg.Connection) -> None:
    """NOTIFY the workers that jobs are due.

    Outside a transaction the NOTIFY gets one of its own that does not wait for its commit to
    reach the disk. PostgreSQL holds a database-wide lock from the commit of a notifying
    transaction until it completes: notifying in the jobs' own transaction would hold it through
    their WAL flush and serialise every publish's commit, one flush each, instead of letting
    concurrent commits share flushes. A wake-up lost in a crash costs nothing (workers poll), and
    the jobs were committed before it was sent. Inside a caller's transaction it is sent at that
    transaction's commit, as any NOTIFY.
    """
    await db.execute(_NOTIFY if db.is_in_transaction() else _NOTIFY_ALONE)


_NOTIFY = f"SELECT pg_notify('{CHANNEL}', '')"
_NOTIFY_ALONE = f"SELECT set_config('synchronous_commit', 'off', true), pg_notify('{CHANNEL}', '')"


async def notify(conn: AsyncConnection) -> None:
    """NOTIFY the workers that jobs are due, at the commit of `conn`'s transaction."""
    await conn.execute(select(func.pg_notify(CHANNEL, "")))


async def retry_job(
    conn: AsyncConnection, job: JobRecord, *, ordering_value: str | None
) -> JobRecord:
    """A new pending job for the same event and integration, pointing back with `retry_of`; with
    an `ordering_value`, at the end of that key's queue (the caller holds its queue lock,
    `ordered.lock_queues`). In the caller's transaction."""
    db = await driver_of(conn)
    queued = ordered.QueuedJob(
        uuid7(), job.event_id, job.integration_id, job.triggered_by, ordering_value, job.id
    )
    [job_id] = await ordered.append_jobs(db, job.store_id, [queued], datetime.now(UTC))
    await notify(conn)
    new = await get_job(conn, job.store_id, job.integration_id, job_id)
    assert new is not None
    return new
