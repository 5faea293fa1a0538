"""Fault: ordered delivery (`ordering_key`) under real processes. Three workers and an endpoint
failing 30 % of requests deliver 50 keys x 40 events, each key in publish order and never two of
one key at once; one key failing for 5 s does not slow the others; two API processes publishing
one key at the same instant make one queue; a worker killed with a key's job in flight leaves the
next job waiting until the lease brings the first one back."""

from __future__ import annotations

import asyncio
import itertools
import statistics
import time
from collections import defaultdict
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any
from uuid import UUID

import aiohttp
import pytest
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine

from hub.store.engine import create_engine
from tests.support.processes import Api, Processes, api_on
from tests.support.queue import status_counts
from tests.support.sinks import Answer, Sink, running_sink
from tests.support.waiting import eventually

KEYS = 50
PER_KEY = 40
#: 20 attempts: with 30 % failing at random a job runs out of them with odds 0.3^20 (never).
SCHEDULE = ",".join(["20ms"] * 19)
SETTINGS = {
    "HUB_WEBHOOK_TIMEOUT": "3",
    "HUB_WORKER_POLL_INTERVAL": "0.2",
    "HUB_RETRY_SCHEDULE": SCHEDULE,
    "HUB_WORKER_CONCURRENCY": "32",
    # One key publishes 200 events through two API processes at once: no rate limit in the way.
    "HUB_API_RATE_LIMIT": "0",
}


@pytest.fixture
async def engine(fresh_db: str) -> AsyncIterator[AsyncEngine]:
    engine = create_engine(fresh_db, pool_size=3)
    yield engine
    await engine.dispose()


def event(key: str, n: int) -> dict[str, Any]:
    return {
        "type": "event",
        "triggered_by": "order.created",
        "payload": {"data": {"type": "order", "id": key, "n": n}},
    }


async def publish(api: Api, events: list[dict[str, Any]]) -> None:
    """Publish `events` in order, in batches of 100."""
    for first in range(0, len(events), 100):
        response = await api.client.post(
            "/v2/events",
            json={"data": events[first : first + 100]},
            headers=api.tenant.auth("publish"),
        )
        assert response.status == 202, await response.text()


async def all_succeeded(engine: AsyncEngine, total: int) -> bool:
    return (await status_counts(engine))["succeeded"] == total


def by_key(answers: list[Answer]) -> dict[str, list[Answer]]:
    """The sink's answers by the event's key, in the order the requests arrived."""
    found: defaultdict[str, list[Answer]] = defaultdict(list)
    for answer in sorted(answers, key=lambda a: a.hit.at):
        found[str(answer.hit.data["id"])].append(answer)
    return found


def overlapping(answers: list[Answer]) -> list[tuple[UUID, UUID]]:
    """Pairs of requests of one key that were open at once (arrival order)."""
    return [
        (before.hit.job_id, after.hit.job_id)
        for before, after in itertools.pairwise(answers)
        if after.hit.at < before.at
    ]


async def test_three_workers_and_a_flaky_endpoint_deliver_every_key_in_publish_order(
    fresh_db: str, engine: AsyncEngine, tmp_path: Path
) -> None:
    procs = Processes(fresh_db, tmp_path, SETTINGS)
    total = KEYS * PER_KEY
    started = time.monotonic()
    async with running_sink(Sink(fail_ratio=0.3)) as sink, api_on(fresh_db, engine) as api:
        await api.create_webhook(sink.url, ordering_key="data.id")
        try:
            for _ in range(3):
                procs.start_worker()
            # interleaved: k0#0, k1#0, …, k49#0, k0#1, …
            await publish(api, [event(f"k{k}", n) for n in range(PER_KEY) for k in range(KEYS)])
            await eventually(
                lambda: all_succeeded(engine, total), timeout=120, what="every job succeeded"
            )
        except BaseException:
            print(procs.output())
            raise
        finally:
            procs.kill_all()

    keys = by_key(sink.answers)
    failed = sum(not a.succeeded for a in sink.answers)
    print(
        f"\n[faults: ordered, flaky] keys={KEYS} events={total} requests={len(sink.answers)} "
        f"failed_requests={failed} total={time.monotonic() - started:.1f}s"
    )
    assert set(keys) == {f"k{k}" for k in range(KEYS)}
    assert 0.2 < failed / len(sink.answers) < 0.4
    for key, answers in keys.items():
        delivered = [a.hit.data["n"] for a in answers if a.succeeded]
        assert delivered == list(range(PER_KEY)), f"{key} out of publish order: {delivered}"
        assert overlapping(answers) == [], f"two requests of {key} at once"


