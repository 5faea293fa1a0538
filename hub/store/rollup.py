"""The rollup of attempts behind the console's charts, and its reads.

**What is kept.** `integration_log_rollups` holds, per integration and ten-minute period
(UTC) with attempts, how many succeeded and failed in each of its ten minutes (two arrays of
ten), the sum of their durations and a sparse histogram of the durations, ``{"<bucket>":
count}``, over the geometric `BOUNDS` (1 ms to 131 s, four buckets per doubling): bucket ``k``
counts durations in ``[BOUNDS[k-1], BOUNDS[k])``, 0 those below 1 ms, ``len(BOUNDS)`` those
from 131 s. A percentile read from it (`percentile`) is interpolated within its bucket, so it
is within a bucket's width (19 %) of the exact one. Ten minutes a row keeps a day of one
integration to 144 rows: a store's front page reads 144 rows per integration that had
attempts, however many attempts there were.

**Who writes it.** The workers' rollup pass (`roll_up`, every `HUB_RETENTION_INTERVAL`): from
the period where the last pass got (`rollup_progress.done_until`) less `REDO`, to the last
minute that ended `LAG` ago, at most `MAX_SPAN` a pass, it aggregates the logs
(`ix_integration_logs_created`) and *replaces* those periods' rows. Replacing makes a pass
idempotent: doing a period again gives the same row, so a worker that dies mid-pass, or a log
row that commits late (its `created_at` is its transaction's start) within `LAG` + `REDO` of
its minute, is counted right. One worker rolls up at a time (a transaction-level advisory
lock; the others skip their turn), and its rows and the progress commit together. A first
pass starts `BACKFILL` ago. Rows older than `KEEP` are deleted by the same pass.

**Who reads it.** The charts (`periods`): the rows rolled up before `done_until` (its primary
key for an integration, `ix_integration_log_rollups_store_period` for a store), and the
minutes since straight from the logs (`ix_integration_logs_integration_created` /
`_store_created`) with the same aggregate, so a chart is complete to the second. A store's
front page (`store_summary`) has PostgreSQL sum the day's rows by period and by integration
(a busy store has thousands of rows a day, each a histogram to merge) and reads only its
newest hour as `periods` does, minute by minute.
"""

from __future__ import annotations

import math
from collections import OrderedDict
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any
from uuid import UUID

from sqlalchemy import (
    BigInteger,
    ColumnElement,
    Double,
    Integer,
    bindparam,
    cast,
    delete,
    func,
    literal,
    literal_column,
    null,
    select,
    true,
    tuple_,
    type_coerce,
    union_all,
)
from sqlalchemy.dialects.postgresql import ARRAY, insert
from sqlalchemy.ext.asyncio import AsyncConnection
from sqlalchemy.types import NullType

from hub.store.models import log_rollups, logs, rollup_progress

BOUNDS: tuple[float, ...] = tuple(0.001 * 2 ** (k / 4) for k in range(69))
"""Bucket boundaries of durations, in seconds: 1 ms · 2^(k/4), k = 0…68 (to 131 s)."""
PERIOD = timedelta(minutes=10)
MINUTES = 10
"""Minutes in a period."""
LAG = timedelta(minutes=2)
REDO = timedelta(minutes=5)
MAX_SPAN = timedelta(hours=2)
BACKFILL = timedelta(hours=25)
KEEP = timedelta(days=2)
PROGRESS = "integration_log_rollups"
ROLLUP_LOCK_ID = 0x6875625F726F6C
"""Held for the length of a rollup transaction: only one worker rolls up at a time."""
MINUTE_ARRAYS = ("succeeded", "failed")
CHUNK = 2000
"""Rows per upsert statement (7 parameters each, under PostgreSQL's 32,767)."""


@dataclass(slots=True)
class Period:
    """One integration's attempts of ten minutes."""

    integration_id: UUID
    store_id: UUID
    start: datetime
    succeeded: list[int] = field(default_factory=lambda: [0] * MINUTES)
    failed: list[int] = field(default_factory=lambda: [0] * MINUTES)
    duration_sum: float = 0.0
    durations: dict[int, int] = field(default_factory=dict)

    def add(self, other: Period) -> None:
        for i in range(MINUTES):
            self.succeeded[i] += other.succeeded[i]
            self.failed[i] += other.failed[i]
        self.duration_sum += other.duration_sum
        merge(self.durations, other.durations)

    @property
    def attempts(self) -> int:
        return sum(self.succeeded) + sum(self.failed)


