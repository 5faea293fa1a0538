"""Test send (`POST /v2/integrations/{id}/test`), per-integration status
(`GET /v2/integrations/{id}/status`) and the job list filters, through the API; test send and
status with a dispatcher delivering to a loopback webhook."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any
from urllib.parse import quote

import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient

from deliverers.webhook import WebhookDeliverer
from tests.conftest import Tenant, event_body, settings_for, webhook_integration
from tests.support.sinks import sink_server
from tests.support.stack import Stack, hub_stack
from tests.support.waiting import eventually

Client = TestClient[Any, Any]
NON_2XX = "Received a status code outside of 2xx range - treating webhook as a fail"


@dataclass
class Sink:
    """Answers 500 to payloads whose `data.fail` is true, 200 to the rest."""

    requests: list[tuple[dict[str, str], dict[str, Any]]] = field(default_factory=list)

    async def handle(self, request: web.Request) -> web.Response:
        body = await request.json()
        self.requests.append((dict(request.headers), body))
        if body["payload"]["data"].get("fail"):
            return web.Response(status=500, text="no")
        return web.Response(text="ok")


@dataclass
class Env:
    stack: Stack
    sink: Sink
    url: str


@pytest.fixture
async def env(fresh_db: str) -> AsyncIterator[Env]:
    sink = Sink()
    settings = settings_for(
        fresh_db, retry_schedule="0.1s", webhook_timeout=2, allowed_networks="127.0.0.0/8"
    )
    deliverer = WebhookDeliverer(timeout=2, allowed_networks=settings.allowed_networks)
    async with sink_server(sink.handle) as url, hub_stack(fresh_db, settings, [deliverer]) as stack:
        yield Env(stack, sink, url)


# --- test send ---------------------------------------------------------------------------------


async def test_a_test_event_is_delivered_to_that_integration_alone_and_its_job_answered(
    env: Env,
) -> None:
    stack = env.stack
    # Neither observes integration.test nor would its conditions let a test payload through.
    integration_id = await stack.create_integration(
        webhook_integration(
            env.url, observes=["order.created"], conditions={"field": "data.x", "equals": 1}
        )
    )
    bystander = await stack.create_integration(webhook_integration(env.url, observes=["*"]))

    response = await stack.client.post(
        f"/v2/integrations/{integration_id}/test", headers=stack.tenant.auth("manage")
    )
    assert response.status == 202, await response.text()
    job = (await response.json())["data"]
    assert (job["type"], job["status"], job["triggered_by"]) == (
        "integration-job",
        "pending",
        "integration.test",
    )
    assert job["links"]["self"].endswith(f"/v2/integrations/{integration_id}/jobs/{job['id']}")

    stack.start_worker()

    async def delivered() -> bool:
        document = await stack.get(f"/v2/integrations/{integration_id}/jobs/{job['id']}")
        return bool(document["data"]["status"] == "succeeded")

    await eventually(delivered)
    [(headers, body)] = env.sink.requests
    assert headers["X-MOLTIN-INTEGRATION-TRIGGER"] == "integration.test"
    assert body["id"] == job["id"]
    data = body["payload"]["data"]
    assert data["type"] == "integration-test"
    assert data["integration_id"] == integration_id
    assert data["id"] == job["relationships"]["event"]["data"]["id"]
    assert data["message"]
    assert await stack.jobs(bystander) == []


async def test_a_test_send_to_a_disabled_integration_is_a_409(env: Env) -> None:
    stack = env.stack
    integration_id = await stack.create_integration(webhook_integration(env.url, enabled=False))
    response = await stack.client.post(
        f"/v2/integrations/{integration_id}/test", headers=stack.tenant.auth("manage")
    )
    assert response.status == 409
    assert "disabled" in (await response.json())["errors"][0]["detail"]
    assert await stack.jobs(integration_id) == []


@pytest.mark.parametrize(("role", "status"), [("view", 403), ("publish", 403), ("admin", 202)])
async def test_a_test_send_needs_a_role_that_manages_integrations(
    api: Client, tenant: Tenant, role: str, status: int
) -> None:
    response = await api.post(
        "/v2/integrations", json=webhook_integration(), headers=tenant.auth("manage")
    )
    integration_id = (await response.json())["data"]["id"]
    sent = await api.post(f"/v2/integrations/{integration_id}/test", headers=tenant.auth(role))
    assert sent.status == status


async def test_a_test_send_to_another_stores_integration_is_a_404(
    api: Client, tenant: Tenant, other_tenant: Tenant
) -> None:
    response = await api.post(
        "/v2/integrations", json=webhook_integration(), headers=other_tenant.auth("manage")
    )
    integration_id = (await response.json())["data"]["id"]
    sent = await api.post(f"/v2/integrations/{integration_id}/test", headers=tenant.auth())
    assert sent.status == 404
    missing = await api.post("/v2/integrations/not-a-uuid/test", headers=tenant.auth())
    assert missing.status == 404


# --- status ------------------------------------------------------------------------------------


async def test_the_status_counts_jobs_and_tells_the_last_attempt_success_and_error(
    env: Env,
) -> None:
    stack = env.stack
    integration_id = await stack.create_integration(
        webhook_integration(env.url, observes=["order.*"])
    )
    await stack.publish(event_body("order.paid"))
    failing = event_body("order.paid", payload={"data": {"type": "order", "fail": True}})
    await stack.publish(failing)
    await stack.publish(event_body("order.created"))
    stack.start_worker()

    async def settled() -> bool:
        statuses = sorted(job["status"] for job in await stack.jobs(integration_id))
        return statuses == ["failed", "succeeded", "succeeded"]

    await eventually(settled)
    await stack.stop_workers()
    document = await stack.get(f"/v2/integrations/{integration_id}/status")
    status = document["data"]
    assert status["type"] == "integration-status"
    assert status["id"] == integration_id
    assert (status["enabled"], status["disabled_reason"]) == (True, None)
    assert status["jobs"] == {
        "pending": 0,
        "delivering": 0,
        "succeeded": 2,
        "failed": 1,
        "cancelled": 0,
        "held": 0,
    }
    assert status["attempts_1h"] == 4  # 2 successes, and 2 attempts of the failing job
    assert status["success_rate_1h"] == 0.5
    error = status["last_error"]
    assert (error["status_code"], error["detail"]) == (500, NON_2XX)
    assert status["last_attempt_at"] >= status["last_success_at"]
    assert status["last_attempt_at"] >= error["at"]
    logs = await stack.get(f"/v2/integrations/{integration_id}/logs")
    newest = logs["data"][0]["meta"]["timestamps"]["created_at"]
    assert status["last_attempt_at"] == newest
    assert status["links"]["self"] == f"http://hub.test/v2/integrations/{integration_id}/status"
    failed_logs = await stack.get(f"/v2/integrations/{integration_id}/logs?filter[succeeded]=false")
    assert failed_logs["meta"]["results"]["total"] == 2


async def test_the_status_of_an_integration_never_tried_has_nulls_and_zeros(
    api: Client, tenant: Tenant
) -> None:
    response = await api.post(
        "/v2/integrations", json=webhook_integration(enabled=False), headers=tenant.auth("manage")
    )
    integration_id = (await response.json())["data"]["id"]
    status = await api.get(f"/v2/integrations/{integration_id}/status", headers=tenant.auth("view"))
    assert status.status == 200
    data = (await status.json())["data"]
    assert data["enabled"] is False
    assert data["last_attempt_at"] is None
    assert data["last_success_at"] is None
    assert data["last_error"] is None
    assert data["attempts_1h"] == 0
    assert data["success_rate_1h"] is None
    assert set(data["jobs"].values()) == {0}


async def test_the_status_is_read_by_view_keys_and_only_in_the_own_store(
    api: Client, tenant: Tenant, other_tenant: Tenant
) -> None:
    response = await api.post(
        "/v2/integrations", json=webhook_integration(), headers=tenant.auth("manage")
    )
    path = f"/v2/integrations/{(await response.json())['data']['id']}/status"
    assert (await api.get(path, headers=tenant.auth("view"))).status == 200
    assert (await api.get(path, headers=tenant.auth("publish"))).status == 403
    assert (await api.get(path, headers=other_tenant.auth("view"))).status == 404
    assert (await api.get(path)).status == 401


# --- job filters -------------------------------------------------------------------------------


async def _publish(api: Client, tenant: Tenant, key: str) -> None:
    response = await api.post("/v2/events", json=event_body(key), headers=tenant.auth("publish"))
    assert response.status == 202


async def _job_keys(api: Client, tenant: Tenant, path: str, query: str) -> list[str]:
    response = await api.get(f"{path}?{query}", headers=tenant.auth("view"))
    assert response.status == 200, await response.text()
    return [job["triggered_by"] for job in (await response.json())["data"]]


async def test_jobs_filter_by_event_key_and_creation_time(api: Client, tenant: Tenant) -> None:
    response = await api.post(
        "/v2/integrations",
        json=webhook_integration(observes=["order.*"]),
        headers=tenant.auth("manage"),
    )
    path = f"/v2/integrations/{(await response.json())['data']['id']}/jobs"
    await _publish(api, tenant, "order.created")
    await _publish(api, tenant, "order.paid")
    await asyncio.sleep(0.01)
    between = datetime.now(UTC)
    await asyncio.sleep(0.01)
    await _publish(api, tenant, "order.created")
    stamp = between.isoformat().replace("+00:00", "Z")
    offset = between.astimezone().isoformat()  # the same instant in local time, with an offset

    assert await _job_keys(api, tenant, path, "filter[triggered_by]=order.paid") == ["order.paid"]
    both = "filter[triggered_by]=order.paid,order.created"
    assert len(await _job_keys(api, tenant, path, both)) == 3
    assert await _job_keys(api, tenant, path, f"filter[created_at][gte]={stamp}") == [
        "order.created"
    ]
    before = await _job_keys(api, tenant, path, f"filter[created_at][lte]={stamp}")
    assert before == ["order.paid", "order.created"]
    assert await _job_keys(api, tenant, path, f"filter[created_at][lte]={quote(offset)}") == before
    combined = f"filter[created_at][lte]={stamp}&filter[triggered_by]=order.created"
    assert await _job_keys(api, tenant, path, combined) == ["order.created"]
    with_status = f"filter[status]=pending&filter[created_at][gte]={stamp}"
    assert await _job_keys(api, tenant, path, with_status) == ["order.created"]
    assert await _job_keys(api, tenant, path, "filter[status]=failed") == []

    listed = await api.get(f"{path}?filter[triggered_by]=order.paid", headers=tenant.auth("view"))
    assert "filter[triggered_by]=order.paid" in (await listed.json())["links"]["self"]


@pytest.mark.parametrize(
    ("query", "source"),
    [
        ("filter[triggered_by]=order.*", "filter[triggered_by]"),
        ("filter[triggered_by]=,", "filter[triggered_by]"),
        ("filter[triggered_by]=Order.Paid", "filter[triggered_by]"),
        ("filter[created_at][gte]=yesterday", "filter[created_at][gte]"),
        ("filter[created_at][lte]=2026-11-22T10:00:00", "filter[created_at][lte]"),
        ("filter[created_at][gte]=", "filter[created_at][gte]"),
    ],
    ids=["a wildcard", "no key", "not a key", "not a time", "no offset", "empty"],
)
async def test_a_bad_job_filter_is_a_400_naming_it(
    api: Client, tenant: Tenant, query: str, source: str
) -> None:
    response = await api.post(
        "/v2/integrations", json=webhook_integration(), headers=tenant.auth("manage")
    )
    path = f"/v2/integrations/{(await response.json())['data']['id']}/jobs"
    bad = await api.get(f"{path}?{query}", headers=tenant.auth("view"))
    assert bad.status == 400
    [error] = (await bad.json())["errors"]
    assert error["source"] == source
    assert error["title"] == "Bad Request"
