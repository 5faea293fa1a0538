"""End to end: publish through the API, the dispatcher delivers over STOMP to RabbitMQ, and a
subscriber on the integration's queue receives the CloudEvent."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any

import pytest

from deliverers.stomp import StompDeliverer
from tests.conftest import event_body, settings_for
from tests.integration.stomp_helpers import BROKER, broker_queue, subscribed
from tests.support.stack import Stack, hub_stack
from tests.support.waiting import eventually


@dataclass
class Env:
    stack: Stack
    queue: str


@pytest.fixture
async def env(fresh_db: str) -> AsyncIterator[Env]:
    settings = settings_for(fresh_db, retry_schedule="0.1s,0.1s", webhook_timeout=3)
    deliverer = StompDeliverer(
        source=settings.base_url(),
        timeout=settings.webhook_timeout,
        allowed_networks=settings.allowed_networks,
    )
    async with broker_queue() as queue, hub_stack(fresh_db, settings, [deliverer]) as stack:
        yield Env(stack, queue)


def stomp_integration(destination: str, **configuration: Any) -> dict[str, Any]:
    """A valid create body for a STOMP integration on the test broker."""
    return {
        "data": {
            "type": "integration",
            "name": "Orders to the ERP queue",
            "description": "CloudEvents over STOMP",
            "enabled": True,
            "integration_type": "stomp",
            "observes": ["order.*"],
            "configuration": {
                "addresses": [BROKER],
                "destination": destination,
                "username": "guest",
                "password": "guest",
                **configuration,
            },
        }
    }


async def _settled(stack: Stack, integration_id: str, status: str) -> bool:
    jobs = await stack.jobs(integration_id)
    return len(jobs) == 1 and jobs[0]["status"] == status


async def test_a_published_event_arrives_on_the_queue_as_a_cloudevent_and_is_logged(
    env: Env,
) -> None:
    stack = env.stack
    integration_id = await stack.create_integration(stomp_integration(env.queue))
    payload = {
        "data": {"type": "order", "id": "o-9", "status": "paid"},
        "included": {"items": [{"type": "order_item", "id": "i-1"}]},
    }
    async with subscribed(env.queue) as subscriber:
        event = await stack.publish(event_body("order.paid", payload=payload))
        stack.start_worker()
        message = await subscriber.next(timeout=10)
        await eventually(lambda: _settled(stack, integration_id, "succeeded"))
        await subscriber.assert_no_more()

    [job] = await stack.jobs(integration_id)
    store_id = await stack.scalar(
        "SELECT id FROM stores WHERE name = :name", name=stack.tenant.name
    )
    assert json.loads(message.body) == {
        "specversion": "1.0",
        "id": job["id"],
        "type": "order.paid",
        "source": stack.settings.base_url(),
        "datacontenttype": "application/json",
        "time": event["meta"]["timestamps"]["created_at"],
        "integrationid": integration_id,
        "storeid": str(store_id),
        "data": payload["data"],
        "included": payload["included"],
    }
    assert message.headers["content-type"] == "application/json"
    assert message.headers["persistent"] == "true"
    assert message.headers["hub-event-type"] == "order.paid"
    assert message.headers["hub-job-id"] == job["id"]
    assert message.headers["hub-event-id"] == event["id"]
    assert message.headers["hub-attempt"] == "1"

    assert job["attempts"] == 1
    assert job["last_error"] is None
    [log] = await stack.job_logs(integration_id, job["id"])
    assert log["succeeded"] is True
    assert log["attempt"] == 1
    assert log["status_code"] is None
    assert log["error_detail"] is None
    assert log["body"].startswith("receipt ")
    assert log["processing_time"] > 0


async def test_a_destination_the_broker_rejects_fails_the_job_with_the_brokers_message(
    env: Env,
) -> None:
    stack = env.stack
    integration_id = await stack.create_integration(stomp_integration("/invalid/x"))
    await stack.publish(event_body("order.created"))
    stack.start_worker()

    await eventually(lambda: _settled(stack, integration_id, "failed"))

    [job] = await stack.jobs(integration_id)
    assert job["attempts"] == 3
    assert "Unknown destination" in job["last_error"]
    logs = await stack.job_logs(integration_id, job["id"])
    assert [(log["attempt"], log["succeeded"]) for log in logs] == [
        (1, False),
        (2, False),
        (3, False),
    ]
    assert all(log["error_detail"] == job["last_error"] for log in logs)