async def test_one_key_failing_for_five_seconds_does_not_slow_the_other_keys(
    fresh_db: str, engine: AsyncEngine, tmp_path: Path
) -> None:
    settings = SETTINGS | {"HUB_RETRY_SCHEDULE": ",".join(["0.2s"] * 40)}
    procs = Processes(fresh_db, tmp_path, settings)
    outage = 5.0
    failing_until = 0.0
    sink = Sink(fail_when=lambda data: data["id"] == "stuck" and time.monotonic() < failing_until)
    sent: dict[tuple[str, int], float] = {}
    async with running_sink(sink), api_on(fresh_db, engine) as api:
        await api.create_webhook(sink.url, ordering_key="data.id")
        try:
            procs.start_worker()
            procs.start_worker()
            # Measured from when both workers listen, not from their start-up.
            await eventually(lambda: listening(engine, 2), timeout=30, what="two workers up")
            failing_until = time.monotonic() + outage
            await publish(api, [event("stuck", n) for n in range(5)])
            # the other keys, one event each every 50 ms while the stuck key fails
            for n in range(60):
                batch = [event(f"other{k}", n) for k in range(5)]
                await publish(api, batch)
                for k in range(5):
                    sent[(f"other{k}", n)] = time.monotonic()
                await asyncio.sleep(0.05)
            await eventually(
                lambda: all_succeeded(engine, 5 + 5 * 60), timeout=60, what="all delivered"
            )
        except BaseException:
            print(procs.output())
            raise
        finally:
            procs.kill_all()

    keys = by_key(sink.answers)
    latencies = [
        next(a.at for a in answers if a.succeeded and a.hit.data["n"] == n) - at
        for (key, n), at in sent.items()
        for answers in [keys[key]]
    ]
    stuck = [a for a in keys["stuck"] if a.succeeded]
    p50 = statistics.median(latencies)
    p95 = statistics.quantiles(latencies, n=20)[-1]
    print(
        f"\n[faults: ordered, one key down {outage:.0f}s] other keys' publish→delivered "
        f"p50={p50 * 1000:.0f}ms p95={p95 * 1000:.0f}ms max={max(latencies) * 1000:.0f}ms; "
        f"stuck key's attempts={len(keys['stuck'])}"
    )
    # Generous for a loaded machine, yet far below the outage: blocked behind the stuck key the
    # others' first events would wait the whole 5 s, and the later ones most of it.
    assert p95 < 1.5
    assert max(latencies) < 3.0
    assert [a.hit.data["n"] for a in stuck] == list(range(5))
    assert stuck[0].at >= failing_until
    assert overlapping(keys["stuck"]) == []


async def listening(engine: AsyncEngine, workers: int) -> bool:
    """Are that many workers listening for publishes (their loops run)?"""
    async with engine.connect() as conn:
        count = (
            await conn.execute(
                text(
                    "SELECT count(*) FROM pg_stat_activity "
                    "WHERE datname = current_database() AND query LIKE 'LISTEN%'"
                )
            )
        ).scalar_one()
    return int(count) >= workers


