"""The process registry and the deployment's status: who is running, and what the queue holds.

Every `hub serve` and `hub worker` process keeps a row in `hub_processes` fresh with its
heartbeat (`beat`), which also deletes the rows of processes not seen for `stale_after` (a
process that was killed never deletes its own) and counts the live API processes, whose number
divides the deployment-wide rate limits (`hub.ratelimit`). A process that stops deletes its row
(`leave`). Nothing here runs per request or per attempt: the expression language throughout
(`hub.store`'s SQL rule 1).

`queue_status` and `recent_deliveries` are what `GET /v2/status`, `hub status` and the
Prometheus gauges show. Each figure is one index-backed count or probe, never a scan of a whole
table (`tests/integration/test_status.py` proves the plans on a large table):

- due and scheduled jobs per lane: the lanes' partial indexes (`ix_integration_jobs_due_first`,
  `ix_integration_jobs_due_retry`), split at now;
- delivering: `ix_integration_jobs_leased`; held: `ix_integration_jobs_held`;
- the oldest due job (the lag): the first entry of `ix_integration_jobs_due`;
- the last minute's deliveries: a range of `ix_integration_logs_created`.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import (
    ColumnElement,
    Integer,
    Interval,
    ScalarSelect,
    bindparam,
    delete,
    func,
    not_,
    select,
)
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.ext.asyncio import AsyncConnection

from hub.store.compiled import DELIVERING, HELD, PENDING, ZERO
from hub.store.models import jobs, logs, processes

#: Roles that serve the API (and so take a share of the deployment-wide rate limits).
API_ROLES = ("api", "api+worker")
WORKER_ROLES = ("worker", "api+worker")


@dataclass(frozen=True, slots=True)
class ProcessRecord:
    """One live process, as its last heartbeat left it."""

    id: str
    role: str
    host: str
    pid: int
    version: str
    address: str | None
    started_at: datetime
    last_seen_at: datetime
    jobs_in_flight: int


@dataclass(frozen=True, slots=True)
class Beat:
    """What one heartbeat saw: the live processes by role, this one included."""

    api_processes: int
    worker_processes: int
    removed: int
    """Stale rows this heartbeat deleted."""


async def beat(
    conn: AsyncConnection,
    *,
    process_id: str,
    role: str,
    host: str,
    pid: int,
    version: str,
    address: str | None,
    jobs_in_flight: int,
    stale_after: timedelta,
) -> Beat:
    """Write this process's row (created on the first beat), delete stale rows, and count the
    live processes; in the caller's transaction."""
    row = {
        "id": process_id,
        "role": role,
        "host": host,
        "pid": pid,
        "version": version,
        "address": address,
        "jobs_in_flight": jobs_in_flight,
    }
    upsert = insert(processes).values(row)
    await conn.execute(
        upsert.on_conflict_do_update(
            index_elements=[processes.c.id],
            set_={
                "last_seen_at": func.now(),
                "jobs_in_flight": upsert.excluded.jobs_in_flight,
                "role": upsert.excluded.role,
                "address": upsert.excluded.address,
            },
        )
    )
    cutoff = func.now() - bindparam("stale", stale_after, type_=Interval)
    removed = (
        await conn.execute(
            delete(processes).where(processes.c.last_seen_at < cutoff, processes.c.id != process_id)
        )
    ).rowcount
    counts = (
        await conn.execute(
            select(
                func.count().filter(processes.c.role.in_(API_ROLES)),
                func.count().filter(processes.c.role.in_(WORKER_ROLES)),
            ).where(processes.c.last_seen_at >= cutoff)
        )
    ).one()
    return Beat(api_processes=counts[0], worker_processes=counts[1], removed=removed)


async def leave(conn: AsyncConnection, process_id: str) -> None:
    """Delete this process's row: it is stopping."""
    await conn.execute(delete(processes).where(processes.c.id == process_id))


