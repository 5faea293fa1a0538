"""Retention: logs and finished jobs older than `HUB_RETENTION_DAYS` are purged in bounded
batches, unfinished jobs never; and the statements that purge, claim and list stay on their
indexes on tables of many rows (proven with EXPLAIN)."""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncConnection

from hub.store import claiming, retention
from tests.conftest import event_body, settings_for, webhook_integration
from tests.support.sinks import ScriptedDeliverer
from tests.support.stack import Stack, hub_stack
from tests.support.waiting import eventually

OLD = "now() - interval '40 days'"


@pytest.fixture
def deliverer() -> ScriptedDeliverer:
    return ScriptedDeliverer()


@pytest.fixture
async def stack(fresh_db: str, deliverer: ScriptedDeliverer) -> AsyncIterator[Stack]:
    settings = settings_for(
        fresh_db,
        retention_days=0.00002,  # 1.7 s
        retention_interval=0.2,
        worker_grace_seconds=1,
    )
    async with hub_stack(fresh_db, settings, [deliverer]) as stack:
        yield stack


async def sql(stack: Stack, statement: str, **params: Any) -> None:
    async with stack.engine.begin() as conn:
        await conn.execute(text(statement), params)


async def ids(stack: Stack, statement: str) -> list[str]:
    async with stack.engine.connect() as conn:
        return [str(row[0]) for row in await conn.execute(text(statement))]


async def purge(stack: Stack, batch: int = retention.BATCH) -> retention.Purged:
    async with stack.engine.begin() as conn:
        return await retention.purge(
            conn, before=datetime.now(UTC) - timedelta(days=30), batch=batch
        )


async def aged_jobs(stack: Stack, count: int) -> list[str]:
    """`count` jobs (one event each), all created 40 days ago, oldest first."""
    await stack.create_integration(webhook_integration())
    await stack.publish({"data": [event_body()["data"] for _ in range(count)]})
    await sql(stack, f"UPDATE events SET created_at = {OLD}")
    await sql(stack, f"UPDATE integration_jobs SET created_at = {OLD}")
    return await ids(stack, "SELECT id FROM integration_jobs ORDER BY id")


async def finish(stack: Stack, job_id: str, status: str, *, when: str = OLD) -> None:
    await sql(
        stack,
        f"UPDATE integration_jobs SET status = :status, completed_at = {when}, attempts = 1 "
        "WHERE id = :id",
        status=status,
        id=job_id,
    )


async def add_log(stack: Stack, job_id: str, *, when: str = OLD) -> None:
    await sql(
        stack,
        "INSERT INTO integration_logs (id, store_id, integration_id, job_id, attempt, "
        "succeeded, processing_time, created_at) SELECT gen_random_uuid(), store_id, "
        f"integration_id, id, 1, false, 0.1, {when} FROM integration_jobs WHERE id = :id",
        id=job_id,
    )


async def test_old_finished_jobs_and_their_logs_go_and_unfinished_ones_stay_however_old(
    stack: Stack,
) -> None:
    jobs = await aged_jobs(stack, 8)
    succeeded, failed, cancelled, recent, pending, held, delivering, retried = jobs
    for job_id, status in ((succeeded, "succeeded"), (failed, "failed"), (cancelled, "cancelled")):
        await finish(stack, job_id, status)
        await add_log(stack, job_id)
    await finish(stack, recent, "succeeded", when="now() - interval '1 day'")
    await add_log(stack, recent)  # an old attempt of a job that finished recently
    await add_log(stack, recent, when="now() - interval '1 day'")
    await sql(stack, "UPDATE integration_jobs SET status = 'held' WHERE id = :id", id=held)
    await sql(
        stack,
        "UPDATE integration_jobs SET status = 'delivering', lease_owner = 'w', "
        "lease_expires_at = now() + interval '1 hour' WHERE id = :id",
        id=delivering,
    )
    for job_id in (pending, held, delivering):
        await add_log(stack, job_id)
    await finish(stack, retried, "succeeded", when="now() - interval '1 day'")
    await sql(
        stack, "UPDATE integration_jobs SET retry_of = :old WHERE id = :id", old=failed, id=retried
    )
    # An old event that matched no integration, and an old replay whose jobs are gone.
    await stack.publish(event_body("customer.created"))
    await sql(
        stack, f"UPDATE events SET created_at = {OLD} WHERE triggered_by = 'customer.created'"
    )
    await sql(
        stack,
        "INSERT INTO replays (id, store_id, integration_id, since, until, statuses, total, "
        f"created_at) SELECT gen_random_uuid(), store_id, integration_id, {OLD}, {OLD}, "
        "'{failed}', 0, " + OLD + " FROM integration_jobs LIMIT 1",
    )

    purged = await purge(stack)

    assert (purged.logs, purged.jobs, purged.events, purged.replays) == (3, 3, 4, 1)
    assert not purged.full
    left = set(await ids(stack, "SELECT id FROM integration_jobs"))
    assert left == {recent, pending, held, delivering, retried}
    # A job that is kept keeps all its logs, however old.
    assert sorted(await ids(stack, "SELECT job_id FROM integration_logs")) == sorted(
        [recent, recent, pending, held, delivering]
    )
    assert await ids(
        stack, "SELECT retry_of FROM integration_jobs WHERE id = '" + retried + "'"
    ) == ["None"]
    assert await stack.scalar("SELECT count(*) FROM events") == 5, "those jobs still point at"
    assert await purge(stack) == retention.Purged()


