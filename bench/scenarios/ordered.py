"""Ordered throughput: the throughput scenario's events to an ordered webhook (`ordering_key`),
spread over 1,000 resources, delivered end to end.

A webhook to the sink observing a key of its own (`ORDERED_KEY`), with `ordering_key` =
`RESOURCE_PATH`; the events are batch-published as in the throughput scenario, the `n`th about
resource `n mod resources`, so each resource's events come in publish order `n`, interleaved
with every other resource's. Deliveries per second from the first publish request sent to the
last delivery received, and the ratio to the unordered throughput of the same run. The sink's
first arrival of each event is checked against its resource's publish order (`out_of_order`:
events that arrived before one of their resource published earlier; 0 expected).
"""

from __future__ import annotations

import time
from dataclasses import dataclass

from bench.client import ORDERED_KEY, RESOURCE_PATH
from bench.context import Bench
from bench.scenarios.common import event_ids, publish_batches, unique_group
from bench.stats import Millis, rate


@dataclass(frozen=True, slots=True)
class OrderedResult:
    events: int
    resources: int
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
    out_of_order: int


async def run(bench: Bench) -> OrderedResult:
    total = bench.config.throughput_events
    resources = bench.config.ordered_resources
    await bench.client.create_webhook(
        bench.sink.hook_url, key=ORDERED_KEY, name="bench-ordered", ordering_key=RESOURCE_PATH
    )
    group = unique_group("ordered")
    ids = event_ids(group, total)
    started = time.monotonic()
    order: list[int] = []
    sent = await publish_batches(
        bench,
        ids,
        concurrency=bench.config.throughput_publishers,
        key=ORDERED_KEY,
        resources=lambda n: f"r{n % resources}",
        accepted=order,
    )
    published = time.monotonic() - started
    stats = await bench.sink.wait_for(group, unique=total, timeout=max(60, total / 50))
    seconds = stats.last - started
    arrived = await bench.sink.times(group)
    # Each resource's events in publish order (a batch retried after a 503 is published later
    # than its numbers say), each checked against the one published before it.
    late = 0
    previous: dict[int, int] = {}
    for n in order:
        before = previous.get(n % resources)
        if before is not None and arrived[ids[n]] < arrived[ids[before]]:
            late += 1
        previous[n % resources] = n
    return OrderedResult(
        events=total,
        resources=resources,
        batch_size=bench.config.batch_size,
        publishers=bench.config.throughput_publishers,
        publish_seconds=round(published, 3),
        publish_events_per_second=rate(total, published),
        publish_request_ms=Millis.of([s.seconds for s in sent]),
        seconds=round(seconds, 3),
        deliveries_per_second=rate(stats.unique, seconds),
        deliveries=stats.count,
        duplicates=stats.count - stats.unique,
        out_of_order=late,
    )
