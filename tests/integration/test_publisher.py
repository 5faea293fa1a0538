"""Group commit and admission on the publish path (`hub.services.publisher`), and a connection
pool that does not churn under load: on real PostgreSQL, through the HTTP API where it counts."""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import AsyncIterator
from typing import Any

import asyncpg
import pytest
from aiohttp.test_utils import TestClient, TestServer
from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncEngine

from hub.api.http import PUBLISHER
from hub.errors import Overloaded
from hub.events import load_catalogue
from hub.services import events as event_service
from hub.services.inputs import EventIn
from hub.services.publisher import BATCHES, Publisher
from hub.store import stores
from hub.store.engine import create_engine, plain_url
from hub.store.models import events
from hub.web import create_app
from tests.conftest import Tenant, event_body, make_tenant, settings_for, webhook_integration
from tests.support.waiting import eventually

CATALOGUE = load_catalogue()


def _event(client_id: str | None = None) -> EventIn:
    return EventIn.model_validate(
        event_body(id=client_id)["data"] if client_id else event_body()["data"]
    )


def _prepared(store_id: uuid.UUID, client_id: str | None = None) -> event_service.Prepared:
    return event_service.prepare(
        CATALOGUE,
        store_id,
        [_event(client_id)],
        batch=False,
        idempotency_key=None,
        max_event_bytes=1 << 20,
    )


async def _stored(engine: AsyncEngine) -> int:
    async with engine.connect() as conn:
        return int((await conn.execute(select(func.count()).select_from(events))).scalar_one())


@pytest.fixture
async def engine(fresh_db: str) -> AsyncIterator[AsyncEngine]:
    engine = create_engine(fresh_db, pool_size=4)
    yield engine
    await engine.dispose()


@pytest.fixture
async def tenant(engine: AsyncEngine) -> Tenant:
    return await make_tenant(engine)


async def _store_id(engine: AsyncEngine, tenant: Tenant) -> uuid.UUID:
    async with engine.connect() as conn:
        store = await stores.get_store_by_name(conn, tenant.name)
    assert store is not None
    return store.id


async def test_requests_queued_together_are_written_by_one_batch(
    engine: AsyncEngine, tenant: Tenant
) -> None:
    publisher = Publisher(engine, max_wait=30, max_lag=30)
    store_id = await _store_id(engine, tenant)
    before = BATCHES._value.get()
    waiting = [asyncio.create_task(publisher.publish(_prepared(store_id))) for _ in range(50)]
    await asyncio.sleep(0)  # all 50 queue up before a writer runs
    publisher.start()
    try:
        results = await asyncio.gather(*waiting)
    finally:
        await publisher.stop()

    assert all(r[0].created for r in results)
    assert len({r[0].event.id for r in results}) == 50
    assert BATCHES._value.get() - before == 1
    assert await _stored(engine) == 50


async def test_the_same_client_id_twice_in_one_batch_is_stored_once_and_answered_with_it(
    engine: AsyncEngine, tenant: Tenant
) -> None:
    publisher = Publisher(engine, max_wait=30, max_lag=30)
    store_id = await _store_id(engine, tenant)
    first = asyncio.create_task(publisher.publish(_prepared(store_id, "order-1-created")))
    second = asyncio.create_task(publisher.publish(_prepared(store_id, "order-1-created")))
    await asyncio.sleep(0)
    publisher.start()
    try:
        [a], [b] = await asyncio.gather(first, second)
    finally:
        await publisher.stop()

    assert (a.created, b.created) == (True, False)
    assert a.event.id == b.event.id
    assert await _stored(engine) == 1


async def test_a_request_that_breaks_its_batch_fails_alone(
    engine: AsyncEngine, tenant: Tenant
) -> None:
    publisher = Publisher(engine, max_wait=30, max_lag=30)
    store_id = await _store_id(engine, tenant)
    good = [asyncio.create_task(publisher.publish(_prepared(store_id))) for _ in range(3)]
    # A store that does not exist (deleted meanwhile, say): its events break the foreign key.
    bad = asyncio.create_task(publisher.publish(_prepared(uuid.uuid4())))
    await asyncio.sleep(0)
    publisher.start()
    try:
        outcomes = await asyncio.gather(*good, bad, return_exceptions=True)
    finally:
        await publisher.stop()

    assert all(isinstance(o, list) and o[0].created for o in outcomes[:3])
    assert isinstance(outcomes[3], Exception)
    assert "foreign key" in str(outcomes[3]).lower()
    assert await _stored(engine) == 3


@pytest.fixture
async def client_with(fresh_db: str, engine: AsyncEngine) -> AsyncIterator[Any]:
    clients: list[TestClient[Any, Any]] = []

    async def make(**overrides: Any) -> TestClient[Any, Any]:
        client: TestClient[Any, Any] = TestClient(
            TestServer(create_app(settings_for(fresh_db, **overrides), engine), host="127.0.0.1")
        )
        await client.start_server()
        clients.append(client)
        return client

    yield make
    for client in clients:
        await client.close()


