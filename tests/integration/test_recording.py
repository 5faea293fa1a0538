"""Recording a batch of attempts (`hub.store.attempts.record_attempts`) on a real queue: logs, jobs,
the circuit breaker's clock, tripping and 410s, as one statement when nothing is disabled."""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any
from uuid import UUID, uuid4

import asyncpg
import pytest
from sqlalchemy.ext.asyncio import AsyncEngine

from hub.store import attempts, claiming, integrations, logs, pages
from hub.store.engine import create_engine, driver

OWNER = "test:1:recording"
LEASE = timedelta(seconds=30)
BREAKER = timedelta(minutes=10)


@dataclass
class Queue:
    engine: AsyncEngine
    store: UUID

    async def sql(self, statement: str, *args: Any) -> list[asyncpg.Record]:
        async with driver(self.engine) as db:
            rows: list[asyncpg.Record] = await db.fetch(statement, *args)
            return rows

    async def integration(self, *, failing_since: datetime | None = None) -> UUID:
        integration_id = uuid4()
        await self.sql(
            "INSERT INTO integrations (id, store_id, name, enabled, integration_type, observes,"
            " configuration, signing_secret, failing_since) VALUES ($1, $2, 'hook', true,"
            " 'webhook', ARRAY['order.created'], '{\"url\": \"https://example.com/\"}', 'whsec_x',"
            " $3)",
            integration_id,
            self.store,
            failing_since,
        )
        return integration_id

    async def jobs(self, integration_id: UUID, count: int) -> None:
        event_id = uuid4()
        await self.sql(
            "INSERT INTO events (id, store_id, triggered_by, payload) VALUES ($1, $2,"
            " 'order.created', '{}')",
            event_id,
            self.store,
        )
        await self.sql(
            "INSERT INTO integration_jobs (id, store_id, event_id, integration_id, triggered_by,"
            " status, attempts, next_attempt_at) SELECT gen_random_uuid(), $1, $2, $3,"
            " 'order.created', 'pending', 0, now() - interval '1 minute' + g * interval '1 ms'"
            " FROM generate_series(1, $4) AS g",
            self.store,
            event_id,
            integration_id,
            count,
        )

    async def claim(self, limit: int) -> list[claiming.ClaimedJob]:
        async with driver(self.engine) as db:
            return await claiming.claim(db, owner=OWNER, limit=limit, lease=LEASE)

    async def record(
        self, records: list[attempts.AttemptRecord], *, breaker_after: timedelta | None = BREAKER
    ) -> attempts.Recorded:
        async with driver(self.engine) as db:  # autocommit, as the worker records
            return await attempts.record_attempts(db, OWNER, records, breaker_after=breaker_after)

    async def integration_row(self, integration_id: UUID) -> asyncpg.Record:
        [row] = await self.sql(
            "SELECT enabled, disabled_reason, failing_since FROM integrations WHERE id = $1",
            integration_id,
        )
        return row

    async def statuses(self, integration_id: UUID) -> dict[str, int]:
        rows = await self.sql(
            "SELECT status, count(*) FROM integration_jobs WHERE integration_id = $1"
            " GROUP BY status",
            integration_id,
        )
        return {row[0]: row[1] for row in rows}


@pytest.fixture
async def q(fresh_db: str) -> AsyncIterator[Queue]:
    engine = create_engine(fresh_db, pool_size=2)
    try:
        async with driver(engine) as db:
            store = await db.fetchval(
                "INSERT INTO stores (id, name) VALUES ($1, 's') RETURNING id", uuid4()
            )
        yield Queue(engine, store)
    finally:
        await engine.dispose()


