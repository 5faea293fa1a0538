"""Durability of the queue with real `hub worker` processes: kills, restarts, competing workers
and expired leases lose no job, and repeat a delivery only where a worker died mid-attempt.

Each test has a database of its own, sets its data up through the API served in the test
process, and watches a loopback sink that records every request the workers make.
"""

from __future__ import annotations

import functools
import time
from datetime import timedelta
from pathlib import Path
from uuid import UUID

from sqlalchemy.ext.asyncio import AsyncEngine

from deliverers.webhook import NON_2XX_DETAIL
from hub.store import claiming
from hub.store.engine import driver
from tests.support.processes import Processes, api_on
from tests.support.queue import job_rows, leased_by, log_rows, logs_per_job, status_counts
from tests.support.sinks import Sink, running_sink
from tests.support.waiting import eventually

#: Short timeouts so that a dead worker's leases expire quickly (see `Worker._lease`).
FAST = {
    "HUB_WEBHOOK_TIMEOUT": "1",
    "HUB_WORKER_LEASE_SECONDS": "2",
    "HUB_WORKER_POLL_INTERVAL": "0.2",
    "HUB_RETRY_SCHEDULE": "0.2s,0.2s",
}


async def all_succeeded(engine: AsyncEngine, total: int) -> bool:
    return (await status_counts(engine))["succeeded"] == total


async def test_sigkilling_workers_mid_delivery_loses_no_job_and_repeats_only_stranded_ones(
    fresh_db: str, engine: AsyncEngine, tmp_path: Path
) -> None:
    events, kills, concurrency = 300, 2, 16
    procs = Processes(fresh_db, tmp_path, FAST | {"HUB_WORKER_CONCURRENCY": str(concurrency)})
    started = time.monotonic()
    async with running_sink(Sink(delay=0.3)) as sink, api_on(fresh_db, engine) as api:
        await api.create_webhook(sink.url)
        stranded: set[UUID] = set()
        open_at_kills: list[int] = []
        try:
            worker = procs.start_worker()
            await api.publish(events)
            for _ in range(kills):
                target = len(sink.hits) + 60
                await eventually(
                    functools.partial(sink.received_at_least, target),
                    timeout=20,
                    what=f"{target} requests at the sink",
                )
                assert worker.poll() is None, procs.output()
                open_at_kills.append(sink.open_requests)
                await procs.sigkill(worker)
                # The dead worker's leases are now frozen until they expire: these jobs are the
                # only ones whose attempt can be made twice.
                left = {r.id for r in (await job_rows(engine)).values() if leased_by(r, worker)}
                assert 0 < len(left) <= 2 * concurrency, left
                stranded |= left
                worker = procs.start_worker()
            took = await eventually(
                lambda: all_succeeded(engine, events), timeout=60, what="every job succeeded"
            )
        except BaseException:
            print(procs.output())
            raise
        finally:
            procs.kill_all()

    rows = await job_rows(engine)
    per_job = sink.per_job()
    per_job_logs = logs_per_job(await log_rows(engine))
    duplicates = {job_id for job_id, count in per_job.items() if count > 1}
    print(
        f"\n[durability] events={events} kills={kills} concurrency={concurrency} "
        f"requests_open_at_kills={open_at_kills} stranded_leases={len(stranded)} "
        f"requests={len(sink.hits)} duplicates={len(duplicates)} "
        f"final_wait={took:.1f}s total={time.monotonic() - started:.1f}s"
    )
    assert len(rows) == events
    assert {row.status for row in rows.values()} == {"succeeded"}
    assert set(per_job) == set(rows), "every job reached the sink, and nothing else did"
    assert all(row.attempts == 1 for row in rows.values()), "a killed attempt is not counted"
    assert all(per_job_logs[job_id] == row.attempts for job_id, row in rows.items())
    assert {hit.attempt for hit in sink.hits} == {1}
    assert all(count <= 1 + kills for count in per_job.values())
    assert min(open_at_kills) > 0, "each kill landed while requests were in flight"
    assert duplicates <= stranded, "only attempts cut short by a kill are made again"
    assert len(duplicates) <= kills * concurrency * 2


