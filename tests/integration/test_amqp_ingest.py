"""The AMQP ingest against the real RabbitMQ: API, dispatcher and consumer in this process.

A service publishes to the hub's exchange; the consumer stores the event and its jobs through the
same publish path as `POST /v2/events` and acks after the commit; what can never be stored is
dead-lettered with its reason; a database outage requeues instead.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Any

import pytest
from aiohttp import web
from prometheus_client import REGISTRY

from deliverers.webhook import WebhookDeliverer
from hub.events import load_catalogue
from hub.ingest import AmqpIngest
from hub.settings import Settings
from hub.store.engine import create_engine
from tests.conftest import settings_for, webhook_integration
from tests.integration.amqp_helpers import Broker, amqp_settings, broker
from tests.support.sinks import sink_server
from tests.support.stack import Stack, hub_stack
from tests.support.waiting import eventually

ORDER = {"data": {"type": "order", "id": "o-1", "status": "paid", "total": 120}}


def event(key: str = "order.paid", **extra: Any) -> dict[str, Any]:
    return {"type": "event", "triggered_by": key, "payload": ORDER, **extra}


@dataclass
class Sink:
    bodies: list[bytes] = field(default_factory=list)

    async def handle(self, request: web.Request) -> web.Response:
        self.bodies.append(await request.read())
        return web.Response(text="ok")


@dataclass
class Env:
    stack: Stack
    broker: Broker
    sink: Sink
    url: str
    ingest: AmqpIngest

    def key(self, role: str = "publish") -> dict[str, str]:
        return {"x-hub-key": self.stack.tenant.keys[role]}

    async def events(self, client_id: str | None = None) -> int:
        sql = "SELECT count(*) FROM events"
        if client_id is not None:
            return int(await self.stack.scalar(sql + " WHERE client_id = :c", c=client_id))
        return int(await self.stack.scalar(sql))


@contextlib.asynccontextmanager
async def running(ingest: AmqpIngest) -> AsyncIterator[AmqpIngest]:
    task = asyncio.create_task(ingest.run())
    try:
        await asyncio.wait_for(ingest.ready.wait(), 15)
        yield ingest
    finally:
        ingest.stop()
        await asyncio.wait_for(task, 30)


LOOPBACK = "127.0.0.0/8"


def _settings(db: str, **overrides: Any) -> Settings:
    return settings_for(
        db, webhook_timeout=2, amqp_requeue_delay=0.1, allowed_networks=LOOPBACK, **overrides
    )


@pytest.fixture
async def env(fresh_db: str) -> AsyncIterator[Env]:
    names = amqp_settings()
    settings = _settings(fresh_db, **names)
    sink = Sink()
    async with (
        broker(names) as test_broker,
        sink_server(sink.handle) as url,
        hub_stack(fresh_db, settings, [_webhook(settings)]) as stack,
    ):
        ingest = AmqpIngest(settings, stack.engine, load_catalogue())
        async with running(ingest):
            yield Env(stack, test_broker, sink, url, ingest)


def _webhook(settings: Settings) -> WebhookDeliverer:
    return WebhookDeliverer(timeout=2, allowed_networks=settings.allowed_networks)


def _count(outcome: str) -> float:
    value = REGISTRY.get_sample_value("hub_amqp_messages_total", {"outcome": outcome})
    return value or 0.0


async def test_an_event_published_to_the_exchange_is_delivered_to_the_webhook(env: Env) -> None:
    stack = env.stack
    integration_id = await stack.create_integration(
        webhook_integration(env.url, observes=["order.paid"])
    )
    stack.start_worker()

    await env.broker.publish(event(), headers=env.key(), message_id="order-1-paid")

    async def delivered() -> bool:
        jobs = await stack.jobs(integration_id)
        return len(jobs) == 1 and jobs[0]["status"] == "succeeded"

    await eventually(delivered)
    assert len(env.sink.bodies) == 1
    [job] = await stack.jobs(integration_id)
    stored = await stack.get(f"/v2/events/{job['relationships']['event']['data']['id']}")
    assert stored["data"]["client_id"] == "order-1-paid"
    assert stored["data"]["payload"] == ORDER
    assert await env.broker.ready_count("amqp_queue") == 0


async def test_the_envelope_and_a_body_without_triggered_by_are_accepted(env: Env) -> None:
    await env.broker.publish({"data": event()}, headers=env.key(), message_id="enveloped")
    bare = {"type": "event", "payload": ORDER}
    await env.broker.publish(bare, routing_key="order.created", headers=env.key(), message_id="b")

    async def both() -> bool:
        return await env.events() == 2

    await eventually(both)
    key = await env.stack.scalar("SELECT triggered_by FROM events WHERE client_id = 'b'")
    assert key == "order.created"


async def test_the_same_message_id_twice_stores_one_event(env: Env) -> None:
    integration_id = await env.stack.create_integration(
        webhook_integration(env.url, observes=["order.paid"], enabled=True)
    )
    repeats = _count("repeat")
    for _ in range(2):
        await env.broker.publish(event(), headers=env.key(), message_id="twice")

    async def settled() -> bool:
        return _count("repeat") >= repeats + 1

    await eventually(settled)
    assert await env.events("twice") == 1
    jobs = await env.stack.scalar(
        "SELECT count(*) FROM integration_jobs WHERE integration_id = :i", i=integration_id
    )
    assert jobs == 1


async def test_a_message_id_reused_for_another_event_is_dead_lettered(env: Env) -> None:
    await env.broker.publish(event(), headers=env.key(), message_id="reused")

    async def stored() -> bool:
        return await env.events("reused") == 1

    await eventually(stored)
    changed = event(payload={"data": {"type": "order", "id": "o-2"}})
    await env.broker.publish(changed, headers=env.key(), message_id="reused")

    [dead] = await env.broker.take("amqp_dead_letter_queue", 1)
    reason = str(dead.headers["x-hub-rejected-reason"])
    assert "The message_id 'reused' was already used for a different event" in reason
    assert dead.message_id == "reused"
    payload = await env.stack.scalar("SELECT payload FROM events WHERE client_id = 'reused'")
    assert payload == ORDER


async def test_a_body_id_and_the_message_id_must_agree(env: Env) -> None:
    await env.broker.publish(event(id="same"), headers=env.key(), message_id="same")
    await env.broker.publish(event(id="one"), headers=env.key(), message_id="other")

    [dead] = await env.broker.take("amqp_dead_letter_queue", 1)
    assert "message_id and data.id differ" in str(dead.headers["x-hub-rejected-reason"])

    # The refused message is dead-lettered as soon as it is decoded, maybe before the other one
    # is stored.
    async def stored() -> bool:
        return await env.events("same") == 1

    await eventually(stored)


@pytest.mark.parametrize(
    ("body", "routing_key", "headers", "reason"),
    [
        (b"{not json", "order.paid", "publish", "not valid JSON"),
        ({"data": [event()]}, "order.paid", "publish", "one event"),
        (event("order.nonsense"), "order.nonsense", "publish", "cannot be published"),
        (event(), "order.created", "publish", "differs from data.triggered_by"),
        ({"type": "event", "triggered_by": "order.paid"}, "order.paid", "publish", "payload"),
        (event(), "order.paid", "view", "does not allow publishing"),
        (event(), "order.paid", None, "no x-hub-key header"),
        (event(), "order.paid", "forged", "not a valid API key"),
    ],
    ids=[
        "not JSON",
        "a batch",
        "an unknown event key",
        "a routing key that is not the event key",
        "no payload",
        "a key that may not publish",
        "no key and no bound store",
        "a forged key",
    ],
)
async def test_a_message_that_can_never_be_stored_lands_in_the_dead_letter_queue_with_the_reason(
    env: Env, body: Any, routing_key: str, headers: str | None, reason: str
) -> None:
    sent: dict[str, Any] = {}
    if headers == "forged":
        sent = {"x-hub-key": "hub_000000000000_" + "x" * 43}
    elif headers is not None:
        sent = env.key(headers)
    sent["x-trace"] = "t-1"
    await env.broker.publish(body, routing_key=routing_key, headers=sent, message_id="bad-1")

    [dead] = await env.broker.take("amqp_dead_letter_queue", 1)
    assert reason in str(dead.headers["x-hub-rejected-reason"])
    assert dead.headers["x-hub-original-routing-key"] == routing_key
    assert dead.headers["x-trace"] == "t-1"
    assert "x-hub-key" not in dead.headers
    assert dead.message_id == "bad-1"
    assert dead.body == (body if isinstance(body, bytes) else dead.body)
    assert await env.events() == 0
    assert await env.broker.ready_count("amqp_queue") == 0


async def test_an_admin_key_may_publish_to_another_store_and_others_may_not(env: Env) -> None:
    from tests.conftest import make_tenant

    other = await make_tenant(env.stack.engine)
    admin = {"x-hub-key": env.stack.tenant.keys["admin"], "x-hub-store": other.name}
    await env.broker.publish(event(), headers=admin, message_id="to-other")
    publisher = {"x-hub-key": env.stack.tenant.keys["publish"], "x-hub-store": other.name}
    await env.broker.publish(event(), headers=publisher, message_id="not-allowed")

    [dead] = await env.broker.take("amqp_dead_letter_queue", 1)
    assert "only admin keys" in str(dead.headers["x-hub-rejected-reason"])
    store = await env.stack.scalar(
        "SELECT s.name FROM events e JOIN stores s ON s.id = e.store_id "
        "WHERE e.client_id = 'to-other'"
    )
    assert store == other.name


async def test_a_queue_bound_to_a_store_takes_messages_without_a_key(fresh_db: str) -> None:
    names = amqp_settings()
    settings = _settings(fresh_db, amqp_store="warehouse", **names)
    engine = create_engine(fresh_db, pool_size=2)
    try:
        async with (
            broker(names) as test_broker,
            running(AmqpIngest(settings, engine, load_catalogue())),
        ):
            await test_broker.publish(event(), message_id="trusted")
            await test_broker.publish(
                event(), headers={"x-hub-store": "elsewhere"}, message_id="elsewhere"
            )
            [dead] = await test_broker.take("amqp_dead_letter_queue", 1)
            assert "bound to the store 'warehouse'" in str(dead.headers["x-hub-rejected-reason"])

            async def stored() -> bool:
                async with engine.connect() as conn:
                    from sqlalchemy import text

                    row = await conn.execute(
                        text(
                            "SELECT s.name FROM events e JOIN stores s ON s.id = e.store_id "
                            "WHERE e.client_id = 'trusted'"
                        )
                    )
                    return row.scalar() == "warehouse"

            await eventually(stored)
    finally:
        await engine.dispose()


async def test_with_the_database_down_a_message_is_requeued_and_never_dead_lettered(
    fresh_db: str,
) -> None:
    names = amqp_settings()
    down = "postgresql://postgres@127.0.0.1:1/nowhere"
    settings = _settings(down, amqp_store="s", **names)
    engine = create_engine(down, pool_size=1)
    requeued = _count("requeued")
    try:
        async with broker(names) as test_broker:
            async with running(AmqpIngest(settings, engine, load_catalogue())):
                await test_broker.publish(event(), message_id="while-down")

                async def retried_twice() -> bool:
                    return _count("requeued") >= requeued + 2

                await eventually(retried_twice)

            # Stopped: the message is back in the hub's queue, and nothing was dead-lettered.
            async def back_in_the_queue() -> bool:
                return await test_broker.ready_count("amqp_queue") == 1

            await eventually(back_in_the_queue, timeout=5)
            assert await test_broker.ready_count("amqp_dead_letter_queue") == 0
    finally:
        await engine.dispose()


async def test_stop_finishes_the_message_in_hand_and_leaves_the_rest_queued(env: Env) -> None:
    for index in range(200):
        await env.broker.publish(event(), headers=env.key(), message_id=f"m-{index}")
    env.ingest.stop()
    await asyncio.wait_for(env.ingest.stopped.wait(), 30)

    async def every_message_stored_or_queued() -> bool:
        # Unacked deliveries go back to the queue once the consumer's channel is closed.
        return await env.events() + await env.broker.ready_count("amqp_queue") == 200

    await eventually(every_message_stored_or_queued, timeout=5)
