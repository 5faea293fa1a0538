"""An `amqp` integration through the whole hub: API → database → dispatcher → RabbitMQ. An
unroutable message is a failed attempt, retried, and delivered once a queue is bound."""

from __future__ import annotations

import json
import secrets
from collections.abc import AsyncIterator

import aio_pika
import pytest

from deliverers.amqp import AmqpDeliverer
from tests.conftest import event_body, settings_for
from tests.integration.amqp_destinations import amqp_url
from tests.integration.amqp_helpers import AMQP_URL
from tests.support.stack import Stack, hub_stack
from tests.support.waiting import eventually


@pytest.fixture
async def stack(fresh_db: str) -> AsyncIterator[Stack]:
    settings = settings_for(fresh_db, retry_schedule="0.3s,0.3s,0.3s,0.3s,0.3s,0.3s")
    deliverer = AmqpDeliverer(
        source=settings.base_url(), timeout=5, allowed_networks=settings.allowed_networks
    )
    async with hub_stack(fresh_db, settings, [deliverer]) as stack:
        yield stack


async def test_an_unroutable_message_is_retried_until_a_queue_is_bound(stack: Stack) -> None:
    name = f"hub-e2e-{secrets.token_hex(5)}"
    connection = await aio_pika.connect(AMQP_URL)
    channel = await connection.channel()
    exchange = await channel.declare_exchange(name, aio_pika.ExchangeType.TOPIC)
    queue = await channel.declare_queue(f"{name}.q")
    try:
        integration_id = await stack.create_integration(
            {
                "data": {
                    "type": "integration",
                    "name": "Orders to the bus",
                    "enabled": True,
                    "integration_type": "amqp",
                    "observes": ["order.created"],
                    "configuration": {"url": amqp_url(), "exchange": name},
                }
            }
        )
        await stack.publish(event_body())
        stack.start_worker()

        async def failed_once() -> bool:
            jobs = await stack.jobs(integration_id)
            return bool(jobs) and int(jobs[0]["attempts"]) >= 1

        await eventually(failed_once)
        await queue.bind(exchange, "order.#")

        async def succeeded() -> bool:
            return bool((await stack.jobs(integration_id))[0]["status"] == "succeeded")

        await eventually(succeeded, timeout=15)
        [job] = await stack.jobs(integration_id)
        logs = await stack.job_logs(integration_id, job["id"])
        message = await queue.get(timeout=5)
    finally:
        await queue.delete(if_unused=False, if_empty=False)
        await exchange.delete()
        await connection.close()

    assert "unroutable" in logs[0]["error_detail"]
    assert not logs[0]["succeeded"]
    assert logs[-1]["succeeded"]
    assert logs[-1]["body"] == "confirmed"
    assert message is not None
    assert message.message_id == job["id"]
    assert json.loads(message.body)["type"] == "order.created"
