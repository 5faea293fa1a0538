"""Read-only looks at the queue's state: the jobs and logs tables, as a test checks them."""

from __future__ import annotations

import subprocess
from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass
from uuid import UUID

from sqlalchemy import func, select, text
from sqlalchemy.ext.asyncio import AsyncEngine

from hub.store.models import jobs, logs


@dataclass(frozen=True, slots=True)
class JobRow:
    id: UUID
    status: str
    attempts: int
    lease_owner: str | None


def leased_by(row: JobRow, process: subprocess.Popen[bytes]) -> bool:
    """Is `row` in flight under a lease of `process`? (Owner ids are `host:pid:random`.)"""
    if row.status != "delivering" or row.lease_owner is None:
        return False
    return row.lease_owner.rsplit(":", 2)[-2] == str(process.pid)


@dataclass(frozen=True, slots=True)
class LogRow:
    job_id: UUID
    attempt: int
    succeeded: bool
    status_code: int | None
    error_detail: str | None


async def job_rows(engine: AsyncEngine) -> dict[UUID, JobRow]:
    async with engine.connect() as conn:
        rows = await conn.execute(
            select(jobs.c.id, jobs.c.status, jobs.c.attempts, jobs.c.lease_owner)
        )
        return {row.id: JobRow(row.id, row.status, row.attempts, row.lease_owner) for row in rows}


async def log_rows(engine: AsyncEngine) -> list[LogRow]:
    async with engine.connect() as conn:
        rows = await conn.execute(
            select(
                logs.c.job_id,
                logs.c.attempt,
                logs.c.succeeded,
                logs.c.status_code,
                logs.c.error_detail,
            ).order_by(logs.c.job_id, logs.c.attempt, logs.c.created_at)
        )
        return [LogRow(*row) for row in rows]


async def status_counts(
    engine: AsyncEngine, integration_id: str | UUID | None = None
) -> Counter[str]:
    """How many jobs are in each status: every job, or those of `integration_id`."""
    query = select(jobs.c.status, func.count()).group_by(jobs.c.status)
    if integration_id is not None:
        query = query.where(jobs.c.integration_id == UUID(str(integration_id)))
    async with engine.connect() as conn:
        rows = await conn.execute(query)
        return Counter({status: count for status, count in rows})


def logs_per_job(rows: Iterable[LogRow]) -> Counter[UUID]:
    return Counter(row.job_id for row in rows)


#: What a stalled queue test prints: where the jobs are, the integrations' switches and clocks,
#: and what every session of the test's database is doing or waiting for.
_PICTURE = {
    "jobs": """
        SELECT status, count(*) AS jobs,
               count(*) FILTER (WHERE next_attempt_at <= now()) AS due,
               min(next_attempt_at) - now() AS first_due_in,
               count(DISTINCT lease_owner) AS owners,
               min(lease_expires_at) - now() AS first_lease_ends_in
        FROM integration_jobs GROUP BY status ORDER BY status
    """,
    "integrations": """
        SELECT id, enabled, disabled_reason, failing_since, last_success_at
        FROM integrations ORDER BY created_at
    """,
    "processes": "SELECT role, pid, now() - last_seen_at AS unseen_for FROM hub_processes",
    "sessions": """
        SELECT pid, application_name, state, wait_event_type, wait_event,
               now() - xact_start AS in_transaction_for, left(query, 160) AS query
        FROM pg_stat_activity WHERE datname = current_database() AND pid <> pg_backend_pid()
        ORDER BY xact_start NULLS LAST
    """,
    "waiting locks": """
        SELECT l.pid, l.locktype, l.mode, l.relation::regclass AS relation,
               pg_blocking_pids(l.pid) AS blocked_by
        FROM pg_locks AS l WHERE NOT l.granted
    """,
}


async def queue_picture(engine: AsyncEngine) -> str:
    """The queue's state and the database's sessions, as text for a failed test's output."""
    lines: list[str] = []
    try:
        async with engine.connect() as conn:
            for title, sql in _PICTURE.items():
                lines.append(f"-- {title}")
                result = await conn.execute(text(sql))
                lines += [" | ".join(map(str, row)) for row in result]
    except Exception as exc:  # the picture is a help, never the failure
        lines.append(f"(no picture: {exc!r})")
    return "\n".join(lines)
