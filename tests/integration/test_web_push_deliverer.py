"""Contract tests of the Web Push deliverer against a loopback push service that checks every
push as a real one would (tests/support/push.py): the VAPID JWT (ES256, `aud`, `exp`, `sub`)
and the aes128gcm body, decrypted with the browser's own keys. Also: what 404, 410 and 429 mean,
the trimming of bodies over the push limit, and the SSRF guard."""

from __future__ import annotations

import ssl
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from uuid import uuid4

import pytest

from deliverers.base import Delivery, Target, VapidKey
from deliverers.config import WebPushConfig
from deliverers.web_push import MAX_PLAINTEXT, WebPushDeliverer, generate_key_pair
from deliverers.web_push.deliverer import NO_SUBJECT
from deliverers.webhook import body_document
from hub.retry import Fail, Retry, decide
from hub.ssrf import LOOPBACK
from tests.support.push import PushService, push_service

SUBJECT = "mailto:ops@hub.test"


@dataclass
class Env:
    service: PushService
    context: ssl.SSLContext
    key: VapidKey
    deliverer: WebPushDeliverer


@pytest.fixture
async def env(tmp_path: Path) -> AsyncIterator[Env]:
    async with push_service(tmp_path, subject=SUBJECT) as (service, context):
        key = generate_key_pair()
        service.vapid_key = key.public_key
        deliverer = WebPushDeliverer(
            subject=SUBJECT, timeout=5, ssl_context=context, allowed_networks=LOOPBACK
        )
        await deliverer.open()
        try:
            yield Env(service, context, key, deliverer)
        finally:
            await deliverer.aclose()


def delivery(
    env: Env,
    payload: dict[str, Any] | None = None,
    *,
    key: str = "order.paid",
    vapid: VapidKey | None = None,
    **options: Any,
) -> Delivery:
    config = WebPushConfig.model_validate(env.service.subscription(**options))
    return Delivery(
        job_id=uuid4(),
        attempt=1,
        event_id=uuid4(),
        triggered_by=key,
        payload=payload or {"data": {"type": "order", "id": "o-1", "status": "paid"}},
        event_time=datetime(2026, 12, 2, 10, 0, tzinfo=UTC),
        target=Target(
            id=uuid4(),
            store_id=uuid4(),
            name="Order alerts",
            description="to the shop's back office",
            integration_type="web_push",
            configuration=config,
            signing_secrets=(),
            vapid=vapid or env.key,
        ),
    )


async def test_a_push_is_the_webhook_body_encrypted_for_the_browser_and_vapid_signed(
    env: Env,
) -> None:
    sent = delivery(env, urgency="high", topic="orders")

    result = await env.deliverer.deliver(sent)

    assert result.succeeded, result.error_detail
    assert result.status_code == 201
    assert env.service.refused == []
    [push] = env.service.pushes
    assert push.document == body_document(sent)
    assert push.claims["aud"] == env.service.origin
    assert push.claims["sub"] == SUBJECT
    assert push.claims["exp"] > (datetime.now(UTC) + timedelta(hours=11)).timestamp()
    assert push.headers["TTL"] == "86400"  # a day, by default
    assert push.headers["Urgency"] == "high"
    assert push.headers["Topic"] == "orders"
    assert push.headers["Content-Type"] == "application/octet-stream"
    assert push.body_size <= 4096


async def test_a_push_signed_with_another_key_is_refused_by_the_service(env: Env) -> None:
    result = await env.deliverer.deliver(delivery(env, vapid=generate_key_pair()))

    assert not result.succeeded
    assert result.status_code == 400
    assert env.service.refused == ["Refused: signed with another key than the subscription's"]


@pytest.mark.parametrize(("status", "name"), [(410, "410 Gone"), (404, "404 Not Found")])
async def test_a_subscription_the_service_says_is_gone_fails_as_gone(
    env: Env, status: int, name: str
) -> None:
    env.service.answer = (status, {})

    result = await env.deliverer.deliver(delivery(env, ttl=60))
    decision = decide(
        attempt=1,
        succeeded=result.succeeded,
        status_code=result.status_code,
        retry_after=result.retry_after,
        schedule=(timedelta(seconds=5),),
        gone=result.gone,
    )

    assert not result.succeeded
    assert result.gone
    assert result.status_code == status
    assert result.error_detail is not None
    assert result.error_detail.startswith(f"The push service answered {name}: the push ")
    assert decision == Fail(f"the endpoint answered {name}", disable_integration=True)
    assert env.service.pushes[0].headers["TTL"] == "60"