async def test_a_restart_resumes_the_retries_a_stopped_worker_scheduled(
    fresh_db: str, engine: AsyncEngine, tmp_path: Path
) -> None:
    events = 40
    procs = Processes(fresh_db, tmp_path, FAST | {"HUB_RETRY_SCHEDULE": "1s"})

    async def first_attempts_failed() -> bool:
        rows = (await job_rows(engine)).values()
        return len(rows) == events and all(r.status == "pending" and r.attempts == 1 for r in rows)

    async with running_sink(Sink(fail_first_attempt=True)) as sink, api_on(fresh_db, engine) as api:
        await api.create_webhook(sink.url)
        try:
            worker = procs.start_worker()
            await api.publish(events)
            await eventually(
                first_attempts_failed,
                timeout=20,
                what="a retry scheduled for every job",
                interval=0.02,
            )
            worker.terminate()
            stopping = time.monotonic()
            code = await procs.wait_exit(worker, 20)
            stop_took = time.monotonic() - stopping
            assert code == 0, procs.output()
            assert await first_attempts_failed(), "stopping made or lost no attempt"
            assert len(sink.hits) == events

            procs.start_worker()
            took = await eventually(
                lambda: all_succeeded(engine, events), timeout=30, what="every job succeeded"
            )
        except BaseException:
            print(procs.output())
            raise
        finally:
            procs.kill_all()

    print(f"\n[restart] events={events} sigterm_exit={stop_took:.2f}s resumed_in={took:.1f}s")
    rows = await job_rows(engine)
    assert all(row.status == "succeeded" and row.attempts == 2 for row in rows.values())
    logs = await log_rows(engine)
    assert logs_per_job(logs) == dict.fromkeys(rows, 2)
    for log in logs:
        if log.attempt == 1:
            assert (log.succeeded, log.status_code, log.error_detail) == (
                False,
                500,
                NON_2XX_DETAIL,
            )
        else:
            assert (log.attempt, log.succeeded, log.status_code, log.error_detail) == (
                2,
                True,
                200,
                None,
            )
    assert sink.per_job() == dict.fromkeys(rows, 2)
    assert sorted(hit.attempt for hit in sink.hits) == [1] * events + [2] * events


async def test_two_workers_on_one_database_deliver_every_job_exactly_once(
    fresh_db: str, engine: AsyncEngine, tmp_path: Path
) -> None:
    events = 500
    procs = Processes(fresh_db, tmp_path, FAST | {"HUB_WORKER_CONCURRENCY": "8"})
    owners: set[str] = set()

    async def done_watching_owners() -> bool:
        rows = (await job_rows(engine)).values()
        owners.update(r.lease_owner for r in rows if r.lease_owner is not None)
        return sum(r.status == "succeeded" for r in rows) == events

    async with running_sink(Sink(delay=0.05)) as sink, api_on(fresh_db, engine) as api:
        await api.create_webhook(sink.url)
        await api.publish(events)
        try:
            first, second = procs.start_worker(), procs.start_worker()
            took = await eventually(
                done_watching_owners, timeout=40, what="every job succeeded", interval=0.02
            )
            assert first.poll() is None, procs.output()
            assert second.poll() is None, procs.output()
        except BaseException:
            print(procs.output())
            raise
        finally:
            procs.kill_all()

    pids = {owner.rsplit(":", 2)[-2] for owner in owners}
    print(f"\n[two workers] events={events} took={took:.1f}s lease_owners_seen={len(owners)}")
    assert pids == {str(first.pid), str(second.pid)}, "both workers took part"
    rows = await job_rows(engine)
    assert len(rows) == events
    assert all(row.status == "succeeded" and row.attempts == 1 for row in rows.values())
    assert sink.per_job() == dict.fromkeys(rows, 1)
    assert logs_per_job(await log_rows(engine)) == dict.fromkeys(rows, 1)


async def test_a_job_whose_lease_expired_is_claimed_again_and_delivered(
    fresh_db: str, engine: AsyncEngine, tmp_path: Path
) -> None:
    procs = Processes(fresh_db, tmp_path, FAST)
    async with running_sink(Sink()) as sink, api_on(fresh_db, engine) as api:
        await api.create_webhook(sink.url)
        await api.publish(3)
        claimed_at = time.monotonic()
        async with driver(engine, transaction=True) as db:
            # A worker that claims a job and vanishes without a trace.
            [abandoned] = await claiming.claim(
                db, owner="gone-host:1:deadbeef", limit=1, lease=timedelta(seconds=0.5)
            )
        assert abandoned.attempt == 1
        try:
            procs.start_worker()
            await eventually(
                lambda: all_succeeded(engine, 3), timeout=20, what="every job succeeded"
            )
        except BaseException:
            print(procs.output())
            raise
        finally:
            procs.kill_all()

    assert "stalled_jobs_released" in procs.output()
    [hit] = [hit for hit in sink.hits if hit.job_id == abandoned.id]
    assert hit.attempt == 1
    assert hit.at - claimed_at >= 0.5, "not delivered before the lease expired"
    rows = await job_rows(engine)
    assert rows[abandoned.id].attempts == 1
    assert rows[abandoned.id].lease_owner is None
    logs = [log for log in await log_rows(engine) if log.job_id == abandoned.id]
    assert [(log.attempt, log.succeeded) for log in logs] == [(1, True)]
    assert sink.per_job() == dict.fromkeys(rows, 1)
