"""Fault: the broker cuts the hub off while STOMP deliveries run. Three times during the run
RabbitMQ kills the hub's connections and refuses it for a while (the hub's broker user loses its
permissions, then gets them back): the attempts meanwhile fail, are retried, and every job ends
delivered.

Only the hub's own broker user (one per test) is cut off, so tests running in parallel on the
same broker are not disturbed.
"""

from __future__ import annotations

import asyncio
import json
import queue as stdlib_queue
import time
from collections import Counter
from collections.abc import AsyncIterator

import pytest

from deliverers.stomp import StompDeliverer
from tests.conftest import event_body, settings_for
from tests.integration.stomp_helpers import (
    BROKER,
    Subscriber,
    broker_queue,
    broker_user,
    drop_stomp_connections_of,
    rabbitmqctl,
    subscribed,
)
from tests.support.stack import Stack, hub_stack
from tests.support.waiting import eventually

EVENTS = 1000
CUTS = 3
#: Deliveries are paced by the integration's own rate limit so that the cuts land mid-run: at
#: 40/s the run lasts 25 s, room for `rabbitmqctl`, which takes several seconds per call on a
#: busy machine (at 120/s a CI run once finished all deliveries before the first cut landed).
RATE = 40


@pytest.fixture
async def stack(fresh_db: str) -> AsyncIterator[Stack]:
    settings = settings_for(
        fresh_db,
        retry_schedule="0.2s,0.5s,1s,1s,2s,2s,3s,3s",
        webhook_timeout=2,
        worker_grace_seconds=1,
    )
    deliverer = StompDeliverer(
        source=settings.base_url(),
        timeout=settings.webhook_timeout,
        allowed_networks=settings.allowed_networks,
    )
    async with hub_stack(fresh_db, settings, [deliverer]) as stack:
        yield stack


def drain(subscriber: Subscriber, into: Counter[str]) -> None:
    while True:
        try:
            message = subscriber.messages.get_nowait()
        except stdlib_queue.Empty:
            return
        into[json.loads(message.body)["id"]] += 1


async def test_the_broker_cutting_the_hub_off_fails_attempts_that_are_retried_until_delivered(
    stack: Stack,
) -> None:
    started = time.monotonic()
    received: Counter[str] = Counter()
    async with broker_queue() as destination, broker_user() as (user, password):
        integration_id = await stack.create_integration(
            {
                "data": {
                    "type": "integration",
                    "name": "Orders to the ERP queue",
                    "enabled": True,
                    "integration_type": "stomp",
                    "observes": ["order.created"],
                    "rate_limit": RATE,
                    "configuration": {
                        "addresses": [BROKER],
                        "destination": destination,
                        "username": user,
                        "password": password,
                    },
                }
            }
        )
        async with subscribed(destination) as subscriber:
            for _ in range(EVENTS // 100):
                await stack.publish({"data": [event_body()["data"] for _ in range(100)]})
            stack.start_worker()
            dropped = 0
            for cut in range(CUTS):
                target = (cut + 1) * EVENTS // (CUTS + 2)

                async def progressed(target: int = target) -> bool:
                    drain(subscriber, received)
                    return len(received) >= target

                await eventually(progressed, timeout=30)
                # Cut off: no new connection is allowed, and the open ones are killed.
                await rabbitmqctl("clear_permissions", "-p", "/", user)
                dropped += len(await drop_stomp_connections_of(user))
                await asyncio.sleep(1.0)
                await rabbitmqctl("set_permissions", "-p", "/", user, ".*", ".*", ".*")

            async def all_succeeded() -> bool:
                succeeded = await stack.scalar(
                    "SELECT count(*) FROM integration_jobs WHERE status = 'succeeded'"
                )
                return bool(succeeded == EVENTS)

            await eventually(all_succeeded, timeout=60)
            jobs = {
                str(job_id)
                for job_id in await stack.scalar(
                    "SELECT array_agg(id) FROM integration_jobs WHERE integration_id = :id",
                    id=integration_id,
                )
            }

            async def all_received() -> bool:
                drain(subscriber, received)
                return set(received) >= jobs

            await eventually(all_received, timeout=20)

    failed_attempts = await stack.scalar(
        "SELECT count(*) FROM integration_logs WHERE NOT succeeded"
    )
    attempts = await stack.scalar("SELECT sum(attempts) FROM integration_jobs")
    logs = await stack.scalar("SELECT count(*) FROM integration_logs")
    retried = await stack.scalar("SELECT count(*) FROM integration_jobs WHERE attempts > 1")
    duplicates = sum(1 for count in received.values() if count > 1)
    print(
        f"\n[faults: broker cut] events={EVENTS} cuts={CUTS} connections_killed={dropped} "
        f"failed_attempts={failed_attempts} jobs_retried={retried} lost=0 "
        f"duplicate_deliveries={duplicates} total={time.monotonic() - started:.1f}s"
    )
    assert set(received) == jobs, "every job arrived, and nothing else"
    assert dropped >= 1, "the cuts killed live connections of the hub"
    assert failed_attempts > 0, "attempts failed while the hub was cut off"
    assert logs == attempts, "one log per attempt"
