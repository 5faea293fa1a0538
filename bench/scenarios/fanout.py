"""Fan-out: one event to many integrations of one store.

The integrations (webhooks to the sink, all observing one custom key) are created through the
API first. Each round publishes one event with that key and measures the time to accept (the
POST's latency: the event and its 1,000 jobs are stored before the 202) and the time until the
sink has received every delivery. With the integrations in place, the list endpoints are timed
too (a page of 100 integrations, of logs, of one integration's jobs).
"""

from __future__ import annotations

import asyncio
import statistics
import time
from dataclasses import dataclass

from bench.client import FANOUT_KEY, event
from bench.context import Bench
from bench.scenarios.common import together, unique_group
from bench.stats import Millis, rate


@dataclass(frozen=True, slots=True)
class Round:
    accept_ms: float
    first_delivery_ms: float
    all_delivered_ms: float
    deliveries: int


@dataclass(frozen=True, slots=True)
class FanoutResult:
    integrations: int
    create_seconds: float
    creates_per_second: float
    rounds: list[Round]
    accept_ms_median: float
    all_delivered_ms_median: float
    list_integrations_ms: Millis
    list_logs_ms: Millis
    list_jobs_ms: Millis


async def _create(bench: Bench, count: int, concurrency: int = 8) -> float:
    names = iter(range(count))
    started = time.monotonic()

    async def creator() -> None:
        for n in names:
            await bench.client.create_webhook(
                bench.sink.hook_url, key=FANOUT_KEY, name=f"fan-out {n}"
            )

    await together((creator() for _ in range(concurrency)), timeout=max(60, count / 5))
    return time.monotonic() - started


async def _round(bench: Bench, count: int) -> Round:
    group = unique_group("fan")
    sent = await bench.client.publish([event(f"{group}:0", FANOUT_KEY)], single=True)
    stats = await bench.sink.wait_for(group, count=count, timeout=max(60, count / 20))
    return Round(
        accept_ms=round(sent.seconds * 1000, 2),
        first_delivery_ms=round((stats.first - sent.sent_at) * 1000, 2),
        all_delivered_ms=round((stats.last - sent.sent_at) * 1000, 2),
        deliveries=stats.count,
    )


async def _lists(bench: Bench, path: str) -> Millis:
    await bench.client.get(path)
    return Millis.of([await bench.client.get(path) for _ in range(bench.config.list_requests)])


async def run(bench: Bench) -> FanoutResult:
    count = bench.config.fanout_integrations
    created = await _create(bench, count)
    rounds = []
    for _ in range(bench.config.fanout_rounds):
        rounds.append(await _round(bench, count))
        await asyncio.sleep(0.5)
    page = "page[limit]=100"
    return FanoutResult(
        integrations=count,
        create_seconds=round(created, 3),
        creates_per_second=rate(count, created),
        rounds=rounds,
        accept_ms_median=statistics.median(r.accept_ms for r in rounds),
        all_delivered_ms_median=statistics.median(r.all_delivered_ms for r in rounds),
        list_integrations_ms=await _lists(bench, f"/v2/integrations?{page}"),
        list_logs_ms=await _lists(bench, f"/v2/integrations/logs?{page}"),
        list_jobs_ms=await _lists(bench, f"/v2/integrations/{bench.integration_id}/jobs?{page}"),
    )
