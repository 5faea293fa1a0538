"""Scale-out: the throughput scenario's end-to-end delivery rate with one and with two `hub
worker` processes on the same database (the API process stays one).

The run's own worker delivers a batch-published set of events alone; then a second `hub worker`
starts, and once the process registry shows both, the same number of events is published and
delivered by the two; the second worker is stopped (SIGTERM) afterwards. On a 2-core machine the
two workers share the cores with the API, PostgreSQL and the sink, so expect little gain: the
figure says how much of one worker's rate a second one adds where there is room.
"""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass

from bench.context import Bench
from bench.scenarios.common import event_ids, publish_batches, unique_group
from bench.stats import rate


@dataclass(frozen=True, slots=True)
class ScaleOutRun:
    workers: int
    events: int
    seconds: float
    """First publish sent → last delivery received."""
    deliveries_per_second: float
    duplicates: int
    refused: int = 0
    """Batch publishes answered 503 (admission) and sent again after `Retry-After`."""


@dataclass(frozen=True, slots=True)
class ScaleOutResult:
    runs: list[ScaleOutRun]
    ratio: float | None
    """Deliveries per second with two workers / with one."""


async def _measure(bench: Bench, workers: int) -> ScaleOutRun:
    total = bench.config.scaleout_events
    group = unique_group(f"scale{workers}w")
    ids = event_ids(group, total)
    started = time.monotonic()
    sent = await publish_batches(bench, ids, concurrency=bench.config.throughput_publishers)
    stats = await bench.sink.wait_for(group, unique=total, timeout=max(60, total / 100))
    seconds = stats.last - started
    return ScaleOutRun(
        workers=workers,
        events=total,
        seconds=round(seconds, 3),
        deliveries_per_second=rate(stats.unique, seconds),
        duplicates=stats.count - stats.unique,
        refused=sum(1 for answer in sent if answer.status == 503),
    )


async def _workers_registered(bench: Bench, count: int, timeout: float = 30) -> None:
    deadline = time.monotonic() + timeout
    while True:
        found = await bench.sql.fetchval(
            "SELECT count(*) FROM hub_processes WHERE role IN ('worker', 'api+worker')"
        )
        if found == count:
            return
        if time.monotonic() > deadline:
            raise TimeoutError(f"{count} workers not registered within {timeout} s ({found})")
        await asyncio.sleep(0.1)


async def run(bench: Bench) -> ScaleOutResult:
    one = await _measure(bench, workers=1)
    second = bench.hub.start_worker()
    try:
        await _workers_registered(bench, 2)
        two = await _measure(bench, workers=2)
    finally:
        await bench.hub.stop(second)
    ratio = (
        round(two.deliveries_per_second / one.deliveries_per_second, 3)
        if one.deliveries_per_second
        else None
    )
    return ScaleOutResult(runs=[one, two], ratio=ratio)
