"""Several API and worker processes on one PostgreSQL behave as one hub: 10,000 events
published through two `hub serve --no-worker` processes and delivered by three `hub worker`
processes arrive once each; killing an API and a worker mid-run loses nothing and repeats only
attempts that were in flight; a rolling deploy (SIGTERM, restart) loses nothing and clients see
no 5xx; the registry shows the processes and forgets the stopped ones.

Each test has a database of its own, sets its tenant and webhook up through the API served in
the test process, publishes through the real API processes (`Publisher`, which fails over to the
other process when one does not answer) and watches a loopback sink that records every request.
"""

from __future__ import annotations

import asyncio
import json
import signal
import subprocess
import time
from collections import Counter
from collections.abc import AsyncIterator, Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from uuid import UUID

import aiohttp
import pytest
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncEngine

from hub.dispatch.worker import RECORD_BATCH
from hub.store.models import jobs, processes
from tests.support.processes import (
    HUB,
    Processes,
    Publisher,
    api_on,
    free_port,
    numbered_events,
    one_fleet_at_a_time,
)
from tests.support.queue import (
    job_rows,
    leased_by,
    log_rows,
    logs_per_job,
    queue_picture,
    status_counts,
)
from tests.support.sinks import Sink, running_sink
from tests.support.waiting import eventually

EVENTS = 10_000
BATCH = 100
#: Quick heartbeats, so that joins and departures show within a second.
FLEET = {
    "HUB_HEARTBEAT_INTERVAL": "0.5",
    "HUB_HEARTBEAT_STALE_AFTER": "2",
    "HUB_API_RATE_LIMIT": "0",
    "HUB_WORKER_POLL_INTERVAL": "0.2",
    # Room for a slow attempt on a loaded machine to be retried rather than fail the job.
    "HUB_RETRY_SCHEDULE": "0.2s,0.5s,1s,2s,5s",
}
#: Time enough for a busy machine (and a wait for another fleet), so that the tests' own waits,
#: which print the processes' output, fire before pytest-timeout's.
pytestmark = pytest.mark.timeout(480)


@pytest.fixture(autouse=True)
def _one_fleet_at_a_time() -> Iterator[None]:
    with one_fleet_at_a_time():
        yield


def batches(prefix: str, count: int, size: int = BATCH) -> list[list[dict[str, Any]]]:
    events = numbered_events(prefix, count)
    return [events[i : i + size] for i in range(0, count, size)]


async def registered(engine: AsyncEngine) -> Counter[str]:
    """The live rows of the process registry, by role."""
    async with engine.connect() as conn:
        rows = await conn.execute(select(processes.c.role))
        return Counter(row.role for row in rows)


async def last_seen_of(engine: AsyncEngine, process: subprocess.Popen[bytes]) -> datetime:
    """When the process's row was last written by its heartbeat."""
    async with engine.connect() as conn:
        found: datetime = (
            await conn.execute(
                select(processes.c.last_seen_at).where(
                    processes.c.pid == process.pid, processes.c.role == "worker"
                )
            )
        ).scalar_one()
    return found


async def all_succeeded(engine: AsyncEngine, total: int) -> bool:
    return (await status_counts(engine))["succeeded"] == total


async def lease_owners(engine: AsyncEngine) -> set[str]:
    """The owners of the leases held now."""
    async with engine.connect() as conn:
        rows = await conn.execute(
            select(jobs.c.lease_owner).where(jobs.c.lease_owner.is_not(None)).distinct()
        )
        return {row.lease_owner for row in rows}


