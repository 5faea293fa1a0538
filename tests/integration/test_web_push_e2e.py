"""A `web_push` integration through the whole hub: the browser's subscription as configuration,
the store's VAPID key from the API, pushes the loopback push service decrypts, a 410 that
disables the integration, and a key rotation that the worker picks up at once."""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from deliverers.web_push import WebPushDeliverer
from tests.conftest import event_body, settings_for
from tests.support.push import PushService, push_service
from tests.support.stack import Stack, hub_stack
from tests.support.waiting import eventually

SUBJECT = "mailto:ops@hub.test"


@dataclass
class Env:
    stack: Stack
    service: PushService


@pytest.fixture
async def env(fresh_db: str, tmp_path: Path) -> AsyncIterator[Env]:
    settings = settings_for(fresh_db, vapid_subject=SUBJECT)
    async with push_service(tmp_path, subject=SUBJECT) as (service, context):
        deliverer = WebPushDeliverer(
            subject=settings.vapid_subject,
            timeout=5,
            ssl_context=context,
            allowed_networks=settings.allowed_networks,
        )
        async with hub_stack(fresh_db, settings, [deliverer]) as stack:
            yield Env(stack, service)


def web_push(subscription: dict[str, Any]) -> dict[str, Any]:
    return {
        "data": {
            "type": "integration",
            "name": "Back-office alerts",
            "enabled": True,
            "integration_type": "web_push",
            "observes": ["order.created"],
            "configuration": subscription,
        }
    }


async def vapid_key(stack: Stack, role: str = "publish") -> str:
    document = await stack.get("/v2/push/vapid-key", role=role)
    assert document["data"]["type"] == "vapid-key"
    key: str = document["data"]["public_key"]
    return key


async def test_a_browser_subscription_receives_the_event_signed_with_the_stores_key(
    env: Env,
) -> None:
    key = await vapid_key(env.stack)
    env.service.vapid_key = key
    subscription = env.service.subscription()
    integration_id = await env.stack.create_integration(web_push(subscription))
    await env.stack.publish(event_body())
    env.stack.start_worker()

    async def pushed() -> bool:
        return bool(env.service.pushes)

    await eventually(pushed)
    [job] = await env.stack.jobs(integration_id)
    shown = await env.stack.integration(integration_id)
    stored = await env.stack.scalar(
        "SELECT configuration FROM integrations WHERE id = :id", id=integration_id
    )
    private = await env.stack.scalar("SELECT private_key FROM vapid_keys")

    assert env.service.refused == []
    document = env.service.pushes[0].document
    assert document["id"] == job["id"]
    assert document["payload"] == event_body()["data"]["payload"]
    assert len(key) == 87  # 65 bytes, base64url without padding
    assert await vapid_key(env.stack, role="view") == key  # the same key for every role
    auth = subscription["keys"]["auth"]
    assert shown["configuration"]["keys"]["auth"] == "*" * (len(auth) - 4) + auth[-4:]
    assert shown["configuration"]["keys"]["p256dh"] == subscription["keys"]["p256dh"]
    assert shown["configuration"]["ttl"] == 86400
    assert set(stored["keys"]["auth"]) == {"$enc"}
    assert auth not in str(stored)
    assert private.startswith("enc:v1:")


async def test_a_410_fails_the_job_and_disables_the_integration(env: Env) -> None:
    env.service.vapid_key = await vapid_key(env.stack)
    env.service.answer = (410, {})
    integration_id = await env.stack.create_integration(web_push(env.service.subscription()))
    await env.stack.publish(event_body())
    env.stack.start_worker()

    async def disabled() -> bool:
        return not (await env.stack.integration(integration_id))["enabled"]

    await eventually(disabled)
    [job] = await env.stack.jobs(integration_id)
    [log] = await env.stack.job_logs(integration_id, job["id"])
    integration = await env.stack.integration(integration_id)

    assert job["status"] == "failed"
    assert log["status_code"] == 410
    assert "the push subscription has expired or was unsubscribed" in log["error_detail"]
    assert integration["disabled_reason"] == (
        f"Disabled after the endpoint answered 410 Gone to job {job['id']}"
    )


async def test_a_rotated_key_signs_the_next_push(env: Env) -> None:
    first = await vapid_key(env.stack)
    env.service.vapid_key = None  # accept any key; the test compares them
    integration_id = await env.stack.create_integration(web_push(env.service.subscription()))
    env.stack.start_worker()
    await env.stack.publish(event_body())

    async def pushes(n: int) -> bool:
        return len(env.service.pushes) >= n

    await eventually(lambda: pushes(1))
    resp = await env.stack.client.post(
        "/v2/push/vapid-key/rotate", headers=env.stack.tenant.auth("manage")
    )
    assert resp.status == 200, await resp.text()
    second = (await resp.json())["data"]["public_key"]
    await env.stack.publish(event_body())
    await eventually(lambda: pushes(2))
    refused = await env.stack.client.post(
        "/v2/push/vapid-key/rotate", headers=env.stack.tenant.auth("publish")
    )

    def signed_with(index: int) -> str:
        header = env.service.pushes[index].headers["Authorization"]
        return header.rsplit("k=", 1)[1].strip()

    assert second != first
    assert signed_with(0) == first
    assert signed_with(1) == second
    assert await vapid_key(env.stack) == second
    assert refused.status == 403
    assert integration_id