def outcome(
    job: claiming.ClaimedJob, status_code: int, *, status: str | None = None, **extra: Any
) -> attempts.AttemptRecord:
    succeeded = 200 <= status_code < 300
    values: dict[str, Any] = {
        "job_id": job.id,
        "store_id": job.store_id,
        "integration_id": job.integration_id,
        "attempt": job.attempt,
        "succeeded": succeeded,
        "processing_time": 0.01,
        "status_code": status_code,
        "body": "ok" if succeeded else "no",
        "error_detail": None if succeeded else "Received a status code outside of 2xx range",
        "status": status or ("succeeded" if succeeded else "pending"),
        "next_attempt_at": None if succeeded else datetime.now(UTC) + timedelta(minutes=1),
    }
    values.update(extra)
    return attempts.AttemptRecord(**values)


async def test_a_batch_writes_a_log_per_attempt_and_moves_each_job_on(q: Queue) -> None:
    integration = await q.integration()
    await q.jobs(integration, 3)
    ok, retried, lost = await q.claim(3)
    await q.sql("UPDATE integration_jobs SET lease_owner = 'someone-else' WHERE id = $1", lost.id)

    recorded = await q.record([outcome(ok, 200), outcome(retried, 503), outcome(lost, 200)])

    assert recorded.moved == {ok.id, retried.id}, "a job whose lease was lost is not moved"
    assert recorded.tripped == {}
    rows = {
        row["id"]: row
        for row in await q.sql(
            "SELECT id, status, attempts, last_error, completed_at, lease_owner,"
            " next_attempt_at > now() AS later FROM integration_jobs"
        )
    }
    assert rows[ok.id]["status"] == "succeeded"
    assert rows[ok.id]["completed_at"] is not None
    assert rows[ok.id]["lease_owner"] is None
    assert rows[ok.id]["last_error"] is None
    assert rows[retried.id]["status"] == "pending"
    assert rows[retried.id]["later"]
    assert rows[retried.id]["attempts"] == 1
    assert rows[retried.id]["completed_at"] is None
    assert rows[retried.id]["last_error"].startswith("Received a status code")
    assert rows[lost.id]["status"] == "delivering"
    logs = await q.sql("SELECT job_id, attempt, succeeded, status_code, body FROM integration_logs")
    assert sorted((r["job_id"], r["status_code"]) for r in logs) == sorted(
        [(ok.id, 200), (retried.id, 503), (lost.id, 200)]
    ), "every attempt that ran is logged, lease or not"


async def test_the_last_word_of_a_batch_moves_the_breakers_clock(q: Queue) -> None:
    long_ago = datetime.now(UTC) - timedelta(minutes=5)
    recovering = await q.integration(failing_since=long_ago)
    restarting = await q.integration(failing_since=long_ago)
    starting = await q.integration()
    slowed = await q.integration(failing_since=long_ago)
    for integration in (recovering, restarting, starting, slowed):
        await q.jobs(integration, 2)
    jobs = await q.claim(8)

    def of(integration: UUID) -> list[claiming.ClaimedJob]:
        return [job for job in jobs if job.integration_id == integration]

    await q.record(
        [
            outcome(of(recovering)[0], 500),
            outcome(of(recovering)[1], 200),
            outcome(of(restarting)[0], 200),
            outcome(of(restarting)[1], 500),
            outcome(of(starting)[0], 500),
            outcome(of(slowed)[0], 429),
        ]
    )

    assert (await q.integration_row(recovering))["failing_since"] is None
    restarted = await q.integration_row(restarting)
    assert restarted["failing_since"] > long_ago, "a success in the batch ended the old stretch"
    assert (await q.integration_row(starting))["failing_since"] is not None
    assert (await q.integration_row(slowed))["failing_since"] == long_ago, "a 429 moves nothing"


