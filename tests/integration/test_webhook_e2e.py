"""End to end: publish through the API, the dispatcher delivers to a real loopback webhook."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Any

import pytest
from aiohttp import web
from standardwebhooks.webhooks import Webhook

from deliverers.webhook import WebhookDeliverer
from hub.ssrf import LOOPBACK
from tests.conftest import event_body, settings_for, webhook_integration
from tests.support.sinks import sink_server
from tests.support.stack import Stack, hub_stack
from tests.support.waiting import eventually

NON_2XX = "Received a status code outside of 2xx range - treating webhook as a fail"


@dataclass
class Sink:
    """Answers each request with the next scripted status (200 once the script runs out)."""

    statuses: list[int] = field(default_factory=list)
    requests: list[tuple[dict[str, str], bytes]] = field(default_factory=list)

    async def handle(self, request: web.Request) -> web.Response:
        self.requests.append((dict(request.headers), await request.read()))
        status = self.statuses.pop(0) if self.statuses else 200
        return web.Response(status=status, text=f"answered {status}")


@dataclass
class Env:
    stack: Stack
    sink: Sink
    url: str


@pytest.fixture
async def env(fresh_db: str) -> AsyncIterator[Env]:
    sink = Sink()
    settings = settings_for(fresh_db, retry_schedule="0.1s,0.1s", webhook_timeout=2)
    async with (
        sink_server(sink.handle) as url,
        hub_stack(
            fresh_db, settings, [WebhookDeliverer(timeout=2, allowed_networks=LOOPBACK)]
        ) as stack,
    ):
        yield Env(stack, sink, url)


async def _settled(stack: Stack, integration_id: str, status: str) -> bool:
    jobs = await stack.jobs(integration_id)
    return len(jobs) == 1 and jobs[0]["status"] == status


async def test_a_published_event_arrives_signed_at_the_webhook_and_is_logged(env: Env) -> None:
    stack = env.stack
    integration_id = await stack.create_integration(
        webhook_integration(env.url, observes=["order.*"])
    )
    payload = {"data": {"type": "order", "id": "o-9", "status": "paid"}, "included": {"items": []}}
    await stack.publish(event_body("order.paid", payload=payload))
    stack.start_worker()

    await eventually(lambda: _settled(stack, integration_id, "succeeded"))

    [(headers, body)] = env.sink.requests
    [job] = await stack.jobs(integration_id)
    document = json.loads(body)
    assert document["id"] == job["id"]
    assert document["triggered_by"] == "order.paid"
    assert document["attempt"] == 1
    assert document["payload"] == payload
    assert json.loads(document["resources"]) == payload
    assert document["integration"] == {
        "id": integration_id,
        "integration_type": "webhook",
        "name": "Order hook",
        "description": "Tells the ERP",
    }
    assert headers["X-MOLTIN-INTEGRATION-TRIGGER"] == "order.paid"
    assert headers["X-MOLTIN-SECRET-KEY"] == "very-secret-value"
    assert headers["Content-Type"].startswith("application/json")
    secret = (await stack.get(f"/v2/integrations/{integration_id}/secret", "manage"))["data"]
    Webhook(secret["secret"]).verify(body, headers)  # raises if the signature is wrong
    assert headers["webhook-id"] == job["id"]

    [log] = await stack.job_logs(integration_id, job["id"])
    assert log["succeeded"] is True
    assert log["status_code"] == 200
    assert log["body"] == "answered 200"
    assert log["processing_time"] > 0

    metrics = await (await stack.client.get("/metrics")).text()
    assert 'hub_delivery_attempts_total{integration_type="webhook",outcome="succeeded"}' in metrics


async def test_a_sink_failing_twice_gets_three_attempts_of_the_same_job(env: Env) -> None:
    stack = env.stack
    env.sink.statuses = [500, 502]
    integration_id = await stack.create_integration(webhook_integration(env.url))
    await stack.publish(event_body())
    stack.start_worker()

    await eventually(lambda: _settled(stack, integration_id, "succeeded"))

    bodies = [json.loads(body) for _, body in env.sink.requests]
    assert [b["attempt"] for b in bodies] == [1, 2, 3]
    assert len({b["id"] for b in bodies}) == 1
    assert len({headers["webhook-id"] for headers, _ in env.sink.requests}) == 1
    [job] = await stack.jobs(integration_id)
    logs = await stack.job_logs(integration_id, job["id"])
    assert [(log["attempt"], log["status_code"], log["succeeded"]) for log in logs] == [
        (1, 500, False),
        (2, 502, False),
        (3, 200, True),
    ]
    assert logs[0]["error_detail"] == NON_2XX
    assert logs[0]["body"] == "answered 500"


async def test_a_sink_that_always_fails_fails_the_job_after_the_configured_attempts(
    env: Env,
) -> None:
    stack = env.stack
    env.sink.statuses = [500] * 10
    integration_id = await stack.create_integration(webhook_integration(env.url))
    await stack.publish(event_body())
    stack.start_worker()

    await eventually(lambda: _settled(stack, integration_id, "failed"))

    [job] = await stack.jobs(integration_id)
    assert job["attempts"] == 3
    assert len(env.sink.requests) == 3
    assert job["last_error"] == NON_2XX

    # The store-wide log stream shows the three attempts, newest first.
    logs = (await stack.get("/v2/integrations/logs"))["data"]
    assert [log["attempt"] for log in logs] == [3, 2, 1]


async def test_an_unreachable_endpoint_is_logged_with_a_readable_error(env: Env) -> None:
    stack = env.stack
    integration_id = await stack.create_integration(
        webhook_integration("http://127.0.0.1:9/hook")  # the discard port: nothing listens
    )
    await stack.publish(event_body())
    stack.start_worker()

    await eventually(lambda: _settled(stack, integration_id, "failed"))

    [job] = await stack.jobs(integration_id)
    logs = await stack.job_logs(integration_id, job["id"])
    assert len(logs) == 3
    assert all(log["status_code"] is None for log in logs)
    assert all("refused" in log["error_detail"].lower() for log in logs)


async def test_failed_logs_can_be_filtered_by_success(env: Env) -> None:
    stack = env.stack
    env.sink.statuses = [500]
    integration_id = await stack.create_integration(webhook_integration(env.url))
    await stack.publish(event_body())
    stack.start_worker()
    await eventually(lambda: _settled(stack, integration_id, "succeeded"))

    base = f"/v2/integrations/{integration_id}/logs"
    failed: list[dict[str, Any]] = (await stack.get(base + "?filter[succeeded]=false"))["data"]
    succeeded: list[dict[str, Any]] = (await stack.get(base + "?filter[succeeded]=true"))["data"]
    assert [log["attempt"] for log in failed] == [1]
    assert [log["attempt"] for log in succeeded] == [2]
