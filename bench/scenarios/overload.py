"""Overload: single-event publishes sent open loop at twice what the API sustains.

The rate is twice the `publish` scenario's single-publish rate of this run (or
`overload_rate` when that scenario did not run). A hub without a cliff accepts what it can
write in time, answers the rest `503` with `Retry-After` at once, and never a `500`; what it
accepted is fast (its p99) and delivered (none lost). The scheduler is `latency.at_rate`'s: an
overloaded hub cannot slow its clients down. The clients' connections are open before the
clock starts, as a fleet of services' kept-alive connections would be: otherwise the first
half second is 1,600 connections being opened at once, a backlog of requests behind them, and
an open loop that sends at the hub's capacity never works that backlog off.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from dataclasses import dataclass

from bench.client import Sent, event
from bench.context import Bench
from bench.scenarios.common import failures, unique_group
from bench.stats import Millis, rate


@dataclass(frozen=True, slots=True)
class OverloadResult:
    rate: int
    """Publishes sent per second (twice the sustained single-publish rate)."""
    seconds: float
    sent: int
    achieved_rate: float
    accepted: int
    accepted_per_second: float
    accepted_ms: Millis
    """The accepted requests' answers: what stays fast under overload."""
    refused_503: int
    refused_with_retry_after: int
    other_answers: dict[str, int]
    """Answers that were neither 202 nor 503, by status (`0`: no answer): must be none."""
    refused_ms: Millis
    """How quickly the refusals came: early, not after a wait."""
    lost: int
    """Accepted events never delivered."""


async def run(bench: Bench, *, sustained: float | None = None) -> OverloadResult:
    per_second = int(2 * (sustained or bench.config.overload_rate / 2))
    seconds = bench.config.overload_seconds
    total = max(1, int(per_second * seconds))
    group = unique_group("ovl")
    sent: dict[str, Sent] = {}

    async def one(event_id: str) -> None:
        sent[event_id] = await bench.client.publish([event(event_id)], single=True, check=False)

    await bench.client.open_connections()
    async with asyncio.timeout(seconds + 120), asyncio.TaskGroup() as tasks:
        start = time.monotonic() + 0.05
        for n in range(total):
            delay = start + n / per_second - time.monotonic()
            if delay > 0:
                await asyncio.sleep(delay)
            tasks.create_task(one(f"{group}:{n}"))
    accepted = {i: s for i, s in sent.items() if s.accepted}
    refused = [s for s in sent.values() if s.status == 503]
    first_sent = min(s.sent_at for s in sent.values())
    last_sent = max(s.sent_at for s in sent.values())
    arrived: dict[str, float] = {}
    if accepted:
        with contextlib.suppress(TimeoutError):  # what did not arrive is counted as lost
            await bench.sink.wait_for(group, unique=len(accepted), timeout=max(60, total / 50))
        arrived = await bench.sink.times(group)
    other = {k: v for k, v in failures(sent.values()).items() if k != "503"}
    return OverloadResult(
        rate=per_second,
        seconds=seconds,
        sent=total,
        achieved_rate=rate(total - 1, last_sent - first_sent) if total > 1 else 0.0,
        accepted=len(accepted),
        accepted_per_second=rate(len(accepted), last_sent - first_sent),
        accepted_ms=Millis.of([s.seconds for s in accepted.values()]),
        refused_503=len(refused),
        refused_with_retry_after=sum(1 for s in refused if s.retry_after),
        other_answers=other,
        refused_ms=Millis.of([s.seconds for s in refused]),
        lost=sum(1 for i in accepted if i not in arrived),
    )
