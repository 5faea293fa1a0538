"""The console's pictures: per integration, and summed on the store's front page, deliveries
per minute (succeeded / failed) and the attempts' p50 / p95 duration over the last 24 hours;
on the front page also the slowest and the most failing integrations.

The figures come from the per-minute rollup (`hub.store.rollup`), so a chart costs the same
with a million logs as with ten. The 24 hours are drawn as 144 buckets of ten minutes, each
bar a bucket's deliveries per minute; the drawing is `hub.console.svg`'s.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from uuid import UUID

from markupsafe import Markup
from sqlalchemy.ext.asyncio import AsyncConnection

from hub.console.svg import Bucket, deliveries_chart, duration_text, durations_chart
from hub.store import rollup
from hub.store.rollup import IntegrationTotal, Minute

SPAN = timedelta(hours=24)
BUCKET = timedelta(minutes=10)
RANKED = 5
"""Integrations in each of the front page's rankings."""
X_LABELS = ((0.0, "24 h ago"), (0.25, "18 h"), (0.5, "12 h"), (0.75, "6 h"), (1.0, "now"))


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


def _span(now: datetime) -> tuple[datetime, datetime]:
    """The 24 hours shown: ending at the next ten-minute boundary."""
    now = now.astimezone(UTC)
    end = now.replace(minute=now.minute - now.minute % 10, second=0, microsecond=0) + BUCKET
    return end - SPAN, end


def buckets_of(minutes: Sequence[Minute], start: datetime) -> list[Bucket]:
    """The minutes in ten-minute buckets from `start` (144 of them), with their percentiles."""
    count = int(SPAN / BUCKET)
    size = int(BUCKET.total_seconds() // 60)
    grouped: list[list[Minute]] = [[] for _ in range(count)]
    for m in minutes:
        index = int((m.minute - start) / BUCKET)
        if 0 <= index < count:
            grouped[index].append(m)
    out = []
    for i, group in enumerate(grouped):
        histogram = rollup.sum_minutes(group)
        out.append(
            Bucket(
                start=start + i * BUCKET,
                minutes=size,
                succeeded=sum(m.succeeded for m in group),
                failed=sum(m.failed for m in group),
                p50=rollup.percentile(histogram, 0.5),
                p95=rollup.percentile(histogram, 0.95),
            )
        )
    return out


def _charts(minutes: Sequence[Minute], start: datetime, name: str) -> Charts:
    buckets = buckets_of(minutes, start)
    histogram = rollup.sum_minutes(minutes)
    return Charts(
        deliveries=deliveries_chart(buckets, X_LABELS, name=f"{name}-deliveries"),
        durations=durations_chart(buckets, X_LABELS, name=f"{name}-durations"),
        succeeded=sum(m.succeeded for m in minutes),
        failed=sum(m.failed for m in minutes),
        p50=duration_text(rollup.percentile(histogram, 0.5)),
        p95=duration_text(rollup.percentile(histogram, 0.95)),
        buckets=buckets,
    )


async def integration_charts(
    conn: AsyncConnection, store_id: UUID, integration_id: UUID, *, now: datetime | None = None
) -> Charts:
    start, end = _span(now or datetime.now(UTC))
    minutes = await rollup.minute_series(
        conn, store_id, integration_id=integration_id, since=start, now=end
    )
    return _charts(minutes, start, "integration")


def _ranked(total: IntegrationTotal) -> Ranked:
    p95 = rollup.percentile(total.durations, 0.95)
    return Ranked(
        integration_id=total.integration_id,
        name=total.name,
        attempts=total.attempts,
        failed=total.failed,
        failure_rate=total.failed / total.attempts if total.attempts else 0.0,
        p50=duration_text(rollup.percentile(total.durations, 0.5)),
        p95=duration_text(p95),
        p95_seconds=p95,
    )


async def store_overview(
    conn: AsyncConnection, store_id: UUID, *, now: datetime | None = None
) -> Overview:
    start, end = _span(now or datetime.now(UTC))
    minutes = await rollup.minute_series(conn, store_id, since=start, now=end)
    totals = [
        _ranked(t) for t in await rollup.integration_totals(conn, store_id, since=start, now=end)
    ]
    slowest = sorted(
        (t for t in totals if t.p95_seconds is not None),
        key=lambda t: (-(t.p95_seconds or 0.0), t.name),
    )[:RANKED]
    failing = sorted(
        (t for t in totals if t.failed), key=lambda t: (-t.failed, -t.failure_rate, t.name)
    )[:RANKED]
    return Overview(_charts(minutes, start, "store"), slowest, failing)