async def live_processes(conn: AsyncConnection, *, stale_after: timedelta) -> list[ProcessRecord]:
    """The processes seen within `stale_after`, API processes first, oldest first."""
    cutoff = func.now() - bindparam("stale", stale_after, type_=Interval)
    rows = await conn.execute(
        select(processes)
        .where(processes.c.last_seen_at >= cutoff)
        .order_by(processes.c.role, processes.c.started_at, processes.c.id)
    )
    return [
        ProcessRecord(
            id=row.id,
            role=row.role,
            host=row.host,
            pid=row.pid,
            version=row.version,
            address=row.address,
            started_at=row.started_at,
            last_seen_at=row.last_seen_at,
            jobs_in_flight=row.jobs_in_flight,
        )
        for row in rows
    ]


@dataclass(frozen=True, slots=True)
class QueueStatus:
    """The queue at one instant (`at`, the database's clock)."""

    at: datetime
    first_due: int
    first_scheduled: int
    retries_due: int
    retries_scheduled: int
    delivering: int
    held: int
    oldest_due_at: datetime | None
    """`next_attempt_at` of the job that has waited longest since it became due."""

    @property
    def lag_seconds(self) -> float:
        """How long the oldest due job has been waiting (0 with none due)."""
        if self.oldest_due_at is None:
            return 0.0
        return max(0.0, (self.at - self.oldest_due_at).total_seconds())


def _count(*conditions: ColumnElement[bool]) -> ScalarSelect[int]:
    return select(func.count()).where(*conditions).scalar_subquery()


_PENDING = jobs.c.status == PENDING
_FIRST = jobs.c.attempts == ZERO
_RETRY = jobs.c.attempts > ZERO
_DUE = jobs.c.next_attempt_at <= func.now()
_LATER = jobs.c.next_attempt_at > func.now()

#: One statement, one index probe or range per figure (literals match the partial indexes).
QUEUE_STATUS = select(
    func.now().label("at"),
    _count(_PENDING, _FIRST, _DUE).label("first_due"),
    _count(_PENDING, _FIRST, _LATER).label("first_scheduled"),
    _count(_PENDING, _RETRY, _DUE).label("retries_due"),
    _count(_PENDING, _RETRY, _LATER).label("retries_scheduled"),
    _count(jobs.c.status == DELIVERING).label("delivering"),
    _count(jobs.c.status == HELD).label("held"),
    # The first entry of the index, whatever the backlog (not a min() over the due range).
    select(jobs.c.next_attempt_at)
    .where(_PENDING, _DUE)
    .order_by(jobs.c.next_attempt_at)
    .limit(1)
    .scalar_subquery()
    .label("oldest_due_at"),
)

RECENT = bindparam("window", type_=Interval)
#: The attempts recorded within `window`, by outcome: one range of `ix_integration_logs_created`.
RECENT_DELIVERIES = select(
    func.count().filter(logs.c.succeeded).cast(Integer).label("succeeded"),
    func.count().filter(not_(logs.c.succeeded)).cast(Integer).label("failed"),
).where(logs.c.created_at >= func.now() - RECENT)


async def queue_status(conn: AsyncConnection) -> QueueStatus:
    row = (await conn.execute(QUEUE_STATUS)).one()
    return QueueStatus(
        at=row.at,
        first_due=row.first_due,
        first_scheduled=row.first_scheduled,
        retries_due=row.retries_due,
        retries_scheduled=row.retries_scheduled,
        delivering=row.delivering,
        held=row.held,
        oldest_due_at=row.oldest_due_at,
    )


@dataclass(frozen=True, slots=True)
class Deliveries:
    """Attempts recorded in a recent window, by outcome."""

    succeeded: int
    failed: int


async def recent_deliveries(conn: AsyncConnection, window: timedelta) -> Deliveries:
    row = (await conn.execute(RECENT_DELIVERIES, {"window": window})).one()
    return Deliveries(succeeded=row.succeeded, failed=row.failed)
