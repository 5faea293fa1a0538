"""Throughput: events batch-published through the API to one webhook, delivered end to end.

Deliveries per second from the first publish request sent to the last delivery received by
the sink; publishing and delivering overlap, as they do in production.
"""

from __future__ import annotations

import time
from dataclasses import dataclass

from bench.context import Bench
from bench.scenarios.common import event_ids, publish_batches, unique_group
from bench.stats import Millis, rate


@dataclass(frozen=True, slots=True)
class ThroughputResult:
    events: int
    batch_size: int
    publishers: int
    publish_seconds: float
    publish_events_per_second: float
    publish_request_ms: Millis
    seconds: float
    """First publish sent → last delivery received."""
    deliveries_per_second: float
    deliveries: int
    duplicates: int


async def run(bench: Bench) -> ThroughputResult:
    total = bench.config.throughput_events
    group = unique_group("tput")
    ids = event_ids(group, total)
    started = time.monotonic()
    sent = await publish_batches(bench, ids, concurrency=bench.config.throughput_publishers)
    published = time.monotonic() - started
    stats = await bench.sink.wait_for(group, unique=total, timeout=max(60, total / 100))
    seconds = stats.last - started
    return ThroughputResult(
        events=total,
        batch_size=bench.config.batch_size,
        publishers=bench.config.throughput_publishers,
        publish_seconds=round(published, 3),
        publish_events_per_second=rate(total, published),
        publish_request_ms=Millis.of([s.seconds for s in sent]),
        seconds=round(seconds, 3),
        deliveries_per_second=rate(stats.unique, seconds),
        deliveries=stats.count,
        duplicates=stats.count - stats.unique,
    )
