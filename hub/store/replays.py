"""The replay's SQL: re-queue a window of an integration's jobs as new jobs, and count them.

A replay re-delivers each *event* at most once: of the events whose jobs (of this integration)
were created in ``[since, until)``, those whose **latest** job for that integration ended in
one of the asked statuses. An event whose failed job was retried with success since is
therefore not replayed, and replaying the same window twice replays only what failed again.
The new jobs are ordinary pending jobs (attempts from 1, `retry_of` pointing at the job they
replay, `replay_id` at the replay), appended like a manual retry's (`hub.store.ordered`, in the
order of the jobs they replay), so their progress is simply counted from them.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Any
from uuid import UUID

from sqlalchemy import Text, any_, func, insert, literal, or_, select, tuple_, update
from sqlalchemy.dialects.postgresql import ARRAY, distinct_on
from sqlalchemy.ext.asyncio import AsyncConnection

from hub.ids import uuid7
from hub.store.engine import driver_of
from hub.store.enqueue import notify
from hub.store.models import jobs, replays
from hub.store.ordered import QueuedJob, append_jobs
from hub.store.records import ReplayRecord


def _to_replay(
    integration_id: UUID,
    since: datetime,
    until: datetime,
    statuses: Sequence[str],
    triggered_by: str | None = None,
) -> Any:
    """The window's events (of event key `triggered_by`, if given) whose latest job ended in one
    of `statuses`: that job, oldest first."""
    window = jobs.alias("w")
    in_window = [
        window.c.integration_id == integration_id,
        window.c.created_at >= since,
        window.c.created_at < until,
    ]
    if triggered_by is not None:
        in_window.append(window.c.triggered_by == triggered_by)
    window_events = select(window.c.event_id).distinct().where(*in_window).cte("window_events")
    latest = (
        select(
            jobs.c.id,
            jobs.c.event_id,
            jobs.c.triggered_by,
            jobs.c.status,
            jobs.c.ordering_value,
            jobs.c.created_at,
        )
        .ext(distinct_on(jobs.c.event_id))
        .join(window_events, window_events.c.event_id == jobs.c.event_id)
        .where(jobs.c.integration_id == integration_id)
        .order_by(jobs.c.event_id, jobs.c.created_at.desc(), jobs.c.id.desc())
        .cte("latest")
    )
    return (
        select(latest.c.id, latest.c.event_id, latest.c.triggered_by, latest.c.ordering_value)
        .where(latest.c.status == any_(literal(list(statuses), ARRAY(Text))))
        .order_by(latest.c.created_at, latest.c.id)
    )


async def create(
    conn: AsyncConnection,
    *,
    store_id: UUID,
    integration_id: UUID,
    since: datetime,
    until: datetime,
    statuses: Sequence[str],
    ordered: bool = False,
    triggered_by: str | None = None,
) -> ReplayRecord:
    """Record the replay and queue its jobs, in the caller's transaction.

    The new jobs are appended in the order of the jobs they replay (`hub.store.ordered`); with
    `ordered` (the integration has an `ordering_key`) each keeps the key value of the job it
    replays and goes to the end of that key's queue: the caller holds the integration's queue
    lock (`ordered.lock_queues`). Without, they are unordered.
    """
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
    rows = (
        await conn.execute(_to_replay(integration_id, since, until, statuses, triggered_by))
    ).all()
    queued = [
        QueuedJob(
            uuid7(),
            row.event_id,
            integration_id,
            row.triggered_by,
            row.ordering_value if ordered else None,
            retry_of=row.id,
            replay_id=replay_id,
        )
        for row in rows
    ]
    await append_jobs(await driver_of(conn), store_id, queued, datetime.now(UTC))
    total = len(queued)
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


async def count_to_replay(
    conn: AsyncConnection,
    *,
    integration_id: UUID,
    since: datetime,
    until: datetime,
    statuses: Sequence[str],
    triggered_by: str | None = None,
) -> int:
    """How many jobs `create` would queue now for the same window (what a confirmation shows).

    Counted as the jobs in `statuses` with no newer job of their event (for this integration)
    and some job in the window, from one side or the other, the cheaper one chosen from two
    index-only counts: when the jobs in `statuses` are far fewer than the window's, from those
    jobs (one probe each on `ix_integration_jobs_event`), else from the window's jobs on
    `ix_integration_jobs_integration_created` alone (which carries each job's event, status and
    key: no heap page is read while the visibility map is current)."""
    wanted = any_(literal(list(statuses), ARRAY(Text)))
    in_status = await _count(conn, jobs.c.integration_id == integration_id, jobs.c.status == wanted)
    if in_status == 0:
        return 0
    in_window = await _count(
        conn,
        jobs.c.integration_id == integration_id,
        jobs.c.created_at >= since,
        jobs.c.created_at < until,
    )
    if in_status * FROM_STATUS_BELOW < in_window:
        query = _latest_in_status(integration_id, since, until, statuses, triggered_by)
    else:
        query = _latest_from_window(integration_id, since, until, statuses, triggered_by)
    return int((await conn.execute(query)).scalar_one())


FROM_STATUS_BELOW = 4
"""Count from the jobs in the asked statuses when they are fewer than a quarter of the window's:
two index probes each then cost less than reading the window (measured with 41,667 jobs)."""


async def _count(conn: AsyncConnection, *where: Any) -> int:
    return int((await conn.execute(select(func.count()).where(*where))).scalar_one())


def _latest_in_status(
    integration_id: UUID,
    since: datetime,
    until: datetime,
    statuses: Sequence[str],
    triggered_by: str | None,
) -> Any:
    """`_to_replay`'s jobs counted from the jobs in `statuses`: those with no newer job of their
    event (for this integration) and some job in the window."""
    job = jobs.alias("j")
    return select(func.count()).where(
        job.c.integration_id == integration_id,
        job.c.status == any_(literal(list(statuses), ARRAY(Text))),
        ~_has_newer(job, integration_id),
        _has_job_in_window(job, integration_id, since, until, triggered_by),
    )


def _latest_from_window(
    integration_id: UUID,
    since: datetime,
    until: datetime,
    statuses: Sequence[str],
    triggered_by: str | None,
) -> Any:
    """`_to_replay`'s jobs counted from the window: the jobs from `since` on in `statuses` with
    no newer job of their event (for this integration), that are in the window or, newer than
    it, have a job of their event in it.

    An event's newer job is newer than `since` too, so PostgreSQL reads the integration's jobs
    from `since` on (index-only) once for each side of a hash anti-join, instead of sorting
    them by event; the second condition is probed only for the (few) jobs after `until`."""
    job = jobs.alias("j")
    where = [
        job.c.integration_id == integration_id,
        job.c.created_at >= since,
        job.c.status == any_(literal(list(statuses), ARRAY(Text))),
        ~_has_newer(job, integration_id, created_from=since),
        or_(job.c.created_at < until, _has_job_in_window(job, integration_id, since, until)),
    ]
    if triggered_by is not None:
        # An event's jobs all have its key: the window's job has the key of the one counted.
        where.append(job.c.triggered_by == triggered_by)
    return select(func.count()).where(*where)


def _has_newer(job: Any, integration_id: UUID, *, created_from: datetime | None = None) -> Any:
    """Whether `job`'s event has a newer job for this integration (created from `created_from`
    on, when the caller knows any newer one is: a bound the planner can use)."""
    newer = jobs.alias("n")
    where = [
        newer.c.integration_id == integration_id,
        newer.c.event_id == job.c.event_id,
        tuple_(newer.c.created_at, newer.c.id) > tuple_(job.c.created_at, job.c.id),
    ]
    if created_from is not None:
        where.append(newer.c.created_at >= created_from)
    return select(newer.c.id).where(*where).exists()


def _has_job_in_window(
    job: Any,
    integration_id: UUID,
    since: datetime,
    until: datetime,
    triggered_by: str | None = None,
) -> Any:
    """Whether `job`'s event has a job for this integration (of key `triggered_by`, if given)
    created in `[since, until)`."""
    window = jobs.alias("w")
    where = [
        window.c.integration_id == integration_id,
        window.c.event_id == job.c.event_id,
        window.c.created_at >= since,
        window.c.created_at < until,
    ]
    if triggered_by is not None:
        where.append(window.c.triggered_by == triggered_by)
    return select(window.c.id).where(*where).exists()


def _aware(value: datetime) -> datetime:
    """A stored window bound as given. asyncpg reads the first and the last instant Python
    holds (0001-01-01T00:00:00Z, 9999-12-31T23:59:59.999999Z) as its stand-ins for -infinity
    and infinity, naive `datetime.min` and `datetime.max`: they are those very instants in UTC."""
    return value if value.tzinfo is not None else value.replace(tzinfo=UTC)


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
        since=_aware(row.since),
        until=_aware(row.until),
        statuses=tuple(row.statuses),
        total=row.total,
        created_at=row.created_at,
        jobs={status: count for status, count in counts},
    )
