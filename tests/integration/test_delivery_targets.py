"""A running worker keeps each integration's delivery target built (secrets decrypted, the
configuration validated) and rebuilds it when the integration changes: every change takes
effect at the next delivery, through the real path (API → database → claim → webhook)."""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any
from uuid import UUID, uuid4

import pytest
from pydantic import ValidationError
from sqlalchemy import text
from standardwebhooks.webhooks import Webhook, WebhookVerificationError

from deliverers.config import WebhookConfig
from deliverers.webhook import WebhookDeliverer
from hub import crypto
from hub.dispatch.targets import Targets
from hub.ssrf import LOOPBACK
from hub.store.claiming import ClaimedJob
from tests.conftest import event_body, settings_for, webhook_integration
from tests.support.sinks import Recorder, sink_server
from tests.support.stack import Stack, hub_stack
from tests.support.waiting import eventually


@dataclass
class Env:
    stack: Stack
    first: Recorder
    first_url: str
    second: Recorder
    second_url: str
    integration: str


@pytest.fixture
async def env(fresh_db: str) -> AsyncIterator[Env]:
    first, second = Recorder(), Recorder()
    settings = settings_for(fresh_db)
    async with (
        sink_server(first.handle) as first_url,
        sink_server(second.handle) as second_url,
        hub_stack(
            fresh_db, settings, [WebhookDeliverer(timeout=2, allowed_networks=LOOPBACK)]
        ) as stack,
    ):
        integration = await stack.create_integration(webhook_integration(first_url))
        stack.start_worker()
        yield Env(stack, first, first_url, second, second_url, integration)


async def delivered(env: Env, sink: Recorder) -> tuple[dict[str, str], bytes]:
    """Publish one event; the request it arrived as at `sink`."""
    before = len(sink.requests)
    await env.stack.publish(event_body())

    async def arrived() -> bool:
        return len(sink.requests) > before

    await eventually(arrived)
    return sink.requests[-1]


async def signing_secret(env: Env) -> str:
    document = await env.stack.get(f"/v2/integrations/{env.integration}/secret", role="manage")
    value: str = document["data"]["secret"]
    return value


async def rotate(env: Env) -> str:
    resp = await env.stack.client.post(
        f"/v2/integrations/{env.integration}/secret/rotate",
        headers=env.stack.tenant.auth("manage"),
    )
    assert resp.status == 200, await resp.text()
    value: str = (await resp.json())["data"]["secret"]
    return value


def verifies(secret: str, request: tuple[dict[str, str], bytes]) -> bool:
    headers, body = request
    try:
        Webhook(secret).verify(body, headers)
    except WebhookVerificationError:
        return False
    return True


def signatures(request: tuple[dict[str, str], bytes]) -> int:
    return len(request[0]["webhook-signature"].split(" "))


async def test_a_configuration_update_takes_effect_at_the_next_delivery(env: Env) -> None:
    before = await delivered(env, env.first)
    assert before[0]["X-MOLTIN-SECRET-KEY"] == "very-secret-value"

    resp = await env.stack.client.put(
        f"/v2/integrations/{env.integration}",
        json={
            "data": {
                "type": "integration",
                "name": "Renamed hook",
                "configuration": {"url": env.second_url, "secret_key": "rotated-secret-4321"},
            }
        },
        headers=env.stack.tenant.auth("manage"),
    )
    assert resp.status == 200, await resp.text()

    headers, body = await delivered(env, env.second)
    assert headers["X-MOLTIN-SECRET-KEY"] == "rotated-secret-4321"
    assert b'"name":"Renamed hook"' in body
    assert len(env.first.requests) == 1, "nothing more went to the old URL"


async def test_a_rotated_signing_secret_signs_the_next_delivery(env: Env) -> None:
    old = await signing_secret(env)
    assert signatures(await delivered(env, env.first)) == 1

    new = await rotate(env)

    request = await delivered(env, env.first)
    assert signatures(request) == 2
    assert verifies(new, request)
    assert verifies(old, request)


async def test_the_previous_secret_stops_signing_when_its_grace_period_ends(env: Env) -> None:
    old = await signing_secret(env)
    new = await rotate(env)
    assert signatures(await delivered(env, env.first)) == 2
    # The grace period ends without any change to the row's `updated_at`.
    async with env.stack.engine.begin() as conn:
        await conn.execute(
            text(
                "UPDATE integrations SET previous_signing_secret_expires_at = now() - interval "
                "'1 second' WHERE id = :id"
            ),
            {"id": env.integration},
        )

    request = await delivered(env, env.first)

    assert signatures(request) == 1
    assert verifies(new, request)
    assert not verifies(old, request)


# --- the cache itself --------------------------------------------------------------------------


def claimed(
    integration_id: UUID,
    *,
    updated_at: datetime,
    configuration: dict[str, Any] | None = None,
    previous_signing_secret: str | None = None,
) -> ClaimedJob:
    return ClaimedJob(
        id=uuid4(),
        store_id=uuid4(),
        event_id=uuid4(),
        integration_id=integration_id,
        triggered_by="order.created",
        attempt=1,
        payload={"data": {}},
        event_time=updated_at,
        integration_name="Order hook",
        integration_description=None,
        integration_type="webhook",
        configuration=configuration or {"url": "https://example.com/hook"},
        signing_secret=crypto.seal_text("whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"),
        previous_signing_secret=previous_signing_secret,
        integration_live=True,
        rate_limit=None,
        integration_tripped=False,
        integration_updated_at=updated_at,
    )


async def test_a_target_is_built_once_per_version_of_its_integration(
    secrets_keyring: crypto.Keyring,
) -> None:
    targets = Targets()
    integration = uuid4()
    at = datetime.now(UTC)

    first = await targets.get(claimed(integration, updated_at=at))
    again = await targets.get(claimed(integration, updated_at=at))
    changed = await targets.get(
        claimed(
            integration,
            updated_at=at + timedelta(microseconds=1),
            configuration={"url": "https://example.com/other"},
        )
    )
    previous = secrets_keyring.seal_text("whsec_" + "QUJDREVGR0hJSktMTU5PUA==")
    lapsing = await targets.get(
        claimed(
            integration, updated_at=at + timedelta(microseconds=1), previous_signing_secret=previous
        )
    )

    assert again is first
    assert isinstance(changed.configuration, WebhookConfig)
    assert changed.configuration.url == "https://example.com/other"
    assert first.signing_secrets == ("whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw",)
    assert len(lapsing.signing_secrets) == 2, "a previous secret is part of the version"
    assert len(targets) == 1, "one target per integration"


async def test_the_least_recently_used_target_goes_first_when_the_cache_is_full() -> None:
    targets = Targets(size=2)
    at = datetime.now(UTC)
    a, b, c = uuid4(), uuid4(), uuid4()
    kept = await targets.get(claimed(a, updated_at=at))
    await targets.get(claimed(b, updated_at=at))
    await targets.get(claimed(a, updated_at=at))  # a is used again: b is now the oldest

    await targets.get(claimed(c, updated_at=at))

    assert len(targets) == 2
    assert await targets.get(claimed(a, updated_at=at)) is kept


async def test_a_target_that_cannot_be_built_is_not_kept() -> None:
    targets = Targets()
    integration = uuid4()
    at = datetime.now(UTC)
    broken = claimed(integration, updated_at=at, configuration={"url": 42})

    for _ in range(2):
        with pytest.raises(ValidationError):
            await targets.get(broken)

    assert len(targets) == 0
