"""The console's pictures: per integration, and summed on the store's front page, deliveries
per minute (succeeded / failed) and the attempts' p50 / p95 duration over the last 24 hours;
on the front page also the slowest and the most failing integrations.

The figures come from the rollup (`hub.store.rollup`), so a chart costs the same with a
million logs as with ten. The 24 hours are drawn as the rollup's 144 periods of ten minutes,
each bar a period's deliveries per minute (its count over ten); the drawing is
`hub.console.svg`'s.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from uuid import UUID

from markupsafe import Markup
from sqlalchemy.ext.asyncio import AsyncConnection

from hub.console.svg import Bucket, deliveries_chart, duration_text, durations_chart
from hub.store import pages, rollup
from hub.store.rollup import Period, Totals

SPAN = timedelta(hours=24)
BUCKET = timedelta(minutes=10)
MINUTE = timedelta(minutes=1)
RANKED = 5
"""Integrations in each of the front page's rankings."""
X_LABELS = ((0.0, "-24 h"), (0.25, "-18 h"), (0.5, "-12 h"), (0.75, "-6 h"), (1.0, "now"))


@dataclass(frozen=True, slots=True)
class Charts:
    """The two pictures and the figures shown beside them."""

    deliveries: Markup
    durations: Markup
    succeeded: int
    failed: int
    p50: str
    p95: str
    buckets: list[Bucket]

    @property
    def attempts(self) -> int:
        return self.succeeded + self.failed


@dataclass(frozen=True, slots=True)
class Ranked:
    """An integration in a ranking of the front page."""

    integration_id: UUID
    name: str
    attempts: int
    failed: int
    failure_rate: float
    p50: str
    p95: str
    p95_seconds: float | None


@dataclass(frozen=True, slots=True)
class Overview:
    """The front page's pictures and rankings."""

    charts: Charts
    slowest: list[Ranked]
    failing: list[Ranked]
    last_hour: dict[UUID, tuple[int, int]]
    """Each integration's attempts and successes in the last hour, to the minute."""


def _span(now: datetime) -> tuple[datetime, datetime]:
    """The 24 hours shown: 144 periods, the last one the current one."""
    end = rollup.period_of(now) + BUCKET
    return end - SPAN, end


def buckets_of(by_period: Mapping[datetime, Totals], start: datetime) -> list[Bucket]:
    """The periods' totals from `start` (144 of them), with their percentiles."""
    out = []
    for i in range(int(SPAN / BUCKET)):
        at = start + i * BUCKET
        totals = by_period.get(at) or Totals()
        out.append(
            Bucket(
                start=at,
                minutes=rollup.MINUTES,
                succeeded=totals.succeeded,
                failed=totals.failed,
                p50=rollup.percentile(totals.durations, 0.5),
                p95=rollup.percentile(totals.durations, 0.95),
            )
        )
    return out


def _charts(by_period: Mapping[datetime, Totals], start: datetime, name: str) -> Charts:
    buckets = buckets_of(by_period, start)
    histogram = rollup.histogram_of(t for at, t in by_period.items() if start <= at < start + SPAN)
    return Charts(
        deliveries=deliveries_chart(buckets, X_LABELS, name=f"{name}-deliveries"),
        durations=durations_chart(buckets, X_LABELS, name=f"{name}-durations"),
        succeeded=sum(b.succeeded for b in buckets),
        failed=sum(b.failed for b in buckets),
        p50=duration_text(rollup.percentile(histogram, 0.5)),
        p95=duration_text(rollup.percentile(histogram, 0.95)),
        buckets=buckets,
    )


async def integration_charts(
    conn: AsyncConnection, store_id: UUID, integration_id: UUID, *, now: datetime | None = None
) -> Charts:
    now = now or datetime.now(UTC)
    start, _ = _span(now)
    found = await rollup.periods(
        conn, store_id, integration_id=integration_id, since=start, now=now
    )
    return _charts(rollup.totals_by_period(found), start, "integration")


def _ranked(integration_id: UUID, name: str, totals: Totals) -> Ranked:
    p95 = rollup.percentile(totals.durations, 0.95)
    return Ranked(
        integration_id=integration_id,
        name=name,
        attempts=totals.attempts,
        failed=totals.failed,
        failure_rate=totals.failed / totals.attempts if totals.attempts else 0.0,
        p50=duration_text(rollup.percentile(totals.durations, 0.5)),
        p95=duration_text(p95),
        p95_seconds=p95,
    )


async def store_overview(
    conn: AsyncConnection, store_id: UUID, *, now: datetime | None = None
) -> Overview:
    now = now or datetime.now(UTC)
    start, _ = _span(now)
    hour = timedelta(hours=1)
    hour_ago = now - hour
    summary = await rollup.store_summary(conn, store_id, since=start, now=now, recent=hour)
    names = await pages.names_of(conn, store_id, list(summary.by_integration))
    totals = [_ranked(i, names.get(i, "?"), t) for i, t in summary.by_integration.items()]
    slowest = sorted(
        (t for t in totals if t.p95_seconds is not None),
        key=lambda t: (-(t.p95_seconds or 0.0), t.name),
    )[:RANKED]
    failing = sorted(
        (t for t in totals if t.failed), key=lambda t: (-t.failed, -t.failure_rate, t.name)
    )[:RANKED]
    recent: dict[UUID, list[Period]] = {}
    for p in summary.recent:
        if p.start + BUCKET > hour_ago:
            recent.setdefault(p.integration_id, []).append(p)
    last_hour: dict[UUID, tuple[int, int]] = {}
    for integration_id in summary.by_integration:
        minutes = rollup.per_minute(recent.get(integration_id, []))
        ok = sum(s for at, (s, _) in minutes.items() if at > hour_ago - MINUTE)
        bad = sum(f for at, (_, f) in minutes.items() if at > hour_ago - MINUTE)
        last_hour[integration_id] = (ok + bad, ok)
    return Overview(_charts(summary.by_period, start, "store"), slowest, failing, last_hour)
