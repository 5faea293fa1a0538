"""The process registry's heartbeat and the deployment's status: `GET /v2/status` counts the
queue by lane, the lag and the last minute's deliveries; `/metrics` serves the same as gauges
without a query per scrape; every figure stays on an index on a large table (EXPLAIN)."""

from __future__ import annotations

import re
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from aiohttp.test_utils import TestClient, TestServer
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from hub.services.processes import Heartbeat, Identity
from hub.store import processes
from hub.store.engine import create_engine
from hub.web import create_app
from tests.conftest import Tenant, make_tenant, settings_for

Client = TestClient[Any, Any]


@pytest.fixture
async def engine(fresh_db: str) -> AsyncIterator[AsyncEngine]:
    engine = create_engine(fresh_db, pool_size=3)
    yield engine
    await engine.dispose()


@pytest.fixture
async def client(fresh_db: str, engine: AsyncEngine) -> AsyncIterator[Client]:
    settings = settings_for(fresh_db, heartbeat_interval=60, heartbeat_stale_after=120)
    async with TestClient(TestServer(create_app(settings, engine), host="127.0.0.1")) as c:
        yield c


def heartbeat(engine: AsyncEngine, role: str, **kwargs: Any) -> Heartbeat:
    return Heartbeat(engine, Identity.of(role), interval=0.5, stale_after=2, **kwargs)


async def sql(engine: AsyncEngine, statement: str, **params: Any) -> None:
    async with engine.begin() as conn:
        await conn.execute(text(statement), params)


# --- the heartbeat ----------------------------------------------------------------------------


async def test_a_heartbeat_registers_counts_the_api_processes_and_leaves(
    engine: AsyncEngine,
) -> None:
    seen: list[int] = []
    api = heartbeat(engine, "api", on_beat=lambda beat: seen.append(beat.api_processes))
    both = heartbeat(engine, "api+worker", in_flight=lambda: 7)
    worker = heartbeat(engine, "worker")

    await api.beat()
    await both.beat()
    await worker.beat()
    await api.beat()
    async with engine.connect() as conn:
        live = await processes.live_processes(conn, stale_after=timedelta(seconds=2))

    assert seen == [1, 2], "the first beat counts itself, the next sees the other API"
    assert sorted(p.role for p in live) == ["api", "api+worker", "worker"]
    mine = next(p for p in live if p.id == both.identity.id)
    assert (mine.jobs_in_flight, mine.pid, mine.version) == (7, both.identity.pid, "0.1.0")
    await both.leave()
    beat = await api.beat()
    assert beat is not None
    assert (beat.api_processes, beat.worker_processes) == (1, 1)


async def test_a_heartbeat_deletes_the_rows_of_processes_gone_silent(engine: AsyncEngine) -> None:
    await sql(
        engine,
        "INSERT INTO hub_processes (id, role, host, pid, version, last_seen_at) "
        "VALUES ('dead:1:x', 'api', 'dead', 1, '0.1.0', now() - interval '10 seconds')",
    )
    api = heartbeat(engine, "api")

    beat = await api.beat()

    assert beat is not None
    assert (beat.api_processes, beat.removed) == (1, 1)


async def test_a_heartbeat_that_cannot_reach_the_database_reports_nothing_and_goes_on(
    fresh_db: str,
) -> None:
    engine = create_engine(fresh_db.rsplit("/", 1)[0] + "/no_such_database", pool_size=1)
    try:
        beat = await heartbeat(engine, "api").beat()
    finally:
        await engine.dispose()
    assert beat is None


# --- the status --------------------------------------------------------------------------------