@dataclass(slots=True)
class Totals:
    """Attempts counted together: of one period of several integrations, or of one integration
    over several periods."""

    succeeded: int = 0
    failed: int = 0
    durations: dict[int, int] = field(default_factory=dict)

    def add(self, period: Period) -> None:
        self.succeeded += sum(period.succeeded)
        self.failed += sum(period.failed)
        merge(self.durations, period.durations)

    @property
    def attempts(self) -> int:
        return self.succeeded + self.failed

    def copy(self) -> Totals:
        return Totals(self.succeeded, self.failed, dict(self.durations))


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
            if bucket == 0:
                return BOUNDS[0]
            if bucket >= len(BOUNDS):
                return BOUNDS[-1]
            low, high = BOUNDS[bucket - 1], BOUNDS[bucket]
            share = (rank - seen) / count
            return math.exp(math.log(low) + share * (math.log(high) - math.log(low)))
        seen += count
    return None  # pragma: no cover - the loop always reaches `total`


def period_of(at: datetime) -> datetime:
    at = at.astimezone(UTC)
    return at.replace(minute=at.minute - at.minute % MINUTES, second=0, microsecond=0)


def _minute(at: datetime) -> datetime:
    return at.astimezone(UTC).replace(second=0, microsecond=0)


def _aggregate(*where: ColumnElement[bool]) -> Any:
    """The logs that meet `where`, counted by integration, minute (UTC) and duration bucket."""
    minute = func.date_trunc(
        literal_column("'minute'"), logs.c.created_at, literal_column("'UTC'")
    ).label("minute")
    bucket = func.width_bucket(
        logs.c.processing_time, cast(literal(list(BOUNDS)), ARRAY(Double))
    ).label("bucket")
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


def _fold(rows: Iterable[Any]) -> dict[tuple[UUID, datetime], Period]:
    folded: dict[tuple[UUID, datetime], Period] = {}
    for r in rows:
        start = period_of(r.minute)
        key = (r.integration_id, start)
        period = folded.get(key)
        if period is None:
            period = folded[key] = Period(r.integration_id, r.store_id, start)
        i = int((r.minute - start) / timedelta(minutes=1))
        period.succeeded[i] += r.ok
        period.failed[i] += r.bad
        period.duration_sum += r.seconds or 0.0
        period.durations[r.bucket] = period.durations.get(r.bucket, 0) + r.ok + r.bad
    return folded


