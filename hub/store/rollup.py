"""The per-minute rollup of attempts behind the console's charts, and its reads.

**What is kept.** `integration_log_minutes` holds, per integration and minute (UTC) with
attempts, how many succeeded and failed, the sum of their durations and a sparse histogram of
the durations, ``{"<bucket>": count}``, over the geometric `BOUNDS` (1 ms to 131 s, four
buckets per doubling): bucket ``k`` counts durations in ``[BOUNDS[k-1], BOUNDS[k])``, 0 those
below 1 ms, ``len(BOUNDS)`` those from 131 s. A percentile read from it (`percentile`) is
interpolated within its bucket, so it is within a bucket's width (19 %) of the exact one.

**Who writes it.** The workers' rollup pass (`roll_up`, every `HUB_RETENTION_INTERVAL`): from
where the last pass got (`rollup_progress.done_until`) less `REDO`, to the last minute that
ended `LAG` ago, at most `MAX_SPAN` a pass, it aggregates the logs (`ix_integration_logs_created`)
and *replaces* those minutes' rows. Replacing makes a pass idempotent: doing a minute again
gives the same row, so a worker that dies mid-pass, or a log row that commits late (its
`created_at` is its transaction's start) within `LAG` + `REDO` of its minute, is counted
right. One worker rolls up at a time (a transaction-level advisory lock; the others skip their
turn), and its rows and the progress commit together. A first pass starts `BACKFILL` ago.
Rows older than `KEEP` are deleted by the same pass.

**Who reads it.** The charts (`minute_series`, `integration_totals`): the rolled-up minutes
before `done_until` from the table (its primary key for an integration,
`ix_integration_log_minutes_store_minute` for a store), and the few minutes since straight from
the logs (`ix_integration_logs_integration_created` / `_store_created`), with the same
aggregate, so a chart is complete to the second and costs the same with a million logs as
with ten.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any
from uuid import UUID

from sqlalchemy import (
    ColumnElement,
    Double,
    Integer,
    cast,
    delete,
    func,
    literal,
    literal_column,
    select,
)
from sqlalchemy.dialects.postgresql import ARRAY, insert
from sqlalchemy.ext.asyncio import AsyncConnection

from hub.store.models import integrations, log_minutes, logs, rollup_progress

BOUNDS: tuple[float, ...] = tuple(0.001 * 2 ** (k / 4) for k in range(69))
"""Bucket boundaries of durations, in seconds: 1 ms · 2^(k/4), k = 0…68 (to 131 s)."""
LAG = timedelta(minutes=2)
REDO = timedelta(minutes=5)
MAX_SPAN = timedelta(hours=2)
BACKFILL = timedelta(hours=25)
KEEP = timedelta(days=2)
PROGRESS = "integration_log_minutes"
ROLLUP_LOCK_ID = 0x6875625F726F6C
"""Held for the length of a rollup transaction: only one worker rolls up at a time."""
CHUNK = 2000
"""Rows per upsert statement (7 parameters each, under PostgreSQL's 32,767)."""


@dataclass(slots=True)
class Minute:
    """One minute's attempts (of an integration, or a store's summed)."""

    minute: datetime
    succeeded: int = 0
    failed: int = 0
    duration_sum: float = 0.0
    durations: dict[int, int] = field(default_factory=dict)

    def add(self, other: Minute) -> None:
        self.succeeded += other.succeeded
        self.failed += other.failed
        self.duration_sum += other.duration_sum
        merge(self.durations, other.durations)


@dataclass(slots=True)
class IntegrationTotal:
    """An integration's attempts over a window, for the front page's rankings."""

    integration_id: UUID
    name: str
    succeeded: int = 0
    failed: int = 0
    durations: dict[int, int] = field(default_factory=dict)

    @property
    def attempts(self) -> int:
        return self.succeeded + self.failed


def merge(into: dict[int, int], histogram: Mapping[int, int]) -> None:
    for bucket, count in histogram.items():
        into[bucket] = into.get(bucket, 0) + count


def percentile(histogram: Mapping[int, int], q: float) -> float | None:
    """The `q`-quantile (0 < q ≤ 1) of the durations in `histogram`, in seconds, interpolated
    geometrically within its bucket; None when it is empty."""
    total = sum(histogram.values())
    if total == 0:
        return None
    rank = q * total
    seen = 0
    for bucket in sorted(histogram):
        count = histogram[bucket]
        if count and seen + count >= rank:
            low = BOUNDS[bucket - 1] if bucket > 0 else 0.0
            high = BOUNDS[bucket] if bucket < len(BOUNDS) else BOUNDS[-1]
            if bucket == 0 or bucket == len(BOUNDS):
                return high if bucket == 0 else low
            share = (rank - seen) / count
            return math.exp(math.log(low) + share * (math.log(high) - math.log(low)))
        seen += count
    return None  # pragma: no cover - the loop always reaches `total`


def _minute_of(column: ColumnElement[datetime]) -> ColumnElement[datetime]:
    return func.date_trunc(literal_column("'minute'"), column, literal_column("'UTC'"))


def _bucket() -> ColumnElement[int]:
    return func.width_bucket(logs.c.processing_time, cast(literal(list(BOUNDS)), ARRAY(Double)))


def _aggregate(*where: ColumnElement[bool]) -> Any:
    """The logs that meet `where`, counted by integration, minute and duration bucket."""
    minute = _minute_of(logs.c.created_at).label("minute")
    bucket = _bucket().label("bucket")
    return (
        select(
            logs.c.integration_id,
            logs.c.store_id,
            minute,
            bucket,
            func.count().filter(logs.c.succeeded).label("ok"),
            func.count().filter(logs.c.succeeded.is_(False)).label("bad"),
            func.sum(logs.c.processing_time).label("seconds"),
        )
        .where(*where)
        .group_by(logs.c.integration_id, logs.c.store_id, minute, bucket)
    )


@dataclass(slots=True)
class _Row:
    integration_id: UUID
    store_id: UUID
    minute: Minute


def _fold(rows: Iterable[Any]) -> dict[tuple[UUID, datetime], _Row]:
    folded: dict[tuple[UUID, datetime], _Row] = {}
    for r in rows:
        key = (r.integration_id, r.minute)
        row = folded.get(key)
        if row is None:
            row = folded[key] = _Row(r.integration_id, r.store_id, Minute(r.minute))
        m = row.minute
        m.succeeded += r.ok
        m.failed += r.bad
        m.duration_sum += r.seconds or 0.0
        m.durations[r.bucket] = m.durations.get(r.bucket, 0) + r.ok + r.bad
    return folded


def _floor(at: datetime) -> datetime:
    return at.astimezone(UTC).replace(second=0, microsecond=0)


@dataclass(frozen=True, slots=True)
class RollupPass:
    """What a pass did: the minutes it covered (None: another worker held the turn, or there
    was nothing to do yet) and the rows it wrote and deleted."""

    start: datetime | None
    end: datetime | None
    written: int
    deleted: int


async def roll_up(conn: AsyncConnection, *, now: datetime) -> RollupPass:
    """One rollup pass in the caller's transaction (see the module's docstring)."""
    turn = (await conn.execute(select(func.pg_try_advisory_xact_lock(ROLLUP_LOCK_ID)))).scalar()
    if not turn:
        return RollupPass(None, None, 0, 0)
    done = (
        await conn.execute(
            select(rollup_progress.c.done_until)
            .where(rollup_progress.c.name == PROGRESS)
            .with_for_update()
        )
    ).scalar()
    start = _floor(done - REDO) if done is not None else _floor(now - BACKFILL)
    end = min(_floor(now - LAG), start + MAX_SPAN)
    deleted = (
        await conn.execute(delete(log_minutes).where(log_minutes.c.minute < now - KEEP))
    ).rowcount
    if end <= start:
        return RollupPass(None, None, 0, deleted)
    folded = _fold(
        await conn.execute(_aggregate(logs.c.created_at >= start, logs.c.created_at < end))
    )
    values = [
        {
            "integration_id": row.integration_id,
            "minute": row.minute.minute,
            "store_id": row.store_id,
            "succeeded": row.minute.succeeded,
            "failed": row.minute.failed,
            "duration_sum": row.minute.duration_sum,
            "durations": {str(k): v for k, v in sorted(row.minute.durations.items())},
        }
        for row in folded.values()
    ]
    for i in range(0, len(values), CHUNK):
        statement = insert(log_minutes).values(values[i : i + CHUNK])
        await conn.execute(
            statement.on_conflict_do_update(
                index_elements=[log_minutes.c.integration_id, log_minutes.c.minute],
                set_={
                    name: statement.excluded[name]
                    for name in ("succeeded", "failed", "duration_sum", "durations")
                },
            )
        )
    progress = insert(rollup_progress).values(name=PROGRESS, done_until=end)
    await conn.execute(
        progress.on_conflict_do_update(
            index_elements=[rollup_progress.c.name],
            set_={"done_until": func.greatest(rollup_progress.c.done_until, end)},
        )
    )
    return RollupPass(start, end, len(values), deleted)


async def _done_until(conn: AsyncConnection) -> datetime | None:
    return (
        await conn.execute(
            select(rollup_progress.c.done_until).where(rollup_progress.c.name == PROGRESS)
        )
    ).scalar()


def _histograms(column: Any) -> Any:
    """`jsonb_each_text(durations)` as a table of (bucket, count)."""
    return func.jsonb_each_text(column).table_valued("key", "value").render_derived()


async def minute_series(
    conn: AsyncConnection,
    store_id: UUID,
    *,
    integration_id: UUID | None = None,
    since: datetime,
    now: datetime,
) -> list[Minute]:
    """The minutes with attempts in ``[since, now)``, oldest first: one integration's, or the
    store's summed over its integrations."""
    done = await _done_until(conn)
    rolled_until = max(min(done, now), since) if done is not None else since
    scope = [log_minutes.c.store_id == store_id]
    if integration_id is not None:
        scope.append(log_minutes.c.integration_id == integration_id)
    scope += [log_minutes.c.minute >= since, log_minutes.c.minute < rolled_until]
    minutes: dict[datetime, Minute] = {}
    counts = await conn.execute(
        select(
            log_minutes.c.minute,
            func.sum(log_minutes.c.succeeded),
            func.sum(log_minutes.c.failed),
            func.sum(log_minutes.c.duration_sum),
        )
        .where(*scope)
        .group_by(log_minutes.c.minute)
    )
    for at, ok, bad, seconds in counts:
        minutes[at] = Minute(at, int(ok), int(bad), float(seconds))
    each = _histograms(log_minutes.c.durations)
    buckets = await conn.execute(
        select(
            log_minutes.c.minute,
            cast(each.c.key, Integer),
            func.sum(cast(each.c.value, Integer)),
        )
        .select_from(log_minutes)
        .join(each, literal(True))
        .where(*scope)
        .group_by(log_minutes.c.minute, each.c.key)
    )
    for at, bucket, count in buckets:
        minutes[at].durations[bucket] = int(count)
    tail = [logs.c.store_id == store_id, logs.c.created_at >= rolled_until, logs.c.created_at < now]
    if integration_id is not None:
        tail.append(logs.c.integration_id == integration_id)
    for row in _fold(await conn.execute(_aggregate(*tail))).values():
        minutes.setdefault(row.minute.minute, Minute(row.minute.minute)).add(row.minute)
    return [minutes[at] for at in sorted(minutes)]


async def integration_totals(
    conn: AsyncConnection, store_id: UUID, *, since: datetime, now: datetime
) -> list[IntegrationTotal]:
    """Each of the store's integrations with attempts in ``[since, now)``: its counts and its
    durations' histogram."""
    done = await _done_until(conn)
    rolled_until = max(min(done, now), since) if done is not None else since
    scope = [
        log_minutes.c.store_id == store_id,
        log_minutes.c.minute >= since,
        log_minutes.c.minute < rolled_until,
    ]
    totals: dict[UUID, IntegrationTotal] = {}
    names = dict(
        (
            await conn.execute(
                select(integrations.c.id, integrations.c.name).where(
                    integrations.c.store_id == store_id
                )
            )
        ).all()
    )

    def total(integration_id: UUID) -> IntegrationTotal:
        found = totals.get(integration_id)
        if found is None:
            found = totals[integration_id] = IntegrationTotal(
                integration_id, names.get(integration_id, "?")
            )
        return found

    for integration_id, ok, bad in await conn.execute(
        select(
            log_minutes.c.integration_id,
            func.sum(log_minutes.c.succeeded),
            func.sum(log_minutes.c.failed),
        )
        .where(*scope)
        .group_by(log_minutes.c.integration_id)
    ):
        found = total(integration_id)
        found.succeeded, found.failed = int(ok), int(bad)
    each = _histograms(log_minutes.c.durations)
    for integration_id, bucket, count in await conn.execute(
        select(
            log_minutes.c.integration_id,
            cast(each.c.key, Integer),
            func.sum(cast(each.c.value, Integer)),
        )
        .select_from(log_minutes)
        .join(each, literal(True))
        .where(*scope)
        .group_by(log_minutes.c.integration_id, each.c.key)
    ):
        total(integration_id).durations[bucket] = int(count)
    tail = [logs.c.store_id == store_id, logs.c.created_at >= rolled_until, logs.c.created_at < now]
    for row in _fold(await conn.execute(_aggregate(*tail))).values():
        found = total(row.integration_id)
        found.succeeded += row.minute.succeeded
        found.failed += row.minute.failed
        merge(found.durations, row.minute.durations)
    return list(totals.values())


def sum_minutes(minutes: Sequence[Minute]) -> dict[int, int]:
    """The durations' histogram of several minutes together."""
    histogram: dict[int, int] = {}
    for m in minutes:
        merge(histogram, m.durations)
    return histogram
