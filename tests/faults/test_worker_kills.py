"""Fault: `hub worker` processes SIGKILLed again and again while thousands of events are
delivered. Every job ends succeeded, none is lost, and a delivery is repeated only for attempts
that were in flight in a killed process."""

from __future__ import annotations

import functools
import subprocess
import time
from collections.abc import AsyncIterator
from pathlib import Path
from uuid import UUID

import pytest
from sqlalchemy.ext.asyncio import AsyncEngine

from hub.store.engine import create_engine
from tests.support.processes import Processes, api_on
from tests.support.queue import job_rows, leased_by, log_rows, logs_per_job, status_counts
from tests.support.sinks import Sink, running_sink
from tests.support.waiting import eventually

EVENTS = 2500
KILLS = 4
CONCURRENCY = 32
#: A dead worker's leases expire after max(lease, 2 * timeout + 10 s) = 16 s. The timeout is
#: generous so that a slow answer under load is not a failed attempt (and a second request).
SETTINGS = {
    "HUB_WEBHOOK_TIMEOUT": "3",
    "HUB_WORKER_LEASE_SECONDS": "2",
    "HUB_WORKER_POLL_INTERVAL": "0.2",
    "HUB_RETRY_SCHEDULE": "0.2s,0.2s",
    "HUB_WORKER_CONCURRENCY": str(CONCURRENCY),
}


@pytest.fixture
async def engine(fresh_db: str) -> AsyncIterator[AsyncEngine]:
    engine = create_engine(fresh_db, pool_size=3)
    yield engine
    await engine.dispose()


async def test_sigkilling_workers_during_thousands_of_deliveries_loses_nothing(
    fresh_db: str, engine: AsyncEngine, tmp_path: Path
) -> None:
    procs = Processes(fresh_db, tmp_path, SETTINGS)
    started = time.monotonic()
    stranded: set[UUID] = set()
    open_at_kills: list[int] = []
    async with running_sink(Sink(delay=0.05)) as sink, api_on(fresh_db, engine) as api:
        await api.create_webhook(sink.url)
        try:
            workers: list[subprocess.Popen[bytes]] = [procs.start_worker(), procs.start_worker()]
            await api.publish(EVENTS)
            for kill in range(KILLS):
                target = (kill + 1) * EVENTS // (KILLS + 2)
                await eventually(
                    functools.partial(sink.received_at_least, target),
                    timeout=40,
                    what=f"{target} requests at the sink",
                )
                victim = workers[kill % 2]
                assert victim.poll() is None, procs.output()
                open_at_kills.append(sink.open_requests)
                await procs.sigkill(victim)
                # The victim's leases are frozen until they expire: these jobs are the only ones
                # whose attempt can be made twice.
                leased = (await job_rows(engine)).values()
                stranded |= {row.id for row in leased if leased_by(row, victim)}
                workers[kill % 2] = procs.start_worker()

            async def all_succeeded() -> bool:
                return (await status_counts(engine))["succeeded"] == EVENTS

            final_wait = await eventually(all_succeeded, timeout=60, what="every job succeeded")
            assert all(worker.poll() is None for worker in workers), procs.output()
        except BaseException:
            print(procs.output())
            raise
        finally:
            procs.kill_all()

    rows = await job_rows(engine)
    per_job = sink.per_job()
    duplicates = {job_id for job_id, count in per_job.items() if count > 1}
    print(
        f"\n[faults: worker kills] events={EVENTS} kills={KILLS} workers=2x{CONCURRENCY} "
        f"requests_open_at_kills={open_at_kills} stranded_leases={len(stranded)} "
        f"requests={len(sink.hits)} lost=0 duplicate_deliveries={len(duplicates)} "
        f"final_wait={final_wait:.1f}s total={time.monotonic() - started:.1f}s"
    )
    assert len(rows) == EVENTS
    assert {row.status for row in rows.values()} == {"succeeded"}
    assert set(per_job) == set(rows), "every job reached the sink, and nothing else did"
    assert all(row.attempts == 1 for row in rows.values()), "a killed attempt is not counted"
    assert logs_per_job(await log_rows(engine)) == dict.fromkeys(rows, 1)
    assert min(open_at_kills) > 0, "each kill landed while requests were in flight"
    assert duplicates <= stranded, "only attempts cut short by a kill are made again"
    assert all(count <= 1 + KILLS for count in per_job.values())