async def test_publishes_that_cannot_be_written_in_time_are_refused_early_with_503(
    fresh_db: str, engine: AsyncEngine, tenant: Tenant, client_with: Any
) -> None:
    client = await client_with(publish_max_wait=0.2)
    headers = tenant.auth("publish")
    blocker = await asyncpg.connect(plain_url(fresh_db))
    try:
        # The events table is locked against inserts: the writers stall, as on a stuck disk.
        transaction = blocker.transaction()
        await transaction.start()
        await blocker.execute("LOCK TABLE events IN SHARE ROW EXCLUSIVE MODE")
        # Publishes one by one until one is queued behind the stalled writers (each writer
        # takes whatever has queued up, so how many it takes depends on timing), then until it
        # has waited longer than 0.2 s.
        publisher = client.app[PUBLISHER]
        stalled: list[asyncio.Task[Any]] = []
        while not publisher.waited() and len(stalled) < 10:
            stalled.append(
                asyncio.create_task(client.post("/v2/events", json=event_body(), headers=headers))
            )
            await asyncio.sleep(0.1)
        await eventually(
            lambda: publisher.waited() > 0.2, timeout=10, what="a publish queued for 0.2 s"
        )
        started = time.monotonic()
        # Refused before the other middlewares (`shed_publishes`), or by the handler when the
        # request has an Origin (CORS' path): the same answer either way.
        refused = [
            await asyncio.wait_for(
                client.post("/v2/events", json=event_body(), headers=headers | extra),
                timeout=10,
            )
            for extra in [{}, {}, {"X-Request-Id": "req-7"}, {"Origin": "https://shop.test"}, {}]
        ]
        refusing_took = time.monotonic() - started
        await transaction.rollback()
        accepted = await asyncio.gather(*stalled)
    finally:
        await blocker.close()

    bodies = []
    for response in refused:
        assert response.status == 503
        assert response.headers["Retry-After"] == "1"
        assert response.content_type == "application/json"
        assert response.headers["X-Request-Id"]
        [error] = (await response.json())["errors"]
        assert error == {
            "status": 503,
            "title": "Service Unavailable",
            "detail": "Too many events are waiting to be stored; publish again after Retry-After",
        }
        bodies.append(await response.read())
    assert len(set(bodies)) == 1, "the shed and the handler's refusals are one answer"
    assert refused[2].headers["X-Request-Id"] == "req-7"
    assert refusing_took < 2.0, "refusals are immediate, not after waiting"
    assert len(accepted) >= 3, "both writers stalled, and one more queued"
    assert {r.status for r in accepted} == {202}
    assert await _stored(engine) == len(accepted), "what was refused was not stored"


async def test_the_pool_opens_no_new_connections_under_load(
    fresh_db: str, engine: AsyncEngine, tenant: Tenant, client_with: Any
) -> None:
    """64 clients publishing for 2 s over a pool of 4: the same 4 backends serve throughout."""
    client = await client_with()
    headers = tenant.auth("publish")
    await client.post("/v2/integrations", json=webhook_integration(), headers=tenant.auth("manage"))
    database = fresh_db.rsplit("/", 1)[1]
    watcher = await asyncpg.connect(plain_url(fresh_db))
    seen: dict[int, Any] = {}
    statuses: list[int] = []
    stop = asyncio.Event()

    async def publish_until_stopped() -> None:
        while not stop.is_set():
            response = await client.post("/v2/events", json=event_body(), headers=headers)
            statuses.append(response.status)
            response.release()

    async def watch() -> None:
        while not stop.is_set():
            rows = await watcher.fetch(
                "SELECT pid, backend_start FROM pg_stat_activity"
                " WHERE datname = $1 AND application_name = 'hub'",
                database,
            )
            seen.update({row["pid"]: row["backend_start"] for row in rows})
            await asyncio.sleep(0.05)

    try:
        clients = [asyncio.create_task(publish_until_stopped()) for _ in range(64)]
        watching = asyncio.create_task(watch())
        await asyncio.sleep(2.0)
        stop.set()
        await asyncio.gather(*clients, watching)
    finally:
        await watcher.close()

    assert set(statuses) <= {202, 503}
    assert statuses.count(202) > 100
    assert 1 <= len(seen) <= 4, f"{len(seen)} backends served a pool of 4: connections churned"


async def test_a_starved_event_loop_refuses_publishes_until_it_catches_up(
    engine: AsyncEngine,
) -> None:
    publisher = Publisher(engine, max_wait=30, max_lag=0.05)
    publisher.start()
    try:
        await asyncio.sleep(0.05)
        publisher.admit()  # a free loop admits
        time.sleep(0.5)  # noqa: ASYNC251 - one long stall (a huge request's parsing) ...
        await asyncio.sleep(0.02)
        assert 0.01 < publisher.lag() <= 0.8 * 0.05
        publisher.admit()  # ... counts, but never refuses on its own
        for _ in range(10):  # the loop stalls again and again: more work than CPU
            time.sleep(0.1)  # noqa: ASYNC251 - blocking on purpose: that is the starvation
            await asyncio.sleep(0)
        assert publisher.lag() > 0.05
        with pytest.raises(Overloaded, match="waiting to be stored"):
            publisher.admit()
        await asyncio.sleep(1.0)  # a free loop again: the average decays within a few ticks
        publisher.admit()  # caught up: admits again
    finally:
        await publisher.stop()
