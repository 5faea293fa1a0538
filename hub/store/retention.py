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
3. replays older than the cutoff that no job refers to any more;
4. console sessions that have expired (`ix_console_sessions_expires`), whatever the retention
   period;
5. access tokens that have expired (`ix_access_tokens_expires_at`), whatever the retention
   period: an expired token can never be used again. With no retention period (`before`
   None, `HUB_RETENTION_DAYS=0`) a pass does only these last two; `purge_expired_tokens` is
   step 5 on its own.

Unfinished jobs (pending, delivering, held) and their logs are never touched, however old.
One worker purges at a time (a transaction-level advisory lock); the others skip their turn.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any
from uuid import UUID

from sqlalchemy import DateTime, Integer, Table, any_, bindparam, delete, func, select
from sqlalchemy.ext.asyncio import AsyncConnection

from hub.store import models
from hub.store.compiled import FINISHED, ONE, UUIDS

#: Rows per statement.
BATCH = 1000
#: Held for the length of a purge transaction: only one worker purges at a time.
RETENTION_LOCK_ID = 0x6875625F726574

_BEFORE = bindparam("before", type_=DateTime(timezone=True))
_BATCH = bindparam("batch", type_=Integer)
_IDS = bindparam("ids", type_=UUIDS)

#: The statements take `before` and `batch` (`PICK_JOBS`, `PURGE_EVENTS`, `PURGE_REPLAYS`) or
#: the picked job `ids` (`PURGE_LOGS`, `PURGE_JOBS`). Literal statuses match the partial index.
PICK_JOBS = (
    select(models.jobs.c.id)
    .where(models.jobs.c.status.in_(FINISHED), models.jobs.c.completed_at < _BEFORE)
    .order_by(models.jobs.c.completed_at)
    .limit(_BATCH)
    .with_for_update(skip_locked=True)
)
PURGE_LOGS = delete(models.logs).where(models.logs.c.job_id == any_(_IDS))
PURGE_JOBS = delete(models.jobs).where(models.jobs.c.id == any_(_IDS))


def _unreferenced(table: Table, alias: str, column: str, *, oldest_first: bool) -> Any:
    """Delete up to `batch` rows of `table` older than `before` that no job's `column` refers
    to, picked into an array first (see the module docstring)."""
    old = table.alias(alias)
    job = models.jobs.alias("j")
    referring = select(job.c.id).where(job.c[column] == old.c.id).limit(ONE).scalar_subquery()
    picked = select(old.c.id).where(old.c.created_at < _BEFORE, referring.is_(None))
    if oldest_first:
        picked = picked.order_by(old.c.created_at)
    ids = func.array(picked.limit(_BATCH).scalar_subquery())
    return delete(table).where(table.c.id == any_(ids))


PURGE_EVENTS = _unreferenced(models.events, "e", "event_id", oldest_first=True)
PURGE_REPLAYS = _unreferenced(models.replays, "r", "replay_id", oldest_first=False)
_EXPIRED = (
    select(models.console_sessions.c.id_hash)
    .where(models.console_sessions.c.expires_at < func.now())
    .limit(_BATCH)
    .scalar_subquery()
)
PURGE_SESSIONS = delete(models.console_sessions).where(
    models.console_sessions.c.id_hash == any_(func.array(_EXPIRED))
)
_EXPIRED_TOKENS = func.array(
    select(models.access_tokens.c.id)
    .where(models.access_tokens.c.expires_at < func.now())
    .order_by(models.access_tokens.c.expires_at)
    .limit(_BATCH)
    .scalar_subquery()
)
PURGE_TOKENS = delete(models.access_tokens).where(
    models.access_tokens.c.id == any_(_EXPIRED_TOKENS)
)


@dataclass(frozen=True, slots=True)
class Purged:
    """Rows one pass deleted, by table; `full` when a statement hit its batch size."""

    logs: int = 0
    jobs: int = 0
    events: int = 0
    replays: int = 0
    sessions: int = 0
    tokens: int = 0
    full: bool = False
    skipped: bool = False
    """Another worker was purging: this pass did nothing."""

    @property
    def total(self) -> int:
        return self.logs + self.jobs + self.events + self.replays + self.sessions + self.tokens


async def purge(conn: AsyncConnection, *, before: datetime | None, batch: int = BATCH) -> Purged:
    """One pass: at most `batch` rows of each kind older than `before` (None: no jobs, events
    or replays, only expired sessions and tokens), in the caller's transaction (see the module
    docstring)."""
    locked = (
        await conn.execute(select(func.pg_try_advisory_xact_lock(RETENTION_LOCK_ID)))
    ).scalar_one()
    if not locked:
        return Purged(skipped=True)
    sessions = (await conn.execute(PURGE_SESSIONS, {"batch": batch})).rowcount
    tokens = (await conn.execute(PURGE_TOKENS, {"batch": batch})).rowcount
    if before is None:
        return Purged(sessions=sessions, tokens=tokens, full=max(sessions, tokens) >= batch)
    window = {"before": before, "batch": batch}
    picked: list[UUID] = [row.id for row in await conn.execute(PICK_JOBS, window)]
    logs = jobs = 0
    if picked:
        logs = (await conn.execute(PURGE_LOGS, {"ids": picked})).rowcount
        jobs = (await conn.execute(PURGE_JOBS, {"ids": picked})).rowcount
    events = (await conn.execute(PURGE_EVENTS, window)).rowcount
    replays = (await conn.execute(PURGE_REPLAYS, window)).rowcount
    full = max(jobs, events, replays, sessions, tokens) >= batch
    return Purged(
        logs=logs,
        jobs=jobs,
        events=events,
        replays=replays,
        sessions=sessions,
        tokens=tokens,
        full=full,
    )


async def purge_expired_tokens(conn: AsyncConnection, *, batch: int = BATCH) -> Purged:
    """Step 5 alone: at most `batch` expired access tokens (see the module docstring)."""
    tokens = (await conn.execute(PURGE_TOKENS, {"batch": batch})).rowcount
    return Purged(tokens=tokens, full=tokens >= batch)
