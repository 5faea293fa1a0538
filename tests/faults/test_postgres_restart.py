"""Fault: PostgreSQL restarts twice while events are published and delivered. Meanwhile the API
answers 503 (never 500), the `hub worker` process backs off and resumes by itself, and every
event the API accepted with 202 is delivered.

The server is one of the test's own (see `embedded_pg`), never the shared one.
"""

from __future__ import annotations

import asyncio
import functools
import time
from collections import Counter
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from uuid import UUID

import pytest
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine

from hub.store.engine import create_engine, migrate
from tests.conftest import event_body
from tests.faults.embedded_pg import EmbeddedPostgres, embedded_postgres
from tests.support.processes import Api, Processes, api_on
from tests.support.sinks import Sink, running_sink
from tests.support.waiting import eventually

RESTARTS = 2
DOWN_FOR = 2.0
EVENTS_BETWEEN = 250
SETTINGS = {
    "HUB_WEBHOOK_TIMEOUT": "2",
    "HUB_WORKER_POLL_INTERVAL": "0.2",
    "HUB_RETRY_SCHEDULE": "0.2s,0.5s",
    "HUB_WORKER_CONCURRENCY": "16",
}


@pytest.fixture
async def postgres() -> AsyncIterator[EmbeddedPostgres]:
    with embedded_postgres() as server:
        yield server


@pytest.fixture
async def engine(postgres: EmbeddedPostgres) -> AsyncIterator[AsyncEngine]:
    engine = create_engine(postgres.url, pool_size=5)
    await migrate(engine)
    yield engine
    await engine.dispose()


@dataclass
class Publisher:
    """Publishes batches of 10 events in a loop, keeping what each answer said."""

    api: Api
    accepted: set[UUID] = field(default_factory=set)
    statuses: Counter[int] = field(default_factory=Counter)
    unexpected: list[str] = field(default_factory=list)
    stop: asyncio.Event = field(default_factory=asyncio.Event)

    def accepted_at_least(self, count: int) -> bool:
        return len(self.accepted) >= count

    async def run(self) -> None:
        while not self.stop.is_set():
            batch = {"data": [event_body()["data"] for _ in range(10)]}
            response = await self.api.client.post(
                "/v2/events", json=batch, headers=self.api.tenant.auth("publish")
            )
            self.statuses[response.status] += 1
            document: Any = await response.json()
            if response.status == 202:
                self.accepted |= {UUID(event["id"]) for event in document["data"]}
            elif response.status == 503:
                assert document["errors"][0]["status"] == 503
                assert response.headers["Retry-After"] == "1"
                await asyncio.sleep(0.05)
            else:
                self.unexpected.append(f"{response.status}: {document}")
            await asyncio.sleep(0.01)


async def test_postgres_restarting_mid_run_answers_503_and_loses_no_accepted_event(
    postgres: EmbeddedPostgres, engine: AsyncEngine, tmp_path: Path
) -> None:
    started = time.monotonic()
    procs = Processes(postgres.url, tmp_path, SETTINGS)
    ready_while_down: list[int] = []
    async with running_sink(Sink(delay=0.01)) as sink, api_on(postgres.url, engine) as api:
        await api.create_webhook(sink.url)
        publisher = Publisher(api)
        try:
            worker = procs.start_worker()
            publishing = asyncio.create_task(publisher.run())
            # The worker is up and delivering before the first restart (one that starts while
            # the database is down refuses to start: its supervisor restarts it).
            await eventually(
                lambda: sink.received_at_least(20), timeout=30, what="deliveries under way"
            )
            for restart in range(RESTARTS):
                target = (restart + 1) * EVENTS_BETWEEN
                await eventually(
                    functools.partial(publisher.accepted_at_least, target),
                    timeout=30,
                    what=f"{target} events accepted",
                )
                await postgres.stop()
                await asyncio.sleep(DOWN_FOR / 2)
                ready_while_down.append((await api.client.get("/readyz")).status)
                await asyncio.sleep(DOWN_FOR / 2)
                await postgres.start()
            final = (RESTARTS + 1) * EVENTS_BETWEEN
            await eventually(
                lambda: len(publisher.accepted) >= final, timeout=30, what=f"{final} accepted"
            )
            publisher.stop.set()
            await publishing

            async def all_delivered() -> bool:
                async with engine.connect() as conn:
                    delivered = (
                        await conn.execute(
                            text(
                                "SELECT count(*) FROM integration_jobs "
                                "WHERE status = 'succeeded' AND event_id = ANY(:ids)"
                            ),
                            {"ids": list(publisher.accepted)},
                        )
                    ).scalar_one()
                return bool(delivered == len(publisher.accepted))

            await eventually(all_delivered, timeout=60, what="every accepted event delivered")
            assert worker.poll() is None, "the worker rode out the restarts\n" + procs.output()
        except BaseException:
            print(procs.output())
            raise
        finally:
            publisher.stop.set()
            procs.kill_all()

    async with engine.connect() as conn:
        rows = (
            await conn.execute(
                text(
                    "SELECT j.id, j.event_id, j.status, j.attempts, "
                    "(SELECT count(*) FROM integration_logs AS l WHERE l.job_id = j.id) AS logs "
                    "FROM integration_jobs AS j"
                )
            )
        ).all()
    per_job = sink.per_job()
    duplicates = sum(1 for count in per_job.values() if count > 1)
    jobs_of_accepted = {row.id for row in rows if row.event_id in publisher.accepted}
    print(
        f"\n[faults: postgres restarts] events_accepted={len(publisher.accepted)} "
        f"restarts={RESTARTS} answers={dict(publisher.statuses)} lost=0 "
        f"duplicate_deliveries={duplicates} total={time.monotonic() - started:.1f}s"
    )
    assert publisher.unexpected == [], "only 202 or 503, never a 500"
    assert publisher.statuses[503] > 0, "the API noticed the database was down"
    assert ready_while_down == [503] * RESTARTS
    assert len(jobs_of_accepted) == len(publisher.accepted), "one job per accepted event"
    assert jobs_of_accepted <= set(per_job), "every accepted event reached the sink"
    assert all(row.status == "succeeded" for row in rows)
    assert all(row.logs == row.attempts for row in rows), "one log per attempt"