async def test_each_statement_deletes_at_most_a_batch(stack: Stack) -> None:
    jobs = await aged_jobs(stack, 7)
    for job_id in jobs:
        await finish(stack, job_id, "succeeded")

    passes = [await purge(stack, batch=3) for _ in range(4)]

    assert [p.jobs for p in passes] == [3, 3, 1, 0]
    assert [p.events for p in passes] == [3, 3, 1, 0]
    assert [p.full for p in passes] == [True, True, False, False]


async def test_only_one_worker_purges_at_a_time(stack: Stack) -> None:
    await aged_jobs(stack, 1)
    async with stack.engine.begin() as holder:
        await holder.execute(
            text("SELECT pg_advisory_xact_lock(:id)"), {"id": retention.RETENTION_LOCK_ID}
        )
        assert (await purge(stack)).skipped


async def test_the_worker_purges_in_the_background(
    stack: Stack, deliverer: ScriptedDeliverer
) -> None:
    await stack.create_integration(webhook_integration())
    await stack.publish({"data": [event_body()["data"] for _ in range(5)]})
    waiting = await stack.create_integration(webhook_integration(observes=["order.paid"]))
    await stack.publish(event_body("order.paid"))
    await sql(
        stack,
        "UPDATE integration_jobs SET next_attempt_at = now() + interval '1 day' "
        "WHERE integration_id = :id",
        id=waiting,
    )
    worker = stack.start_worker()

    async def purged() -> bool:
        return bool(await stack.scalar("SELECT count(*) FROM integration_jobs") == 1)

    await eventually(purged)
    assert await stack.scalar("SELECT count(*) FROM integration_logs") == 0
    assert await stack.scalar("SELECT count(*) FROM events") == 1
    assert await stack.scalar("SELECT status FROM integration_jobs") == "pending"
    assert worker.purged_rows >= 15
    assert len(deliverer.calls) == 5


# --- indexes -----------------------------------------------------------------------------------

ROWS = 30_000


async def bulk(conn: AsyncConnection) -> dict[str, str]:
    """`ROWS` events, jobs and logs over 29 days, plus 1 % older than 40 days; a few pending
    and retries due. Returns ids to query with."""
    store = (await conn.execute(text("SELECT gen_random_uuid()"))).scalar_one()
    integration = (await conn.execute(text("SELECT gen_random_uuid()"))).scalar_one()
    await conn.execute(text("INSERT INTO stores (id, name) VALUES (:id, 'bulk')"), {"id": store})
    await conn.execute(
        text(
            "INSERT INTO integrations (id, store_id, name, enabled, integration_type, observes, "
            "configuration, signing_secret) VALUES (:id, :store, 'bulk', true, 'webhook', "
            "'{order.created}', '{}', 'whsec_x')"
        ),
        {"id": integration, "store": store},
    )
    await conn.execute(
        text(
            """
            INSERT INTO events (id, store_id, triggered_by, payload, created_at)
            SELECT gen_random_uuid(), :store, 'order.created', '{}',
                   CASE WHEN g % 100 = 0 THEN now() - interval '40 days'
                        ELSE now() - (g % 29) * interval '1 day' - g * interval '1 ms' END
            FROM generate_series(1, :rows) AS g
            """
        ),
        {"store": store, "rows": ROWS},
    )
    await conn.execute(
        text(
            """
            INSERT INTO integration_jobs (id, store_id, event_id, integration_id, triggered_by,
                status, attempts, next_attempt_at, created_at, updated_at, completed_at)
            SELECT gen_random_uuid(), store_id, id, :integration, triggered_by,
                   CASE WHEN n % 500 = 0 THEN 'pending' ELSE 'succeeded' END,
                   CASE WHEN n % 1000 = 0 THEN 1 WHEN n % 500 = 0 THEN 0 ELSE 1 END,
                   CASE WHEN n % 500 = 0 THEN now() END,
                   created_at, created_at,
                   CASE WHEN n % 500 = 0 THEN NULL ELSE created_at END
            FROM (SELECT *, row_number() OVER () AS n FROM events) AS e
            """
        ),
        {"integration": integration},
    )
    await conn.execute(
        text(
            """
            INSERT INTO integration_logs (id, store_id, integration_id, job_id, attempt,
                succeeded, processing_time, created_at)
            SELECT gen_random_uuid(), store_id, integration_id, id, 1, true, 0.05, created_at
            FROM integration_jobs
            """
        )
    )
    await conn.execute(text("ANALYZE"))
    job = (await conn.execute(text("SELECT id FROM integration_jobs LIMIT 1"))).scalar_one()
    return {"store": str(store), "integration": str(integration), "job": str(job)}


