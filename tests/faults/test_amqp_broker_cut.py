"""Fault: RabbitMQ cuts the hub's AMQP connections while deliveries run. Three times during the
run the broker closes every connection of the hub's broker user and refuses it for a while (its
permissions cleared, then given back): the attempts in flight and meanwhile fail, are retried,
and every job ends delivered (0 lost); the only repeats are messages whose confirm was lost.

Only the test's own broker user is touched, so tests running in parallel are not disturbed.
"""

from __future__ import annotations

import asyncio
import time
from collections import Counter
from collections.abc import AsyncIterator

import aio_pika
import pytest

from deliverers.amqp import AmqpDeliverer
from tests.conftest import event_body, settings_for
from tests.integration.amqp_destinations import amqp_url, own_exchange
from tests.integration.amqp_helpers import AMQP_URL
from tests.integration.stomp_helpers import broker_user, rabbitmqctl
from tests.support.stack import Stack, hub_stack
from tests.support.waiting import eventually

EVENTS = 1000
CUTS = 3
#: Paced by the integration's rate limit so that the cuts land mid-run (rabbitmqctl takes
#: seconds per call on a busy machine).
RATE = 40


@pytest.fixture
async def stack(fresh_db: str) -> AsyncIterator[Stack]:
    settings = settings_for(
        fresh_db,
        retry_schedule="0.2s,0.5s,1s,1s,2s,2s,3s,3s",
        webhook_timeout=2,
        worker_grace_seconds=1,
    )
    deliverer = AmqpDeliverer(
        source=settings.base_url(),
        timeout=settings.webhook_timeout,
        allowed_networks=settings.allowed_networks,
    )
    async with hub_stack(fresh_db, settings, [deliverer]) as stack:
        yield stack


async def test_the_broker_cutting_the_hub_off_loses_no_job(stack: Stack) -> None:
    started = time.monotonic()
    received: Counter[str] = Counter()
    async with own_exchange() as exchange, broker_user() as (user, password):
        integration_id = await stack.create_integration(
            {
                "data": {
                    "type": "integration",
                    "name": "Orders to the bus",
                    "enabled": True,
                    "integration_type": "amqp",
                    "observes": ["order.created"],
                    "rate_limit": RATE,
                    "configuration": {"url": amqp_url(user, password), "exchange": exchange.name},
                }
            }
        )
        consumer = await aio_pika.connect(AMQP_URL)
        channel = await consumer.channel()
        queue = await channel.declare_queue(exchange.queue.name, passive=True)

        async def on_message(message: aio_pika.abc.AbstractIncomingMessage) -> None:
            received[message.message_id or ""] += 1
            await message.ack()

        await queue.consume(on_message)
        try:
            for _ in range(EVENTS // 100):
                await stack.publish({"data": [event_body()["data"] for _ in range(100)]})
            stack.start_worker()
            for cut in range(CUTS):
                target = (cut + 1) * EVENTS // (CUTS + 2)

                async def progressed(target: int = target) -> bool:
                    return len(received) >= target

                await eventually(progressed, timeout=30)
                await rabbitmqctl("clear_permissions", "-p", "/", user)
                await rabbitmqctl("close_all_user_connections", user, "cut by the fault test")
                await asyncio.sleep(1.0)
                await rabbitmqctl("set_permissions", "-p", "/", user, ".*", ".*", ".*")

            async def all_succeeded() -> bool:
                succeeded = await stack.scalar(
                    "SELECT count(*) FROM integration_jobs WHERE status = 'succeeded'"
                )
                return bool(succeeded == EVENTS)

            await eventually(all_succeeded, timeout=90)
            jobs = {
                str(job_id)
                for job_id in await stack.scalar(
                    "SELECT array_agg(id) FROM integration_jobs WHERE integration_id = :id",
                    id=integration_id,
                )
            }

            async def all_received() -> bool:
                return set(received) >= jobs

            await eventually(all_received, timeout=20)
        finally:
            await consumer.close()

    failed = await stack.scalar("SELECT count(*) FROM integration_logs WHERE NOT succeeded")
    details = await stack.scalar(
        "SELECT array_agg(DISTINCT left(error_detail, 90)) FROM integration_logs "
        "WHERE NOT succeeded"
    )
    attempts = await stack.scalar("SELECT sum(attempts) FROM integration_jobs")
    logs = await stack.scalar("SELECT count(*) FROM integration_logs")
    duplicates = sum(1 for count in received.values() if count > 1)
    print(
        f"\n[faults: amqp broker cut] events={EVENTS} cuts={CUTS} failed_attempts={failed} "
        f"lost=0 duplicate_deliveries={duplicates} total={time.monotonic() - started:.1f}s\n"
        f"  details: {details}"
    )
    assert set(received) == jobs, "every job arrived, and nothing else"
    assert failed > 0, "attempts failed while the hub was cut off"
    assert logs == attempts, "one log per attempt"
    assert password not in str(details)