@dataclass(frozen=True, slots=True)
class RollupPass:
    """What a pass did: the span it covered (None: another worker held the turn, or there was
    nothing to do yet) and the rows it wrote and deleted."""

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
    start = period_of(done - REDO if done is not None else now - BACKFILL)
    end = min(_minute(now - LAG), start + MAX_SPAN)
    deleted = (
        await conn.execute(delete(log_rollups).where(log_rollups.c.period < now - KEEP))
    ).rowcount
    if end <= start:
        return RollupPass(None, None, 0, deleted)
    folded = _fold(
        await conn.execute(_aggregate(logs.c.created_at >= start, logs.c.created_at < end))
    )
    values = [
        {
            "integration_id": p.integration_id,
            "period": p.start,
            "store_id": p.store_id,
            "succeeded": p.succeeded,
            "failed": p.failed,
            "duration_sum": p.duration_sum,
            "durations": {str(k): v for k, v in sorted(p.durations.items())},
        }
        for p in folded.values()
    ]
    for i in range(0, len(values), CHUNK):
        statement = insert(log_rollups).values(values[i : i + CHUNK])
        await conn.execute(
            statement.on_conflict_do_update(
                index_elements=[log_rollups.c.integration_id, log_rollups.c.period],
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


async def periods(
    conn: AsyncConnection,
    store_id: UUID,
    *,
    integration_id: UUID | None = None,
    since: datetime,
    now: datetime,
) -> list[Period]:
    """The periods with attempts from `since` (a period's start) to `now`: one integration's,
    or each of the store's integrations'. Each (integration, period) once, in no order."""
    done = await _done_until(conn)
    return await _periods(conn, store_id, integration_id, since=since, now=now, done=done)


async def _done_until(conn: AsyncConnection) -> datetime | None:
    """Where the rollup has got to (None: it never ran)."""
    return (
        await conn.execute(
            select(rollup_progress.c.done_until).where(rollup_progress.c.name == PROGRESS)
        )
    ).scalar()


async def _periods(
    conn: AsyncConnection,
    store_id: UUID,
    integration_id: UUID | None,
    *,
    since: datetime,
    now: datetime,
    done: datetime | None,
) -> list[Period]:
    rolled_until = max(min(done, now), since) if done is not None else since
    scope = [log_rollups.c.store_id == store_id]
    if integration_id is not None:
        scope.append(log_rollups.c.integration_id == integration_id)
    found: dict[tuple[UUID, datetime], Period] = {}
    # The arrays come as asyncpg decodes them: SQLAlchemy's per-item processing of an
    # ARRAY(Integer) would be most of the read's time.
    raw = {name: type_coerce(log_rollups.c[name], NullType()).label(name) for name in MINUTE_ARRAYS}
    for r in await conn.execute(
        select(
            log_rollups.c.integration_id,
            log_rollups.c.store_id,
            log_rollups.c.period,
            raw["succeeded"],
            raw["failed"],
            log_rollups.c.duration_sum,
            log_rollups.c.durations,
        ).where(*scope, log_rollups.c.period >= since, log_rollups.c.period < rolled_until)
    ):
        found[(r.integration_id, r.period)] = Period(
            r.integration_id,
            r.store_id,
            r.period,
            list(r.succeeded),
            list(r.failed),
            r.duration_sum,
            {int(k): v for k, v in r.durations.items()},
        )
    tail = [logs.c.store_id == store_id, logs.c.created_at >= rolled_until, logs.c.created_at < now]
    if integration_id is not None:
        tail.append(logs.c.integration_id == integration_id)
    for key, period in _fold(await conn.execute(_aggregate(*tail))).items():
        if key in found:
            found[key].add(period)
        else:
            found[key] = period
    return list(found.values())


@dataclass(frozen=True, slots=True)
class StoreSummary:
    """A store's attempts over a span (`store_summary`)."""

    by_period: dict[datetime, Totals]
    """By period start, all integrations together (periods without attempts left out)."""
    by_integration: dict[UUID, Totals]
    """By integration, the whole span (integrations without attempts left out)."""
    recent: list[Period]
    """The newest periods in full, minute by minute (also counted in the totals)."""


async def store_summary(
    conn: AsyncConnection, store_id: UUID, *, since: datetime, now: datetime, recent: timedelta
) -> StoreSummary:
    """The store's attempts from `since` (a period's start) to `now`, summed by period and by
    integration, with the periods of the last `recent` in full.

    The periods before those that no pass will redo (they end before `done_until` less `REDO`)
    are *settled*: PostgreSQL sums them (`_SUMS`, one statement), and the process keeps the
    sums (`_SETTLED`) until the split between settled and newest moves to the next period, so
    the front page of a busy store reads its day once every ten minutes rather than at every
    view. The rest, rolled up or not yet, are read as `periods` reads them and added in."""
    done = await _done_until(conn)
    split = since if done is None else max(since, period_of(min(now - recent, done - REDO)))
    by_period: dict[datetime, Totals] = {}
    by_integration: dict[UUID, Totals] = {}
    if split > since:
        key = (store_id, since, split)
        settled = _SETTLED.get(key)
        if settled is None:
            settled = await _settled(conn, store_id, since, split)
            _SETTLED[key] = settled
            while len(_SETTLED) > SETTLED_KEPT:
                _SETTLED.popitem(last=False)
        _SETTLED.move_to_end(key)
        # Copies: the newest periods are added to them below.
        by_period = {at: t.copy() for at, t in settled[0].items()}
        by_integration = {i: t.copy() for i, t in settled[1].items()}
    newest = await _periods(conn, store_id, None, since=split, now=now, done=done)
    for p in newest:
        by_period.setdefault(p.start, Totals()).add(p)
        by_integration.setdefault(p.integration_id, Totals()).add(p)
    return StoreSummary(by_period, by_integration, newest)


_Settled = tuple[dict[datetime, Totals], dict[UUID, Totals]]
#: Settled sums by (store, since, split), the most recently used last.
_SETTLED: OrderedDict[tuple[UUID, datetime, datetime], _Settled] = OrderedDict()
SETTLED_KEPT = 256
"""Stores whose settled sums a process keeps (a few hundred kB at most)."""


async def _settled(
    conn: AsyncConnection, store_id: UUID, since: datetime, until: datetime
) -> _Settled:
    by_period: dict[datetime, Totals] = {}
    by_integration: dict[UUID, Totals] = {}
    for r in await conn.execute(_SUMS, {"store_id": store_id, "since": since, "until": until}):
        totals = (
            by_period.setdefault(r.period, Totals())
            if r.by_period
            else by_integration.setdefault(r.integration_id, Totals())
        )
        if r.bucket is None:
            totals.succeeded += r.ok
            totals.failed += r.bad
        else:
            totals.durations[r.bucket] = r.ok
    return by_period, by_integration


def _sums() -> Any:
    """A store's rolled-up periods from `:since` to `:until` summed by period and by integration
    (`by_period`): a row of counts (`bucket` NULL: `ok` succeeded, `bad` failed) and a row per
    duration bucket (`ok` its count) of each. A row's counts are its ten minutes added by
    subscript (a fifth of the cost of an `unnest` a row)."""
    t = log_rollups.c
    rows = (
        select(
            t.integration_id,
            t.period,
            t.durations,
            sum((t.succeeded[i] for i in range(2, MINUTES + 1)), t.succeeded[1]).label("ok"),
            sum((t.failed[i] for i in range(2, MINUTES + 1)), t.failed[1]).label("bad"),
        )
        .where(
            t.store_id == bindparam("store_id"),
            t.period >= bindparam("since"),
            t.period < bindparam("until"),
        )
        .cte("r")
    )
    by_period = (func.grouping(rows.c.period) == 0).label("by_period")
    counts = select(
        by_period,
        rows.c.period,
        rows.c.integration_id,
        cast(null(), Integer).label("bucket"),
        cast(func.sum(rows.c.ok), BigInteger).label("ok"),
        cast(func.sum(rows.c.bad), BigInteger).label("bad"),
    ).group_by(func.grouping_sets(tuple_(rows.c.period), tuple_(rows.c.integration_id)))
    histogram = func.jsonb_each(rows.c.durations).table_valued("key", "value").render_derived("h")
    bucket = cast(histogram.c.key, Integer)
    buckets = (
        select(
            by_period,
            rows.c.period,
            rows.c.integration_id,
            bucket,
            cast(func.sum(cast(histogram.c.value, Integer)), BigInteger),
            cast(null(), BigInteger),
        )
        .select_from(rows.join(histogram, true()))
        .group_by(
            func.grouping_sets(
                tuple_(rows.c.period, histogram.c.key),
                tuple_(rows.c.integration_id, histogram.c.key),
            )
        )
    )
    return union_all(counts, buckets)


_SUMS = _sums()


def totals_by_period(found: Iterable[Period]) -> dict[datetime, Totals]:
    """Periods summed by their start."""
    out: dict[datetime, Totals] = {}
    for p in found:
        out.setdefault(p.start, Totals()).add(p)
    return out


def per_minute(found: Sequence[Period]) -> dict[datetime, tuple[int, int]]:
    """Succeeded and failed attempts by minute (minutes without attempts left out)."""
    out: dict[datetime, tuple[int, int]] = {}
    for p in found:
        for i in range(MINUTES):
            if p.succeeded[i] or p.failed[i]:
                at = p.start + timedelta(minutes=i)
                ok, bad = out.get(at, (0, 0))
                out[at] = (ok + p.succeeded[i], bad + p.failed[i])
    return out


def histogram_of(found: Iterable[Period | Totals]) -> dict[int, int]:
    """The durations' histogram of several periods (or totals) together."""
    histogram: dict[int, int] = {}
    for p in found:
        merge(histogram, p.durations)
    return histogram
