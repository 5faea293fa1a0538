"""Fault: an endpoint that fails at random half of the time. Every job ends terminal (succeeded,
or failed once its attempts are spent), and each job has exactly one log per attempt, matching
the requests the endpoint saw."""

from __future__ import annotations

import time
from collections import Counter
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from sqlalchemy.ext.asyncio import AsyncEngine

from hub.store.engine import create_engine
from tests.support.processes import Processes, api_on
from tests.support.queue import job_rows, log_rows, status_counts
from tests.support.sinks import Sink, running_sink
from tests.support.waiting import eventually

EVENTS = 1000
SCHEDULE = "0.05s,0.05s,0.05s"  # four attempts: a job fails for good with odds 1/16
SETTINGS = {
    "HUB_WEBHOOK_TIMEOUT": "2",
    "HUB_WORKER_POLL_INTERVAL": "0.2",
    "HUB_RETRY_SCHEDULE": SCHEDULE,
    "HUB_WORKER_CONCURRENCY": "32",
}


@pytest.fixture
async def engine(fresh_db: str) -> AsyncIterator[AsyncEngine]:
    engine = create_engine(fresh_db, pool_size=3)
    yield engine
    await engine.dispose()


async def test_a_sink_failing_half_the_time_leaves_every_job_terminal_with_a_log_per_attempt(
    fresh_db: str, engine: AsyncEngine, tmp_path: Path
) -> None:
    procs = Processes(fresh_db, tmp_path, SETTINGS)
    started = time.monotonic()
    async with running_sink(Sink(fail_ratio=0.5)) as sink, api_on(fresh_db, engine) as api:
        await api.create_webhook(sink.url)
        try:
            procs.start_worker()
            procs.start_worker()
            await api.publish(EVENTS)

            async def all_terminal() -> bool:
                counts = await status_counts(engine)
                return counts["succeeded"] + counts["failed"] == EVENTS

            await eventually(all_terminal, timeout=60, what="every job terminal")
        except BaseException:
            print(procs.output())
            raise
        finally:
            procs.kill_all()

    rows = await job_rows(engine)
    logs = await log_rows(engine)
    by_job: dict[object, list[bool]] = {}
    for log in logs:
        by_job.setdefault(log.job_id, []).append(log.succeeded)
    statuses = Counter(row.status for row in rows.values())
    print(
        f"\n[faults: flaky sink] events={EVENTS} requests={len(sink.hits)} logs={len(logs)} "
        f"succeeded={statuses['succeeded']} failed={statuses['failed']} lost=0 "
        f"total={time.monotonic() - started:.1f}s"
    )
    assert len(rows) == EVENTS
    assert set(statuses) <= {"succeeded", "failed"}
    assert sink.per_job() == {job_id: row.attempts for job_id, row in rows.items()}
    for job_id, row in rows.items():
        outcomes = by_job[job_id]
        assert len(outcomes) == row.attempts, "one log per attempt"
        assert not any(outcomes[:-1]), "only the last attempt can have succeeded"
        if row.status == "succeeded":
            assert outcomes[-1] is True
        else:
            assert row.attempts == 4
            assert outcomes[-1] is False
    assert 0 < statuses["failed"] < EVENTS // 4, "about 1 in 16 runs out of attempts"