async def explain(conn: AsyncConnection, statement: Any, params: dict[str, Any]) -> str:
    compiled = statement.compile(dialect=conn.dialect)
    values = compiled.construct_params(params)
    positional = tuple(values[name] for name in compiled.positiontup or ())
    result = await conn.exec_driver_sql(f"EXPLAIN {compiled}", positional)
    return "\n".join(str(row[0]) for row in result)


def on_indexes(plan: str, *indexes: str) -> None:
    for index in indexes:
        assert index in plan, f"{index} not used:\n{plan[:3000]}"
    for table in ("integration_logs", "integration_jobs", "events"):
        assert f"Seq Scan on {table}" not in plan, plan[:3000]


async def test_purging_claiming_and_listing_stay_on_their_indexes_at_scale(fresh_db: str) -> None:
    from hub.store.engine import create_engine

    engine = create_engine(fresh_db, pool_size=1)
    try:
        async with engine.begin() as conn:
            ids_ = await bulk(conn)
            before = {"before": datetime.now(UTC) - timedelta(days=30), "batch": 1000}
            # A batch is a sliver of a big table; here 50 of 30,000 rows stand for 1,000 of
            # millions (with 1,000 of these 30,000 a scan of the table is rightly cheaper).
            some = [
                row[0]
                for row in await conn.execute(text("SELECT id FROM integration_jobs LIMIT 50"))
            ]
            plans = {
                "pick": await explain(conn, retention.PICK_JOBS, before),
                "logs": await explain(conn, retention.PURGE_LOGS, {"ids": some}),
                "jobs": await explain(conn, retention.PURGE_JOBS, {"ids": some}),
                "events": await explain(conn, retention.PURGE_EVENTS, before),
                "claim": await explain(
                    conn,
                    claiming.claim_statement(owner="w", limit=100, lease=timedelta(seconds=60)),
                    {},
                ),
                # What deleting a job makes PostgreSQL do to the rows that refer to it.
                "retry_of": await explain(
                    conn,
                    text("UPDATE integration_jobs SET retry_of = NULL WHERE retry_of = :id"),
                    {"id": ids_["job"]},
                ),
                "job_logs": await explain(
                    conn,
                    text("DELETE FROM integration_logs WHERE job_id = :id"),
                    {"id": ids_["job"]},
                ),
            }
            logs_of_integration = await explain(
                conn,
                text(
                    "SELECT * FROM integration_logs WHERE store_id = :store AND "
                    "integration_id = :integration ORDER BY created_at DESC, id DESC LIMIT 25"
                ),
                {"store": ids_["store"], "integration": ids_["integration"]},
            )
            await conn.rollback()
    finally:
        await engine.dispose()

    on_indexes(plans["pick"], "ix_integration_jobs_finished")
    on_indexes(plans["logs"], "ix_integration_logs_job_attempt")
    on_indexes(plans["jobs"], "pk_integration_jobs")
    on_indexes(plans["events"], "ix_events_created", "ix_integration_jobs_event")
    on_indexes(plans["claim"], "ix_integration_jobs_due_first", "ix_integration_jobs_due_retry")
    on_indexes(plans["retry_of"], "ix_integration_jobs_retry_of")
    on_indexes(plans["job_logs"], "ix_integration_logs_job_attempt")
    # (this data has one integration per store: either of the two indexes serves the page)
    on_indexes(logs_of_integration, "Index Scan using ix_integration_logs_")