async def test_a_429_is_retried_no_sooner_than_its_retry_after(env: Env) -> None:
    env.service.answer = (429, {"Retry-After": "120"})

    result = await env.deliverer.deliver(delivery(env))
    decision = decide(
        attempt=1,
        succeeded=result.succeeded,
        status_code=result.status_code,
        retry_after=result.retry_after,
        schedule=(timedelta(seconds=5),),
        gone=result.gone,
    )

    assert not result.succeeded
    assert not result.gone
    assert result.retry_after == 120
    assert result.error_detail == (
        "The push service answered 429 Too Many Requests; retrying after 120 s"
    )
    assert isinstance(decision, Retry)
    assert decision.delay >= timedelta(seconds=120)


def _sized(included: int, data: int) -> dict[str, Any]:
    return {
        "data": {"type": "order", "id": "o-9", "notes": "d" * data},
        "included": {"items": [{"type": "cart_item", "id": "i-1", "notes": "i" * included}]},
    }


@pytest.mark.parametrize(
    ("payload", "trimmed"),
    [
        (_sized(included=10, data=2500), ["resources"]),
        (_sized(included=4000, data=100), ["resources", "payload.included"]),
        (
            _sized(included=100, data=6000),
            ["resources", "payload.included", "payload.data", "integration"],
        ),
    ],
    ids=["resources", "included", "stub"],
)
async def test_a_body_over_the_push_limit_is_trimmed_step_by_step(
    env: Env, payload: dict[str, Any], trimmed: list[str]
) -> None:
    sent = delivery(env, payload)
    whole = body_document(sent)

    result = await env.deliverer.deliver(sent)

    assert result.succeeded, result.error_detail
    [push] = env.service.pushes
    document = push.document
    assert len(push.plaintext) <= MAX_PLAINTEXT
    assert push.body_size <= 4096
    assert document["trimmed"] == trimmed
    assert document["id"] == whole["id"]
    assert document["triggered_by"] == "order.paid"
    assert document["integration"]["id"] == whole["integration"]["id"]
    assert "resources" not in document
    if "payload.data" in trimmed:
        assert document["payload"] == {"data": {"type": "order", "id": "o-9"}}
        assert set(document["integration"]) == {"id", "integration_type"}
    else:
        assert document["payload"]["data"] == payload["data"]
        assert ("included" in document["payload"]) == ("payload.included" not in trimmed)


async def test_a_stub_that_still_does_not_fit_fails_without_sending(env: Env) -> None:
    result = await env.deliverer.deliver(delivery(env, {"data": {"type": "o", "id": "x" * 5000}}))

    assert not result.succeeded
    assert result.error_detail is not None
    assert result.error_detail.startswith("The event does not fit a push message even as a stub")
    assert env.service.pushes == []


async def test_a_loopback_endpoint_is_refused_unless_its_network_is_allowed(env: Env) -> None:
    strict = WebPushDeliverer(subject=SUBJECT, timeout=5, ssl_context=env.context)
    await strict.open()
    try:
        result = await strict.deliver(delivery(env))
    finally:
        await strict.aclose()

    assert not result.succeeded
    assert result.error_detail is not None
    assert result.error_detail.startswith("Refused to connect to 127.0.0.1: loopback")
    assert env.service.pushes == []
    assert env.service.refused == []


async def test_without_a_vapid_subject_every_attempt_says_so(env: Env) -> None:
    unsigned = WebPushDeliverer(
        subject=None, timeout=5, ssl_context=env.context, allowed_networks=LOOPBACK
    )
    await unsigned.open()
    try:
        result = await unsigned.deliver(delivery(env))
    finally:
        await unsigned.aclose()

    assert result.error_detail == NO_SUBJECT
    assert env.service.pushes == []


async def test_an_untrusted_certificate_is_a_tls_failure(env: Env) -> None:
    default = WebPushDeliverer(subject=SUBJECT, timeout=5, allowed_networks=LOOPBACK)
    await default.open()
    try:
        result = await default.deliver(delivery(env))
    finally:
        await default.aclose()

    assert result.error_detail is not None
    assert result.error_detail.startswith("TLS handshake with 127.0.0.1:")
    assert "certificate verify failed" in result.error_detail
