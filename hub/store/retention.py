"""The retention SQL: purge what is older than the retention period, in bounded batches.

Each pass deletes at most `batch` rows of each kind, picked through an index on the age column,
so a pass costs the same on a table of millions of rows as on a small one and never holds many
locks. The statements are shaped so that the plan cannot drift to a full scan as tables grow:
the rows are picked by a `LIMIT`ed index range scan into an array, then deleted by primary key;
"no job refers to it" is a scalar subquery, which PostgreSQL never turns into a join: one
`LIMIT 1` probe of an index per candidate row, never a hash of the whole jobs table. What goes, in
this order:

1. finished jobs (succeeded, failed, cancelled) completed before the cutoff
   (`ix_integration_jobs_finished`), **with all their logs** (`ix_integration_logs_job_attempt`):
   a job that is kept keeps every log of its attempts. The jobs that were retries of a purged
   job lose their `retry_of` link (`ix_integration_jobs_retry_of` keeps that cheap);
2. events older than the cutoff that no job refers to any more (`ix_events_created`, then
   `ix_integration_jobs_event`): idempotency keys are remembered for the retention period;
3. replays older than the cutoff that no job refers to any more.

Unfinished jobs (pending, delivering, held) and their logs are never touched, however old.
One worker purges at a time (a transaction-level advisory lock); the others skip their turn.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from uuid import UUID

from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncConnection

#: Rows per statement.
BATCH = 1000
#: Held for the length of a purge transaction: only one worker purges at a time.
RETENTION_LOCK_ID = 0x6875625F726574

PICK_JOBS = text(
    """
    SELECT id
    FROM integration_jobs
    WHERE status IN ('succeeded', 'failed', 'cancelled') AND completed_at < :before
    ORDER BY completed_at
    LIMIT :batch
    FOR UPDATE SKIP LOCKED
    """
)
PURGE_LOGS = text("DELETE FROM integration_logs WHERE job_id = ANY(CAST(:ids AS uuid[]))")
PURGE_JOBS = text("DELETE FROM integration_jobs WHERE id = ANY(CAST(:ids AS uuid[]))")
PURGE_EVENTS = text(
    """
    DELETE FROM events
    WHERE id = ANY(ARRAY(
        SELECT e.id
        FROM events AS e
        WHERE e.created_at < :before
          AND (SELECT j.id FROM integration_jobs AS j WHERE j.event_id = e.id LIMIT 1) IS NULL
        ORDER BY e.created_at
        LIMIT :batch
    ))
    """
)
PURGE_REPLAYS = text(
    """
    DELETE FROM replays
    WHERE id = ANY(ARRAY(
        SELECT r.id
        FROM replays AS r
        WHERE r.created_at < :before
          AND (SELECT j.id FROM integration_jobs AS j WHERE j.replay_id = r.id LIMIT 1) IS NULL
        LIMIT :batch
    ))
    """
)


@dataclass(frozen=True, slots=True)
class Purged:
    """Rows one pass deleted, by table; `full` when a statement hit its batch size."""

    logs: int = 0
    jobs: int = 0
    events: int = 0
    replays: int = 0
    full: bool = False
    skipped: bool = False
    """Another worker was purging: this pass did nothing."""

    @property
    def total(self) -> int:
        return self.logs + self.jobs + self.events + self.replays


async def purge(conn: AsyncConnection, *, before: datetime, batch: int = BATCH) -> Purged:
    """One pass: at most `batch` rows of each kind older than `before`, in the caller's
    transaction (see the module docstring)."""
    locked = (
        await conn.execute(text("SELECT pg_try_advisory_xact_lock(:id)"), {"id": RETENTION_LOCK_ID})
    ).scalar_one()
    if not locked:
        return Purged(skipped=True)
    window = {"before": before, "batch": batch}
    picked: list[UUID] = [row.id for row in await conn.execute(PICK_JOBS, window)]
    logs = jobs = 0
    if picked:
        logs = (await conn.execute(PURGE_LOGS, {"ids": picked})).rowcount
        jobs = (await conn.execute(PURGE_JOBS, {"ids": picked})).rowcount
    events = (await conn.execute(PURGE_EVENTS, window)).rowcount
    replays = (await conn.execute(PURGE_REPLAYS, window)).rowcount
    full = max(jobs, events, replays) >= batch
    return Purged(logs=logs, jobs=jobs, events=events, replays=replays, full=full)