async def test_the_last_success_is_the_newest_successful_attempt_and_a_later_failure_keeps_it(
    q: Queue,
) -> None:
    integration = await q.integration()
    never = await q.integration()
    await q.jobs(integration, 4)
    await q.jobs(never, 1)
    first, second, third, fourth, doomed = sorted(
        await q.claim(5), key=lambda job: (job.integration_id == never, job.id)
    )
    assert doomed.integration_id == never

    async def last_success(integration_id: UUID) -> tuple[datetime | None, datetime | None]:
        """As the integration keeps it, and as the console's list and the API's status read it."""
        [row] = await q.sql(
            "SELECT last_success_at FROM integrations WHERE id = $1", integration_id
        )
        async with q.engine.connect() as conn:
            record = await integrations.get_integration(conn, q.store, integration_id)
            assert record is not None
            [listed] = await pages.statuses_of(conn, [record], window=timedelta(hours=1))
            status = await logs.integration_status(conn, record, window=timedelta(hours=1))
        assert listed.last_success_at == status.last_success_at == row["last_success_at"]
        return row["last_success_at"], listed.last_attempt_at

    async def newest_success_logged(integration_id: UUID) -> datetime:
        [row] = await q.sql(
            "SELECT max(created_at) FROM integration_logs WHERE integration_id = $1 AND succeeded",
            integration_id,
        )
        at: datetime = row[0]
        return at

    assert await last_success(integration) == (None, None)
    await q.record([outcome(first, 200)])
    succeeded_at, attempted_at = await last_success(integration)
    assert succeeded_at == attempted_at == await newest_success_logged(integration)

    await q.record([outcome(second, 503)])
    still, attempted_at = await last_success(integration)
    assert still == succeeded_at, "a later failure leaves the last success as it was"
    assert attempted_at is not None
    assert succeeded_at is not None
    assert attempted_at > succeeded_at

    await q.record([outcome(third, 200), outcome(fourth, 500), outcome(doomed, 500)])
    again, _ = await last_success(integration)
    assert again is not None
    assert again > succeeded_at, "a success earlier in a batch counts"
    assert again == await newest_success_logged(integration)
    assert (await last_success(never))[0] is None, "only successes set it"


async def test_a_failure_past_the_stretch_trips_the_integration_and_holds_its_retries(
    q: Queue,
) -> None:
    failing = await q.integration(failing_since=datetime.now(UTC) - 2 * BREAKER)
    await q.jobs(failing, 4)
    first, second, *_ = await q.claim(2)

    recorded = await q.record([outcome(first, 503), outcome(second, 503)])

    assert set(recorded.tripped) == {failing}
    assert "circuit breaker" in recorded.tripped[failing]
    row = await q.integration_row(failing)
    assert row["enabled"] is False
    assert row["disabled_reason"] == recorded.tripped[failing]
    assert await q.statuses(failing) == {"held": 4}, "its retries are held with the rest"


async def test_without_a_breaker_a_long_failing_integration_stays_enabled(q: Queue) -> None:
    failing = await q.integration(failing_since=datetime.now(UTC) - 2 * BREAKER)
    await q.jobs(failing, 1)
    [job] = await q.claim(1)

    recorded = await q.record([outcome(job, 503)], breaker_after=None)

    assert recorded.tripped == {}
    assert (await q.integration_row(failing))["enabled"] is True


async def test_a_410_disables_the_integration_and_cancels_its_waiting_jobs(q: Queue) -> None:
    gone = await q.integration(failing_since=datetime.now(UTC) - 2 * BREAKER)
    await q.jobs(gone, 3)
    [first, second] = await q.claim(2)

    recorded = await q.record(
        [
            outcome(first, 503),
            outcome(second, 410, status="failed", next_attempt_at=None, disable_reason="410 Gone"),
        ]
    )

    assert recorded.moved == {first.id, second.id}
    assert recorded.tripped == {}, "switched off for its 410, not by the breaker"
    row = await q.integration_row(gone)
    assert row["enabled"] is False
    assert row["disabled_reason"] == "410 Gone"
    assert row["failing_since"] > datetime.now(UTC) - BREAKER, "a failure last: the clock restarts"
    assert await q.statuses(gone) == {"failed": 1, "cancelled": 2}