async def hub_status(procs: Processes, *args: str) -> str:
    process = await asyncio.create_subprocess_exec(
        str(HUB),
        "status",
        *args,
        env=procs.env(),
        cwd=procs.log_dir,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    out, err = await asyncio.wait_for(process.communicate(), 60)
    assert process.returncode == 0, err.decode()
    return out.decode()


async def test_two_apis_and_three_workers_deliver_ten_thousand_events_once_each(
    fresh_db: str, engine: AsyncEngine, tmp_path: Path
) -> None:
    procs = Processes(fresh_db, tmp_path, FLEET)
    started = time.monotonic()
    async with running_sink(Sink()) as sink, api_on(fresh_db, engine) as api:
        await api.create_webhook(sink.url)
        try:
            fleet = await procs.start_fleet(apis=2, workers=3)
            publisher = Publisher(fleet.ports, api.tenant.keys["publish"])
            await eventually(
                lambda: _roles_are(engine, {"api": 2, "worker": 3}),
                timeout=20,
                what="2 API and 3 worker processes registered",
            )
            status_while_running = await hub_status(procs)
            owners: set[str] = set()

            async def done_watching_owners() -> bool:
                # Two small aggregates, not 10,000 rows a look: the sink shares this process.
                owners.update(await lease_owners(engine))
                # Settled: every job ended (a job that failed for good ends the wait too, and
                # shows in the status counts asserted below, rather than as a time-out).
                counts = await status_counts(engine)
                return counts.total() == EVENTS and not (counts["pending"] + counts["delivering"])

            publish_started = time.monotonic()
            await publisher.publish_all(batches("tenk", EVENTS), concurrency=4)
            published = time.monotonic() - publish_started
            assert len(publisher.accepted) == EVENTS, (publisher.statuses, publisher.refused)
            took = await eventually(
                done_watching_owners, timeout=300, what="every job succeeded", interval=0.2
            )
            assert all(p.poll() is None for p in [*fleet.apis, *fleet.workers]), procs.output()
        except BaseException:
            print(procs.output())
            print(await queue_picture(engine))
            raise
        finally:
            procs.kill_all()

    rows = await job_rows(engine)
    per_job = sink.per_job()
    duplicates = {job_id for job_id, count in per_job.items() if count > 1}
    pids = {owner.rsplit(":", 2)[-2] for owner in owners}
    print(
        f"\n[scale-out] events={EVENTS} apis=2 workers=3 publish={published:.1f}s "
        f"({EVENTS / published:.0f}/s) delivered_after_publish={took:.1f}s "
        f"requests={len(sink.hits)} duplicates={len(duplicates)} "
        f"total={time.monotonic() - started:.1f}s refused_then_retried={dict(publisher.refused)}"
    )
    assert publisher.statuses == Counter({202: EVENTS // BATCH}), publisher.statuses
    assert await status_counts(engine) == Counter({"succeeded": EVENTS}), procs.output()
    assert len(rows) == EVENTS
    assert set(per_job) == set(rows), "every job reached the sink, and nothing else did"
    assert duplicates == set(), "no delivery was made twice"
    assert logs_per_job(await log_rows(engine)) == dict.fromkeys(rows, 1)
    assert pids == {str(w.pid) for w in fleet.workers}, "all three workers took part"
    assert "processes: 5 live" in status_while_running, status_while_running
    assert status_while_running.count(" api ") == 2, status_while_running
    assert status_while_running.count(" worker ") == 3, status_while_running


async def _roles_are(engine: AsyncEngine, expected: dict[str, int]) -> bool:
    return dict(await registered(engine)) == expected


async def test_killing_an_api_and_a_worker_loses_nothing_and_repeats_only_attempts_in_flight(
    fresh_db: str, engine: AsyncEngine, tmp_path: Path
) -> None:
    concurrency = 32
    procs = Processes(
        fresh_db,
        tmp_path,
        FLEET
        | {
            "HUB_WEBHOOK_TIMEOUT": "3",
            "HUB_WORKER_LEASE_SECONDS": "2",
            "HUB_WORKER_CONCURRENCY": str(concurrency),
        },
    )
    # Slow enough that a kill finds requests in flight, fast enough for 10,000 events.
    async with running_sink(Sink(delay=0.05)) as sink, api_on(fresh_db, engine) as api:
        await api.create_webhook(sink.url)
        stranded: set[UUID] = set()
        try:
            fleet = await procs.start_fleet(apis=2, workers=3)
            apis, workers, ports = fleet.apis, fleet.workers, fleet.ports
            publisher = Publisher(ports, api.tenant.keys["publish"])
            # Paced (5 s at least), so that publishing still goes on when the API is killed.
            publishing = asyncio.create_task(
                publisher.publish_all(batches("kill", EVENTS), concurrency=2, pace=0.1)
            )
            victim_api, victim_worker = apis[0], workers[0]

            async def victim_busy() -> bool:
                if len(publisher.accepted) < 3_000:
                    return False
                rows = (await job_rows(engine)).values()
                return any(leased_by(row, victim_worker) for row in rows)

            await eventually(
                victim_busy, timeout=60, what="3,000 events accepted, the victim delivering"
            )
            assert not publishing.done(), "the kill lands while events are still published"
            open_at_kill = sink.open_requests
            victim_api.send_signal(signal.SIGKILL)
            await procs.sigkill(victim_worker)
            await procs.wait_exit(victim_api, 10)
            stranded = {
                row.id for row in (await job_rows(engine)).values() if leased_by(row, victim_worker)
            }
            # Both come back, the API on its port; publishing went on through the other meanwhile.
            apis[0] = procs.start_api(ports[0])
            workers[0] = procs.start_worker()
            await procs.wait_ready(apis[0], ports[0])
            await publishing
            assert len(publisher.accepted) == EVENTS, (publisher.statuses, publisher.refused)
            took = await eventually(
                lambda: all_succeeded(engine, EVENTS), timeout=300, what="every job succeeded"
            )
        except BaseException:
            print(procs.output())
            print(await queue_picture(engine))
            raise
        finally:
            procs.kill_all()

    rows = await job_rows(engine)
    per_job = sink.per_job()
    log_rows_ = await log_rows(engine)
    duplicates = {job_id for job_id, count in per_job.items() if count > 1}
    print(
        f"\n[scale-out kills] events={EVENTS} open_requests_at_kill={open_at_kill} "
        f"stranded_leases={len(stranded)} failovers={publisher.failovers} "
        f"requests={len(sink.hits)} duplicates={len(duplicates)} final_wait={took:.1f}s "
        f"refused_then_retried={dict(publisher.refused)}"
    )
    failed = Counter(log.error_detail for log in log_rows_ if not log.succeeded)
    print(f"failed attempts (retried): {dict(failed)}")
    assert len(publisher.accepted) == EVENTS, "every event was accepted by some process"
    assert set(publisher.statuses) <= {200, 202}, publisher.statuses
    assert publisher.failovers > 0, "the killed API's clients went to the other one"
    assert len(rows) == EVENTS, "every accepted event has its job: 0 lost"
    assert {row.status for row in rows.values()} == {"succeeded"}
    assert set(per_job) == set(rows)
    assert stranded, "the kill landed while the worker had attempts in flight"
    # Every attempt that reached the sink has exactly one log, so an attempt the sink saw twice
    # was made once without a log: its worker died before recording it. Those jobs were all
    # leased by the killed worker at the kill (their leases had to expire), and are the only
    # ones repeated. (Failed attempts, e.g. timeouts on a busy machine, are retried under a new
    # attempt number, with a log each: not repeats.)
    logged = Counter((log.job_id, log.attempt) for log in log_rows_)
    reached = Counter((hit.job_id, hit.attempt) for hit in sink.hits)
    assert set(reached) == set(logged), "each attempt that reached the sink is logged"
    assert set(logged.values()) == {1}, "one log per attempt"
    repeated = {job_id for (job_id, _), count in reached.items() if count > 1}
    assert repeated <= duplicates
    assert repeated <= stranded, "only attempts in flight in the killed worker are repeated"
    # A worker holds the leases of its attempts in flight and of those delivered but not yet
    # recorded, the latter counting against its slots beyond an allowance (`hub.dispatch.worker`).
    assert len(stranded) <= concurrency + max(concurrency, RECORD_BATCH)


async def test_a_rolling_deploy_loses_nothing_and_clients_see_no_5xx(
    fresh_db: str, engine: AsyncEngine, tmp_path: Path
) -> None:
    events = 3_000
    procs = Processes(fresh_db, tmp_path, FLEET)
    async with running_sink(Sink(delay=0.01)) as sink, api_on(fresh_db, engine) as api:
        await api.create_webhook(sink.url)
        try:
            fleet = await procs.start_fleet(apis=2, workers=2)
            apis, workers, ports = fleet.apis, fleet.workers, fleet.ports
            publisher = Publisher(ports, api.tenant.keys["publish"])
            await eventually(
                lambda: _roles_are(engine, {"api": 2, "worker": 2}),
                timeout=20,
                what="2 API and 2 worker processes registered",
            )
            publishing = asyncio.create_task(
                publisher.publish_all(batches("roll", events, size=25), concurrency=2, pace=0.05)
            )
            await eventually(lambda: sink.received_at_least(300), timeout=30, what="deliveries")

            # An upload in flight at the stop: its request is finished, not dropped.
            upload = SlowUpload()
            in_flight = asyncio.create_task(upload.post(ports[0], api.tenant.keys["publish"]))
            await eventually(upload.started.is_set, timeout=10, what="the upload begun")
            old_api, old_worker = apis[0], workers[0]
            old_api.terminate()
            old_worker.terminate()
            await eventually(
                lambda: port_refuses(ports[0]), timeout=10, what="the stopping API's port closed"
            )
            upload.finish.set()
            assert await in_flight == 202, "a request in flight when the stop began completed"
            assert await procs.wait_exit(old_api, 15) == 0, procs.output()
            assert await procs.wait_exit(old_worker, 25) == 0, procs.output()
            await eventually(
                lambda: _roles_are(engine, {"api": 1, "worker": 1}),
                timeout=10,
                what="the stopped processes left the registry",
            )
            # The next version takes their place: the port was given up cleanly.
            apis[0] = procs.start_api(ports[0])
            workers[0] = procs.start_worker()
            await procs.wait_ready(apis[0], ports[0])
            await publishing
            took = await eventually(
                lambda: all_succeeded(engine, events + 1), timeout=120, what="all delivered"
            )
        except BaseException:
            print(procs.output())
            print(await queue_picture(engine))
            raise
        finally:
            procs.kill_all()

    rows = await job_rows(engine)
    per_job = sink.per_job()
    duplicates = {job_id for job_id, count in per_job.items() if count > 1}
    print(
        f"\n[rolling deploy] events={events} failovers={publisher.failovers} "
        f"statuses={dict(publisher.statuses)} duplicates={len(duplicates)} final_wait={took:.1f}s"
    )
    assert len(publisher.accepted) == events
    assert set(publisher.statuses) == {202}, "clients saw no 5xx (nor anything but 202)"
    assert not publisher.refused, "nor a 503 to retry (the stopping API took no new requests)"
    assert len(rows) == events + 1, "every accepted event has its job"
    assert set(per_job) == set(rows)
    assert duplicates == set(), "a graceful stop finishes its attempts: nothing is repeated"


class SlowUpload:
    """One event POSTed with its body in two parts: the second once `finish` is set. It asks
    for `100 Continue` first, so the body starts only once the server handles the request."""

    def __init__(self) -> None:
        self.started = asyncio.Event()
        self.finish = asyncio.Event()

    async def chunks(self) -> AsyncIterator[bytes]:
        yield b'{"data": {"type": "event", "triggered_by": "order.created", "id": "slow-1", '
        self.started.set()
        await self.finish.wait()
        yield b'"payload": {"data": {"type": "order", "id": "slow"}}}}'

    async def post(self, port: int, key: str) -> int:
        async with (
            aiohttp.ClientSession() as session,
            session.post(
                f"http://127.0.0.1:{port}/v2/events",
                data=self.chunks(),
                headers={"Authorization": f"Bearer {key}", "Content-Type": "application/json"},
                expect100=True,
            ) as response,
        ):
            await response.read()
            return response.status


async def port_refuses(port: int) -> bool:
    try:
        _, writer = await asyncio.open_connection("127.0.0.1", port)
    except OSError:
        return True
    writer.close()
    return False


async def test_the_registry_forgets_a_killed_process_once_stale_and_a_stopped_one_at_once(
    fresh_db: str, engine: AsyncEngine, tmp_path: Path
) -> None:
    procs = Processes(fresh_db, tmp_path, FLEET)
    try:
        fleet = await procs.start_fleet(apis=1, workers=2)
        [port], (killed, stopped) = fleet.ports, fleet.workers
        await eventually(
            lambda: _roles_are(engine, {"api": 1, "worker": 2}), timeout=20, what="registered"
        )
        stopped.terminate()
        assert await procs.wait_exit(stopped, 20) == 0
        left_at = time.monotonic()
        await eventually(
            lambda: _roles_are(engine, {"api": 1, "worker": 1}), timeout=5, what="left at once"
        )
        gone_in = time.monotonic() - left_at
        await procs.sigkill(killed)
        last_seen = await last_seen_of(engine, killed)
        # Its row stays until it is stale (2 s), then the API's heartbeat deletes it.
        await eventually(
            lambda: _roles_are(engine, {"api": 1}), timeout=10, what="the killed worker dropped"
        )
        dropped_in = (datetime.now(UTC) - last_seen).total_seconds()
        text = await hub_status(procs)
        document = json.loads(await hub_status(procs, "--json"))["data"]
    except BaseException:
        print(procs.output())
        raise
    finally:
        procs.kill_all()
    print(f"\n[registry] stopped_gone_in={gone_in:.2f}s killed_dropped_after={dropped_in:.2f}s")
    assert gone_in < 2, "a stopping process deletes its own row"
    # Seen after its deletion: it was not deleted before it was stale (HUB_HEARTBEAT_STALE_AFTER).
    assert 2 <= dropped_in < 8, "a killed process drops out once stale, not before"
    assert "processes: 1 live" in text, text
    assert f"127.0.0.1:{port}" in text
    assert document["type"] == "hub-status"
    assert [(p["role"], p["address"]) for p in document["processes"]] == [
        ("api", f"127.0.0.1:{port}")
    ]
    assert document["queue"]["delivering"] == 0


async def test_two_processes_share_one_port_with_reuse_port(
    fresh_db: str, engine: AsyncEngine, tmp_path: Path
) -> None:
    procs = Processes(fresh_db, tmp_path, FLEET)
    port = free_port()
    try:
        first = procs.start_api(port, "--reuse-port")
        second = procs.start_api(port, "--reuse-port")
        await procs.wait_ready(first, port)
        await procs.wait_ready(second, port)
        await eventually(lambda: _roles_are(engine, {"api": 2}), timeout=20, what="both listen")
        first.terminate()
        assert await procs.wait_exit(first, 15) == 0
        async with aiohttp.ClientSession() as session:
            for _ in range(20):
                async with session.get(f"http://127.0.0.1:{port}/healthz") as response:
                    assert response.status == 200
        assert second.poll() is None
    except BaseException:
        print(procs.output())
        raise
    finally:
        procs.kill_all()