async def seed_queue(engine: AsyncEngine, tenant: Tenant) -> None:
    """In the tenant's store: 3 first attempts due and 1 scheduled, 2 retries due (the oldest
    due for 90 s) and 4 scheduled, 5 delivering, 6 held, 7 succeeded; 8 attempts logged in the
    last minute (3 failed) and 9 older ones."""
    await sql(
        engine,
        """
        WITH s AS (SELECT id FROM stores WHERE name = :store),
        i AS (
            INSERT INTO integrations (id, store_id, name, enabled, integration_type, observes,
                configuration, signing_secret)
            SELECT gen_random_uuid(), s.id, 'seed', true, 'webhook', '{order.created}', '{}',
                   'whsec_x' FROM s RETURNING id, store_id),
        e AS (
            INSERT INTO events (id, store_id, triggered_by, payload)
            SELECT gen_random_uuid(), store_id, 'order.created', '{}' FROM i
            RETURNING id, store_id),
        spec (status, attempts, due, n) AS (VALUES
            ('pending', 0, interval '-1 second', 3), ('pending', 0, interval '1 hour', 1),
            ('pending', 2, interval '-90 seconds', 1), ('pending', 1, interval '-5 seconds', 1),
            ('pending', 1, interval '1 hour', 4), ('delivering', 1, interval '0', 5),
            ('held', 1, interval '-1 day', 6), ('succeeded', 1, NULL, 7))
        INSERT INTO integration_jobs (id, store_id, event_id, integration_id, triggered_by,
            status, attempts, next_attempt_at)
        SELECT gen_random_uuid(), e.store_id, e.id, i.id, 'order.created', spec.status,
               spec.attempts, now() + spec.due
        FROM e, i, spec, generate_series(1, spec.n)
        """,
        store=tenant.name,
    )
    await sql(
        engine,
        """
        INSERT INTO integration_logs (id, store_id, integration_id, job_id, attempt, succeeded,
            processing_time, created_at)
        SELECT gen_random_uuid(), store_id, integration_id, id, 1, g > 3, 0.01,
               CASE WHEN g <= 8 THEN now() - interval '10 seconds' ELSE now() - interval '2 hours'
               END
        FROM (SELECT * FROM integration_jobs LIMIT 1) AS j, generate_series(1, 17) AS g
        """,
    )


async def test_the_status_shows_processes_queue_lanes_lag_and_the_last_minute(
    client: Client, engine: AsyncEngine
) -> None:
    tenant = await make_tenant(engine)
    await seed_queue(engine, tenant)
    await heartbeat(engine, "api").beat()
    await heartbeat(engine, "worker", in_flight=lambda: 5).beat()

    response = await client.get("/v2/status", headers=tenant.auth("admin"))

    assert response.status == 200, await response.text()
    data = (await response.json())["data"]
    assert data["type"] == "hub-status"
    assert [(p["role"], p["jobs_in_flight"]) for p in data["processes"]] == [
        ("api", 0),
        ("worker", 5),
    ]
    assert data["queue"] == {
        "first_attempts": {"due": 3, "scheduled": 1},
        "retries": {"due": 2, "scheduled": 4},
        "delivering": 5,
        "held": 6,
    }
    assert 90 <= data["lag_seconds"] < 120
    assert data["deliveries_1m"] == {"succeeded": 5, "failed": 3}
    assert data["links"]["self"] == "http://hub.test/v2/status"
    for role in ("manage", "view", "publish"):
        refused = await client.get("/v2/status", headers=tenant.auth(role))
        assert refused.status == 403


def gauge(metrics: str, name: str) -> float:
    found = re.search(rf"^{re.escape(name)} ([0-9.e+-]+)$", metrics, re.MULTILINE)
    assert found is not None, name
    return float(found.group(1))


async def test_the_metrics_gauges_are_the_status_read_at_most_once_per_interval(
    client: Client, engine: AsyncEngine
) -> None:
    tenant = await make_tenant(engine)
    await seed_queue(engine, tenant)

    first = await (await client.get("/metrics")).text()
    await sql(engine, "UPDATE integration_jobs SET status = 'held' WHERE status = 'delivering'")
    second = await (await client.get("/metrics")).text()
    await client.get("/v2/status", headers=tenant.auth("admin"))  # reads afresh, sets them
    third = await (await client.get("/metrics")).text()

    assert gauge(first, 'hub_jobs_due{lane="first"}') == 3
    assert gauge(first, 'hub_jobs_scheduled{lane="retry"}') == 4
    assert gauge(first, "hub_jobs_delivering") == 5
    assert gauge(first, 'hub_deliveries_last_minute{outcome="failed"}') == 3
    assert gauge(first, "hub_queue_lag_seconds") >= 90
    # Within the interval (60 s here) a scrape is served from memory: no query.
    assert gauge(second, "hub_jobs_delivering") == 5
    assert gauge(third, "hub_jobs_delivering") == 0
    assert gauge(third, "hub_jobs_held") == 11