async def test_two_api_processes_publishing_one_key_at_the_same_instant_make_one_queue(
    fresh_db: str, engine: AsyncEngine, tmp_path: Path
) -> None:
    procs = Processes(fresh_db, tmp_path, SETTINGS)
    async with running_sink(Sink(delay=0.005)) as sink, api_on(fresh_db, engine) as api:
        integration = await api.create_webhook(sink.url, ordering_key="data.id")
        try:
            bases = [await procs.start_api_url(), await procs.start_api_url()]
            go = asyncio.Event()

            async def publisher(
                session: aiohttp.ClientSession, base: str, first: int, key: str
            ) -> None:
                await go.wait()
                for n in range(first, first + 25):
                    async with session.post(
                        f"{base}/v2/events",
                        json={"data": event(key, n)},
                        headers=api.tenant.auth("publish"),
                    ) as response:
                        assert response.status == 202, await response.text()

            async with aiohttp.ClientSession() as session:
                tasks = [
                    asyncio.create_task(publisher(session, base, first, key))
                    for index, base in enumerate(bases)
                    for first in (index * 1000, index * 1000 + 500)
                    for key in ("a", "b")
                ]
                await asyncio.sleep(0.2)
                go.set()
                await asyncio.gather(*tasks)
            queues = await chains(engine, integration)
            procs.start_worker()
            procs.start_worker()
            await eventually(lambda: all_succeeded(engine, 200), timeout=60, what="all delivered")
        except BaseException:
            print(procs.output())
            raise
        finally:
            procs.kill_all()

    keys = by_key(sink.answers)
    for key in ("a", "b"):
        rows = queues[key]
        assert len(rows) == 100
        assert [waits for _, waits in rows] == [None] + [job for job, _ in rows[:-1]], (
            f"{key}: one job proceeds, each other waits for the one before it, in id order"
        )
        assert [a.hit.job_id for a in keys[key] if a.succeeded] == [job for job, _ in rows]
        assert overlapping(keys[key]) == []


async def chains(engine: AsyncEngine, integration: UUID) -> dict[str, list[tuple[UUID, Any]]]:
    """Each key's jobs as (id, blocked_by), in id order."""
    async with engine.connect() as conn:
        rows = await conn.execute(
            text(
                "SELECT ordering_value, id, blocked_by FROM integration_jobs "
                "WHERE integration_id = :i ORDER BY id"
            ),
            {"i": integration},
        )
        found: defaultdict[str, list[tuple[UUID, Any]]] = defaultdict(list)
        for value, job_id, blocked_by in rows:
            found[value].append((job_id, blocked_by))
        return found


async def test_a_worker_killed_with_a_keys_job_in_flight_leaves_the_next_waiting_for_it(
    fresh_db: str, engine: AsyncEngine, tmp_path: Path
) -> None:
    # The dead worker's lease lasts max(lease, 2 * timeout + 10 s) = 12 s.
    settings = SETTINGS | {"HUB_WEBHOOK_TIMEOUT": "1", "HUB_WORKER_LEASE_SECONDS": "2"}
    procs = Processes(fresh_db, tmp_path, settings)
    async with running_sink(Sink(delay=0.5)) as sink, api_on(fresh_db, engine) as api:
        await api.create_webhook(sink.url, ordering_key="data.id")
        try:
            doomed = procs.start_worker()
            await publish(api, [event("a", n) for n in range(3)])
            await eventually(lambda: sink.open_requests == 1, what="the first job in flight")

            async def leased() -> bool:
                async with engine.connect() as conn:
                    owner = (
                        await conn.execute(
                            text(
                                "SELECT lease_owner FROM integration_jobs "
                                "WHERE status = 'delivering'"
                            )
                        )
                    ).scalar_one_or_none()
                return owner is not None and owner.rsplit(":", 2)[-2] == str(doomed.pid)

            await eventually(leased)
            await procs.sigkill(doomed)
            killed_at = time.monotonic()
            procs.start_worker()
            await eventually(lambda: all_succeeded(engine, 3), timeout=40, what="all delivered")
        except BaseException:
            print(procs.output())
            raise
        finally:
            procs.kill_all()

    hits = sorted((h for h in sink.hits if h.data["id"] == "a"), key=lambda h: h.at)
    seen = [(h.data["n"], round(h.at - killed_at, 1)) for h in hits]
    print(f"\n[faults: ordered, worker killed] requests (n, s after the kill): {seen}")
    assert [n for n, _ in seen] == [0, 0, 1, 2], "the first again, then the others in order"
    assert seen[1][1] >= 9, "the first came back only once its lease had expired"
    assert overlapping(by_key(sink.answers)["a"][-3:]) == []
