"""Rotating a webhook signing secret: a new secret at once, the old one still signing during
the grace period (two Standard Webhooks signatures), then only the new one."""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from sqlalchemy import text
from standardwebhooks.webhooks import Webhook, WebhookVerificationError

from deliverers.webhook import WebhookDeliverer
from hub.ssrf import LOOPBACK
from tests.conftest import event_body, settings_for, webhook_integration
from tests.support.sinks import Recorder, sink_server
from tests.support.stack import Stack, hub_stack
from tests.support.waiting import eventually


@dataclass
class Env:
    stack: Stack
    sink: Recorder
    integration: str


async def _env(fresh_db: str, **overrides: Any) -> AsyncIterator[Env]:
    sink = Recorder()
    settings = settings_for(fresh_db, **overrides)
    async with (
        sink_server(sink.handle) as url,
        hub_stack(
            fresh_db, settings, [WebhookDeliverer(timeout=2, allowed_networks=LOOPBACK)]
        ) as stack,
    ):
        integration = await stack.create_integration(webhook_integration(url))
        stack.start_worker()
        yield Env(stack, sink, integration)


@pytest.fixture
async def env(fresh_db: str) -> AsyncIterator[Env]:
    async for value in _env(fresh_db):
        yield value


@pytest.fixture
async def env_without_grace(fresh_db: str) -> AsyncIterator[Env]:
    async for value in _env(fresh_db, signing_secret_grace="0s"):
        yield value


async def rotate(env: Env) -> dict[str, Any]:
    resp = await env.stack.client.post(
        f"/v2/integrations/{env.integration}/secret/rotate",
        headers=env.stack.tenant.auth("manage"),
    )
    assert resp.status == 200, await resp.text()
    data: dict[str, Any] = (await resp.json())["data"]
    return data


async def secret(env: Env) -> dict[str, Any]:
    data: dict[str, Any] = (
        await env.stack.get(f"/v2/integrations/{env.integration}/secret", role="manage")
    )["data"]
    return data


async def delivered(env: Env) -> tuple[dict[str, str], bytes]:
    """Publish one event and return the request it arrived as."""
    before = len(env.sink.requests)
    await env.stack.publish(event_body())

    async def arrived() -> bool:
        return len(env.sink.requests) > before

    await eventually(arrived)
    return env.sink.requests[-1]


def verifies(secret: str, request: tuple[dict[str, str], bytes]) -> bool:
    headers, body = request
    try:
        Webhook(secret).verify(body, headers)
    except WebhookVerificationError:
        return False
    return True


def parse_ts(value: str) -> datetime:
    return datetime.fromisoformat(value.replace("Z", "+00:00"))


async def test_rotating_answers_a_new_secret_and_the_old_one_keeps_signing_for_a_day(
    env: Env,
) -> None:
    old = (await secret(env))["secret"]
    assert (await secret(env))["previous_secret_expires_at"] is None

    rotated = await rotate(env)

    new = rotated["secret"]
    assert rotated["type"] == "integration-secret"
    assert new.startswith("whsec_")
    assert new != old
    expires = parse_ts(rotated["previous_secret_expires_at"])
    assert abs(expires - (datetime.now(UTC) + timedelta(hours=24))) < timedelta(minutes=1)
    assert await secret(env) == rotated
    request = await delivered(env)
    assert len(request[0]["webhook-signature"].split(" ")) == 2
    assert verifies(new, request)
    assert verifies(old, request)  # consumers not yet switched still verify


async def test_after_the_grace_period_only_the_new_secret_signs(env: Env) -> None:
    old = (await secret(env))["secret"]
    new = (await rotate(env))["secret"]
    async with env.stack.engine.begin() as conn:
        await conn.execute(
            text(
                "UPDATE integrations SET previous_signing_secret_expires_at = now() - interval "
                "'1 second' WHERE id = :id"
            ),
            {"id": env.integration},
        )

    request = await delivered(env)

    assert len(request[0]["webhook-signature"].split(" ")) == 1
    assert verifies(new, request)
    assert not verifies(old, request)
    assert (await secret(env))["previous_secret_expires_at"] is None


async def test_rotating_again_keeps_only_the_last_replaced_secret(env: Env) -> None:
    first = (await secret(env))["secret"]
    second = (await rotate(env))["secret"]
    third = (await rotate(env))["secret"]

    request = await delivered(env)

    assert verifies(third, request)
    assert verifies(second, request)
    assert not verifies(first, request)


async def test_without_a_grace_period_the_old_secret_stops_at_once(env_without_grace: Env) -> None:
    env = env_without_grace
    old = (await secret(env))["secret"]

    rotated = await rotate(env)

    assert rotated["previous_secret_expires_at"] is None
    request = await delivered(env)
    assert verifies(rotated["secret"], request)
    assert not verifies(old, request)


async def test_the_replaced_secret_is_stored_encrypted_too(env: Env) -> None:
    old = (await secret(env))["secret"]
    await rotate(env)

    stored = await env.stack.scalar(
        "SELECT previous_signing_secret FROM integrations WHERE id = :id", id=env.integration
    )

    assert stored.startswith("enc:v1:")
    assert old not in stored


@pytest.mark.parametrize("role", ["view", "publish"])
async def test_only_keys_that_may_change_integrations_can_rotate(env: Env, role: str) -> None:
    before = await secret(env)

    resp = await env.stack.client.post(
        f"/v2/integrations/{env.integration}/secret/rotate", headers=env.stack.tenant.auth(role)
    )

    assert resp.status == 403
    assert await secret(env) == before
