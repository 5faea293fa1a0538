"""Latency: publish → first delivery at fixed rates of single-event publishes.

An open-loop scheduler sends event `i` at `start + i / rate` whether or not earlier requests
have been answered (a slow hub cannot slow its clients down). Latency is the sink's receive time
minus the moment the publish request was sent, on the same monotonic clock. The achieved rate
shows whether the client kept the schedule; requests the API did not accept (an overloaded API
may answer 503) are counted, and only accepted events are waited for.
"""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass

from bench.client import Sent, event
from bench.context import Bench
from bench.scenarios.common import failures, unique_group
from bench.stats import Millis, rate


@dataclass(frozen=True, slots=True)
class RateResult:
    rate: int
    seconds: float
    sent: int
    achieved_rate: float
    not_accepted: dict[str, int]
    """Publish requests answered otherwise than 202, by status (`0`: no answer)."""
    delivered: int
    latency_ms: Millis
    """Publish sent → first delivery received."""
    publish_ms: Millis
    accepted_to_delivered_ms: Millis
    """From the 202 reaching the client to the delivery (negative when the delivery came first):
    the part of the latency after the API's answer."""
    send_lag_ms: Millis
    """How late the scheduler sent each request (the client's own lag)."""


@dataclass(frozen=True, slots=True)
class LatencyResult:
    rates: list[RateResult]


async def at_rate(bench: Bench, per_second: int, seconds: float) -> RateResult:
    total = max(1, int(per_second * seconds))
    group = unique_group(f"lat{per_second}r")
    sent: dict[str, Sent] = {}
    lags: list[float] = []

    async def one(event_id: str, due: float) -> None:
        lags.append(time.monotonic() - due)
        sent[event_id] = await bench.client.publish([event(event_id)], single=True, check=False)

    # An overloaded API answers late; the wait is bounded all the same, and a timeout cancels
    # every request still open.
    async with asyncio.timeout(seconds + max(60, total / 20)), asyncio.TaskGroup() as tasks:
        start = time.monotonic() + 0.05
        for n in range(total):
            due = start + n / per_second
            delay = due - time.monotonic()
            if delay > 0:
                await asyncio.sleep(delay)
            tasks.create_task(one(f"{group}:{n}", due))
    accepted = {i: s for i, s in sent.items() if s.accepted}
    first_sent = min(s.sent_at for s in sent.values())
    last_sent = max(s.sent_at for s in sent.values())
    await bench.sink.wait_for(group, unique=len(accepted), timeout=max(30, total / 50))
    arrived = await bench.sink.times(group)
    latencies = [arrived[i] - s.sent_at for i, s in accepted.items() if i in arrived]
    return RateResult(
        rate=per_second,
        seconds=seconds,
        sent=total,
        achieved_rate=rate(total - 1, last_sent - first_sent) if total > 1 else 0.0,
        not_accepted=failures(sent.values()),
        delivered=len(latencies),
        latency_ms=Millis.of(latencies),
        publish_ms=Millis.of([s.seconds for s in accepted.values()]),
        accepted_to_delivered_ms=Millis.of(
            [arrived[i] - s.sent_at - s.seconds for i, s in accepted.items() if i in arrived]
        ),
        send_lag_ms=Millis.of(lags),
    )


async def run(bench: Bench) -> LatencyResult:
    results = []
    for per_second in bench.config.latency_rates:
        results.append(await at_rate(bench, per_second, bench.config.latency_seconds))
        await asyncio.sleep(0.5)
    return LatencyResult(results)