# --- the plans at scale ------------------------------------------------------------------------

ROWS = 100_000


async def bulk(conn: AsyncConnection) -> None:
    """`ROWS` jobs, nearly all finished, and as many logs over a day; a realistic sprinkle of
    pending (due and not), retries, delivering and held jobs."""
    await conn.execute(
        text(
            """
            WITH s AS (INSERT INTO stores (id, name) VALUES (gen_random_uuid(), 'bulk')
                       RETURNING id),
            i AS (INSERT INTO integrations (id, store_id, name, enabled, integration_type,
                    observes, configuration, signing_secret)
                  SELECT gen_random_uuid(), id, 'bulk', true, 'webhook', '{order.created}',
                         '{}', 'whsec_x' FROM s RETURNING id, store_id),
            e AS (INSERT INTO events (id, store_id, triggered_by, payload)
                  SELECT gen_random_uuid(), store_id, 'order.created', '{}' FROM i
                  RETURNING id, store_id)
            INSERT INTO integration_jobs (id, store_id, event_id, integration_id, triggered_by,
                status, attempts, next_attempt_at, created_at, completed_at)
            SELECT gen_random_uuid(), e.store_id, e.id, i.id, 'order.created',
                   CASE WHEN g % 1000 = 0 THEN 'pending' WHEN g % 997 = 0 THEN 'delivering'
                        WHEN g % 991 = 0 THEN 'held' ELSE 'succeeded' END,
                   CASE WHEN g % 2000 = 0 THEN 2 WHEN g % 1000 = 0 THEN 0 ELSE 1 END,
                   CASE WHEN g % 1000 = 0 THEN now() + (g % 3 - 1) * interval '1 minute' END,
                   now() - g * interval '800 ms', now() - g * interval '800 ms'
            FROM e, i, generate_series(1, :rows) AS g
            """
        ),
        {"rows": ROWS},
    )
    await conn.execute(
        text(
            """
            INSERT INTO integration_logs (id, store_id, integration_id, job_id, attempt,
                succeeded, processing_time, created_at)
            SELECT gen_random_uuid(), store_id, integration_id, id, 1, true, 0.01, created_at
            FROM integration_jobs
            """
        )
    )
    await conn.execute(text("ANALYZE"))


async def explain(conn: AsyncConnection, statement: Any, params: dict[str, Any]) -> str:
    compiled = statement.compile(dialect=conn.dialect)
    values = compiled.construct_params(params)
    positional = tuple(values[name] for name in compiled.positiontup or ())
    result = await conn.exec_driver_sql(f"EXPLAIN {compiled}", positional)
    return "\n".join(str(row[0]) for row in result)


async def test_every_status_figure_stays_on_an_index_on_a_large_table(
    engine: AsyncEngine,
) -> None:
    async with engine.begin() as conn:
        await bulk(conn)
        queue = await explain(conn, processes.QUEUE_STATUS, {})
        recent = await explain(conn, processes.RECENT_DELIVERIES, {"window": timedelta(minutes=1)})
        figures = await processes.queue_status(conn)
        await conn.rollback()

    print(f"\n[status plans on {ROWS:,} jobs and logs]\n{queue}\n{recent}")
    for index in (
        "ix_integration_jobs_due_first",
        "ix_integration_jobs_due_retry",
        "ix_integration_jobs_leased",
        "ix_integration_jobs_held",
        "ix_integration_jobs_due ",
    ):
        assert index in queue + " ", f"{index} not used:\n{queue}"
    assert "ix_integration_logs_created" in recent, recent
    for plan in (queue, recent):
        assert "Seq Scan on integration_jobs" not in plan, plan
        assert "Seq Scan on integration_logs" not in plan, plan
    assert figures.delivering > 0
    assert figures.held > 0
    assert figures.first_due > 0
    assert figures.at - datetime.now(UTC) < timedelta(seconds=5)
