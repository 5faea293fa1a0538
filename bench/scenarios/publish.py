"""Publish: accepted events per second through `POST /v2/events`, single and batched.

The API's own figures: the worker is paused (SIGSTOP) while the requests run, so it takes no
CPU or database time from the API; every event still gets its job, as usual. Afterwards the
worker resumes and the backlog it finds is timed as `drain` (delivery alone, nothing published
meanwhile).
"""

from __future__ import annotations

import time
from dataclasses import dataclass

from bench.client import Sent, event
from bench.context import Bench
from bench.scenarios.common import event_ids, failures, publish_batches, together, unique_group
from bench.stats import Millis, rate


@dataclass(frozen=True, slots=True)
class PublishFigures:
    requests: int
    events: int
    """Events accepted (answered 202)."""
    concurrency: int
    seconds: float
    events_per_second: float
    request_ms: Millis
    not_accepted: dict[str, int]
    """Requests answered otherwise than 202, by status (`0`: no answer)."""


@dataclass(frozen=True, slots=True)
class DrainFigures:
    jobs: int
    seconds: float
    deliveries_per_second: float


@dataclass(frozen=True, slots=True)
class PublishResult:
    single: PublishFigures
    batch: PublishFigures
    drain: DrainFigures


async def _single(bench: Bench, group: str) -> PublishFigures:
    concurrency = bench.config.publish_single_concurrency
    sent: list[Sent] = []
    counter = 0
    started = time.monotonic()
    end = started + bench.config.publish_single_seconds

    async def publisher() -> None:
        nonlocal counter
        while time.monotonic() < end:
            event_id = f"{group}:{counter}"
            counter += 1
            sent.append(await bench.client.publish([event(event_id)], single=True, check=False))

    await together(
        (publisher() for _ in range(concurrency)),
        timeout=bench.config.publish_single_seconds + 60,
    )
    seconds = time.monotonic() - started
    accepted = [s for s in sent if s.accepted]
    return PublishFigures(
        requests=len(sent),
        events=len(accepted),
        concurrency=concurrency,
        seconds=round(seconds, 3),
        events_per_second=rate(len(accepted), seconds),
        request_ms=Millis.of([s.seconds for s in accepted]),
        not_accepted=failures(sent),
    )


async def _batch(bench: Bench, group: str) -> PublishFigures:
    concurrency = bench.config.publish_batch_concurrency
    ids = event_ids(group, bench.config.publish_batch_events)
    started = time.monotonic()
    sent = await publish_batches(bench, ids, concurrency=concurrency, check=False)
    seconds = time.monotonic() - started
    accepted = [s for s in sent if s.accepted]
    events = sum(s.events for s in accepted)
    return PublishFigures(
        requests=len(sent),
        events=events,
        concurrency=concurrency,
        seconds=round(seconds, 3),
        events_per_second=rate(events, seconds),
        request_ms=Millis.of([s.seconds for s in accepted]),
        not_accepted=failures(sent),
    )


async def run(bench: Bench) -> PublishResult:
    single_group = unique_group("pubs")
    batch_group = unique_group("pubb")
    bench.pause_worker()
    try:
        single = await _single(bench, single_group)
        batch = await _batch(bench, batch_group)
    finally:
        bench.resume_worker()
    resumed = time.monotonic()
    jobs = single.events + batch.events
    deadline = resumed + max(60, jobs / 100)
    try:
        await bench.sink.wait_for(
            single_group, unique=single.events, timeout=deadline - time.monotonic()
        )
        last = await bench.sink.wait_for(
            batch_group, unique=batch.events, timeout=deadline - time.monotonic()
        )
    finally:
        # Whatever is left must not slow the next scenario down.
        await bench.sql.execute(
            "UPDATE integration_jobs SET status = 'cancelled', next_attempt_at = NULL, "
            "completed_at = now() WHERE status = 'pending'"
        )
    first = await bench.sink.stats(single_group)
    seconds = max(last.last, first.last) - resumed
    return PublishResult(single, batch, DrainFigures(jobs, round(seconds, 3), rate(jobs, seconds)))
