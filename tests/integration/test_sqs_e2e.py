"""End to end: publish through the API, the dispatcher delivers to a real SQS endpoint (moto)."""

from __future__ import annotations

import json
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any

import pytest

from deliverers.sqs import SqsDeliverer
from hub.ssrf import LOOPBACK
from tests.conftest import event_body, settings_for
from tests.integration.moto_server import MotoServer, shared_moto_server, shared_session
from tests.support.stack import Stack, hub_stack
from tests.support.waiting import eventually


@pytest.fixture(scope="session")
def moto() -> MotoServer:
    return shared_moto_server()


@dataclass
class Env:
    stack: Stack
    moto: MotoServer
    batches: list[int]
    """The number of entries of each SendMessageBatch call."""


@pytest.fixture
async def env(fresh_db: str, moto: MotoServer) -> AsyncIterator[Env]:
    settings = settings_for(fresh_db, retry_schedule="0.1s,0.1s")
    batches: list[int] = []

    def count(params: dict[str, Any], **_: Any) -> None:
        batches.append(len(params["Entries"]))

    session = shared_session()
    session.register("provide-client-params.sqs.SendMessageBatch", count)
    deliverer = SqsDeliverer(
        source=settings.base_url(), timeout=2, session=session, allowed_networks=LOOPBACK
    )
    try:
        async with hub_stack(fresh_db, settings, [deliverer]) as stack:
            yield Env(stack, moto, batches)
    finally:
        session.unregister("provide-client-params.sqs.SendMessageBatch", count)


def sqs_integration(moto: MotoServer, queue_url: str) -> dict[str, Any]:
    return {
        "data": {
            "type": "integration",
            "name": "Order queue",
            "description": "Feeds the warehouse",
            "enabled": True,
            "integration_type": "aws_sqs",
            "observes": ["order.*"],
            "configuration": {
                "url": queue_url,
                "aws_access_key_id": moto.allowed.access_key_id,
                "aws_secret_access_key": moto.allowed.secret_access_key,
                "region": moto.region,
            },
        }
    }


async def _statuses(stack: Stack, integration_id: str) -> list[str]:
    return [job["status"] for job in await stack.jobs(integration_id)]


async def test_a_published_event_arrives_on_the_queue_as_a_cloudevent_and_is_logged(
    env: Env,
) -> None:
    stack = env.stack
    queue_url = await env.moto.create_queue("e2e")
    integration_id = await stack.create_integration(sqs_integration(env.moto, queue_url))
    payload = {"data": {"type": "order", "id": "o-9", "status": "paid"}, "included": {"items": []}}
    await stack.publish(event_body("order.paid", payload=payload))
    stack.start_worker()

    async def settled() -> bool:
        return await _statuses(stack, integration_id) == ["succeeded"]

    await eventually(settled)

    [message] = await env.moto.receive(queue_url, 1)
    [job] = await stack.jobs(integration_id)
    document = json.loads(message["Body"])
    store_id = await stack.scalar(
        "SELECT store_id FROM integrations WHERE id = :id", id=uuid.UUID(integration_id)
    )
    assert document == {
        "specversion": "1.0",
        "id": job["id"],
        "type": "order.paid",
        "source": "http://hub.test",
        "datacontenttype": "application/json",
        "time": document["time"],
        "integrationid": integration_id,
        "storeid": str(store_id),
        "data": payload["data"],
        "included": payload["included"],
    }
    assert document["time"].endswith("Z")
    attributes = message["MessageAttributes"]
    assert attributes["hub-event-type"]["StringValue"] == "order.paid"
    assert attributes["hub-job-id"]["StringValue"] == job["id"]
    assert attributes["hub-attempt"]["StringValue"] == "1"

    [log] = await stack.job_logs(integration_id, job["id"])
    assert log["succeeded"] is True
    assert log["status_code"] == 200
    assert log["body"] == f"MessageId: {message['MessageId']}"
    assert log["error_detail"] is None
    assert log["processing_time"] > 0


async def test_events_published_together_reach_the_queue_in_batches(env: Env) -> None:
    stack = env.stack
    queue_url = await env.moto.create_queue("e2e-batch")
    integration_id = await stack.create_integration(sqs_integration(env.moto, queue_url))
    events = [event_body("order.paid")["data"] for _ in range(25)]
    await stack.publish({"data": events})
    stack.start_worker()

    async def settled() -> bool:
        return await _statuses(stack, integration_id) == ["succeeded"] * 25

    await eventually(settled)

    messages = await env.moto.receive(queue_url, 25)
    job_ids = {job["id"] for job in await stack.jobs(integration_id)}
    assert {json.loads(m["Body"])["id"] for m in messages} == job_ids
    # One claim starts all 25 attempts in the same loop turn: they share SendMessageBatch calls.
    assert len(env.batches) >= 3
    assert sum(env.batches) <= 25


async def test_a_missing_queue_fails_the_job_with_a_readable_error_in_every_log(env: Env) -> None:
    stack = env.stack
    queue_url = f"{env.moto.endpoint}/123456789012/gone-{uuid.uuid4().hex[:8]}"
    integration_id = await stack.create_integration(sqs_integration(env.moto, queue_url))
    await stack.publish(event_body("order.paid"))
    stack.start_worker()

    async def failed() -> bool:
        return await _statuses(stack, integration_id) == ["failed"]

    await eventually(failed)

    [job] = await stack.jobs(integration_id)
    logs = await stack.job_logs(integration_id, job["id"])
    expected = (
        f"The SQS queue {queue_url} does not exist in region us-east-1 "
        "(AWS.SimpleQueueService.NonExistentQueue)"
    )
    assert [(log["attempt"], log["succeeded"], log["error_detail"]) for log in logs] == [
        (1, False, expected),
        (2, False, expected),
        (3, False, expected),
    ]
    assert job["last_error"] == expected
