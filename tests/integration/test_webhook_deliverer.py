"""Contract tests of the webhook deliverer against real aiohttp servers on loopback."""

from __future__ import annotations

import asyncio
import base64
import json
import os
import socket
import ssl
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from email.utils import format_datetime
from typing import Any
from uuid import UUID, uuid4

import pytest
import structlog
from aiohttp import web
from aiohttp.test_utils import TestServer
from standardwebhooks.webhooks import Webhook, WebhookVerificationError

from deliverers.base import BODY_LIMIT, Delivery, DeliveryResult, Target
from deliverers.config import WebhookConfig
from deliverers.webhook import NON_2XX_DETAIL, WebhookDeliverer, parse_retry_after
from hub.ssrf import LOOPBACK
from tests.tls import self_signed_certificate

PAYLOAD: dict[str, Any] = {
    "data": {"type": "order", "id": "1d67160d-0000-4000-8000-000000000001", "status": "paid"},
    "included": {"items": [{"type": "order_item", "id": "395763ee", "name": "Caf\u00e9"}]},
}
LONG_BODY = "".join(chr(ord("a") + i % 26) for i in range(10_000))


# --- helpers ---------------------------------------------------------------------------------


def new_secret() -> str:
    return "whsec_" + base64.b64encode(os.urandom(24)).decode()


def make_target(
    url: str,
    *,
    secret_key: str | None = None,
    signing_secrets: tuple[str, ...] | None = None,
    description: str | None = "Tell the warehouse",
) -> Target:
    return Target(
        id=uuid4(),
        store_id=uuid4(),
        name="Order paid notification",
        description=description,
        integration_type="webhook",
        configuration=WebhookConfig(url=url, secret_key=secret_key),
        signing_secrets=(new_secret(),) if signing_secrets is None else signing_secrets,
    )


def make_delivery(
    target: Target,
    *,
    triggered_by: str = "order.paid",
    attempt: int = 1,
    payload: dict[str, Any] | None = None,
    job_id: UUID | None = None,
) -> Delivery:
    return Delivery(
        job_id=job_id or uuid4(),
        attempt=attempt,
        event_id=uuid4(),
        triggered_by=triggered_by,
        payload=PAYLOAD if payload is None else payload,
        event_time=datetime.now(UTC),
        target=target,
    )


@dataclass(frozen=True)
class Received:
    path: str
    headers: dict[str, str]
    body: bytes


@dataclass
class Endpoint:
    """A loopback server whose routes answer in the ways a webhook endpoint can."""

    server: TestServer
    release: asyncio.Event
    received: list[Received] = field(default_factory=list)

    def url(self, path: str, *, scheme: str = "http") -> str:
        return f"{scheme}://127.0.0.1:{self.server.port}{path}"

    def paths(self) -> list[str]:
        return [request.path for request in self.received]


def closed_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
    return port


# --- fixtures --------------------------------------------------------------------------------


@pytest.fixture
async def endpoint() -> AsyncIterator[Endpoint]:
    release = asyncio.Event()
    app = web.Application()
    endpoint = Endpoint(server=TestServer(app, host="127.0.0.1"), release=release)

    async def record(request: web.Request) -> None:
        endpoint.received.append(
            Received(request.path, dict(request.headers), await request.read())
        )

    async def ok(request: web.Request) -> web.StreamResponse:
        await record(request)
        return web.Response(text="thanks")

    async def status(request: web.Request) -> web.StreamResponse:
        await record(request)
        return web.Response(status=int(request.match_info["code"]), text=LONG_BODY)

    async def retry_after_seconds(request: web.Request) -> web.StreamResponse:
        return web.Response(status=429, text="slow down", headers={"Retry-After": "7"})

    async def retry_after_date(request: web.Request) -> web.StreamResponse:
        when = datetime.now(UTC) + timedelta(seconds=30)
        headers = {"Retry-After": format_datetime(when, usegmt=True)}
        return web.Response(status=503, text="maintenance", headers=headers)

    async def slow(request: web.Request) -> web.StreamResponse:
        await release.wait()
        return web.Response(text="too late")

    async def stalled_body(request: web.Request) -> web.StreamResponse:
        response = web.StreamResponse()
        await response.prepare(request)
        await response.write(b"partial")
        await release.wait()
        return response

    async def endless(request: web.Request) -> web.StreamResponse:
        response = web.StreamResponse()
        await response.prepare(request)
        chunk = b"y" * 65536
        try:
            for _ in range(2_000):  # 128 MiB: far more than a bounded reader takes
                await response.write(chunk)
        except ConnectionError:
            pass
        return response

    async def redirect(request: web.Request) -> web.StreamResponse:
        await record(request)
        raise web.HTTPFound("/landing")

    app.router.add_post("/ok", ok)
    app.router.add_post("/landing", ok)
    app.router.add_post("/status/{code}", status)
    app.router.add_post("/retry-after-seconds", retry_after_seconds)
    app.router.add_post("/retry-after-date", retry_after_date)
    app.router.add_post("/slow", slow)
    app.router.add_post("/stalled-body", stalled_body)
    app.router.add_post("/endless", endless)
    app.router.add_post("/redirect", redirect)

    await endpoint.server.start_server()
    try:
        yield endpoint
    finally:
        release.set()
        await endpoint.server.close()


@pytest.fixture(scope="session")
def self_signed(tmp_path_factory: pytest.TempPathFactory) -> ssl.SSLContext:
    """A server TLS context with a self-signed certificate for 127.0.0.1."""
    cert, key = self_signed_certificate(tmp_path_factory.mktemp("tls"))
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.load_cert_chain(cert, key)
    return context


@pytest.fixture
async def tls_endpoint(self_signed: ssl.SSLContext) -> AsyncIterator[str]:
    """The URL of an HTTPS route whose certificate nobody trusts."""
    app = web.Application()

    async def ok(request: web.Request) -> web.StreamResponse:
        return web.Response(text="thanks")

    app.router.add_post("/ok", ok)
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0, ssl_context=self_signed)
    await site.start()
    try:
        host, port = runner.addresses[0][:2]
        yield f"https://{host}:{port}/ok"
    finally:
        await runner.cleanup()


@pytest.fixture
async def deliverer() -> AsyncIterator[WebhookDeliverer]:
    deliverer = WebhookDeliverer(timeout=2.0, allowed_networks=LOOPBACK)
    await deliverer.open()
    try:
        yield deliverer
    finally:
        await deliverer.aclose()


@pytest.fixture
async def impatient_deliverer() -> AsyncIterator[WebhookDeliverer]:
    deliverer = WebhookDeliverer(timeout=0.3, allowed_networks=LOOPBACK)
    await deliverer.open()
    try:
        yield deliverer
    finally:
        await deliverer.aclose()


async def deliver_to(deliverer: WebhookDeliverer, url: str, **target: Any) -> DeliveryResult:
    return await deliverer.deliver(make_delivery(make_target(url, **target)))


# --- outcomes --------------------------------------------------------------------------------


async def test_a_2xx_answer_is_a_success_with_the_body_kept(
    deliverer: WebhookDeliverer, endpoint: Endpoint
) -> None:
    result = await deliver_to(deliverer, endpoint.url("/ok"))

    assert result.succeeded
    assert result.status_code == 200
    assert result.body == "thanks"
    assert result.error_detail is None
    assert result.retry_after is None
    assert 0 < result.duration < 2
    assert endpoint.paths() == ["/ok"]


@pytest.mark.parametrize("code", [400, 404, 500, 503])
async def test_a_4xx_or_5xx_answer_is_a_failure_with_eps_text_and_a_truncated_body(
    deliverer: WebhookDeliverer, endpoint: Endpoint, code: int
) -> None:
    result = await deliver_to(deliverer, endpoint.url(f"/status/{code}"))

    assert not result.succeeded
    assert result.status_code == code
    assert result.error_detail == NON_2XX_DETAIL
    assert result.error_detail == (
        "Received a status code outside of 2xx range - treating webhook as a fail"
    )
    assert result.body == LONG_BODY[:BODY_LIMIT]
    assert len(result.body) == 4096


async def test_a_410_answer_is_a_failure_with_the_status_kept(
    deliverer: WebhookDeliverer, endpoint: Endpoint
) -> None:
    result = await deliver_to(deliverer, endpoint.url("/status/410"))

    assert not result.succeeded
    assert result.status_code == 410
    assert result.error_detail == NON_2XX_DETAIL


async def test_a_429_with_retry_after_seconds_reports_how_long_to_wait(
    deliverer: WebhookDeliverer, endpoint: Endpoint
) -> None:
    result = await deliver_to(deliverer, endpoint.url("/retry-after-seconds"))

    assert not result.succeeded
    assert result.status_code == 429
    assert result.retry_after == 7
    assert result.body == "slow down"


async def test_a_retry_after_http_date_becomes_seconds_from_now(
    deliverer: WebhookDeliverer, endpoint: Endpoint
) -> None:
    result = await deliver_to(deliverer, endpoint.url("/retry-after-date"))

    assert result.status_code == 503
    assert result.retry_after is not None
    assert 25 <= result.retry_after <= 30


def test_retry_after_in_the_past_or_unparseable_is_clamped_or_ignored() -> None:
    now = datetime(2026, 1, 1, 12, 0, tzinfo=UTC)
    assert parse_retry_after("Wed, 31 Dec 2025 12:00:00 GMT", now=now) == 0.0
    assert parse_retry_after("Thu, 01 Jan 2026 12:01:00 GMT", now=now) == 60.0
    assert parse_retry_after(" 120 ", now=now) == 120.0
    assert parse_retry_after("soon", now=now) is None
    assert parse_retry_after("-5", now=now) is None
    assert parse_retry_after(None) is None


async def test_a_server_slower_than_the_timeout_is_a_timeout_failure(
    impatient_deliverer: WebhookDeliverer, endpoint: Endpoint
) -> None:
    started = time.perf_counter()
    result = await deliver_to(impatient_deliverer, endpoint.url("/slow"))

    assert time.perf_counter() - started < 1.5
    assert not result.succeeded
    assert result.status_code is None
    assert result.error_detail == "Timed out after 0.3 s waiting for the webhook to respond"


async def test_a_body_that_stalls_past_the_timeout_is_a_timeout_failure_even_after_a_200(
    impatient_deliverer: WebhookDeliverer, endpoint: Endpoint
) -> None:
    result = await deliver_to(impatient_deliverer, endpoint.url("/stalled-body"))

    assert not result.succeeded
    assert result.error_detail == "Timed out after 0.3 s waiting for the webhook to respond"


async def test_an_endless_body_is_read_only_up_to_the_limit(
    deliverer: WebhookDeliverer, endpoint: Endpoint
) -> None:
    result = await deliver_to(deliverer, endpoint.url("/endless"))

    assert result.succeeded
    assert result.body == "y" * BODY_LIMIT


async def test_a_closed_port_is_a_connection_refused_failure(
    deliverer: WebhookDeliverer,
) -> None:
    port = closed_port()
    result = await deliver_to(
        deliverer, f"http://127.0.0.1:{port}/hook", secret_key="secret_squirrel"
    )

    assert not result.succeeded
    assert result.status_code is None
    assert result.error_detail == f"Connection refused by 127.0.0.1:{port}"


async def test_a_redirect_is_not_followed_and_is_a_failure(
    deliverer: WebhookDeliverer, endpoint: Endpoint
) -> None:
    result = await deliver_to(deliverer, endpoint.url("/redirect"))

    assert not result.succeeded
    assert result.status_code == 302
    assert result.error_detail == NON_2XX_DETAIL
    assert endpoint.paths() == ["/redirect"]


async def test_an_unresolvable_host_is_a_dns_failure(deliverer: WebhookDeliverer) -> None:
    result = await deliver_to(deliverer, "http://nonexistent.invalid/hook")

    assert not result.succeeded
    assert result.status_code is None
    assert result.error_detail == "Could not resolve host nonexistent.invalid"


async def test_https_to_a_plain_http_server_is_a_tls_failure(
    deliverer: WebhookDeliverer, endpoint: Endpoint
) -> None:
    result = await deliver_to(deliverer, endpoint.url("/ok", scheme="https"))

    assert not result.succeeded
    assert result.status_code is None
    assert result.error_detail is not None
    assert result.error_detail.startswith(
        f"TLS handshake with 127.0.0.1:{endpoint.server.port} failed: "
    )
    assert result.error_detail.partition(" failed: ")[2]  # the reason is named
    assert endpoint.paths() == []


async def test_an_untrusted_certificate_is_a_tls_failure(
    deliverer: WebhookDeliverer, tls_endpoint: str
) -> None:
    result = await deliver_to(deliverer, tls_endpoint)

    assert not result.succeeded
    assert result.error_detail is not None
    assert result.error_detail.startswith("TLS handshake with 127.0.0.1:")
    assert "certificate verify failed" in result.error_detail


# --- what is sent ----------------------------------------------------------------------------


async def test_the_body_is_eps_webhook_document(
    deliverer: WebhookDeliverer, endpoint: Endpoint
) -> None:
    target = make_target(endpoint.url("/ok"))
    delivery = make_delivery(target, attempt=3)

    await deliverer.deliver(delivery)

    [received] = endpoint.received
    body = json.loads(received.body)
    assert body == {
        "id": str(delivery.job_id),
        "triggered_by": "order.paid",
        "attempt": 3,
        "integration": {
            "id": str(target.id),
            "integration_type": "webhook",
            "name": "Order paid notification",
            "description": "Tell the warehouse",
        },
        "payload": PAYLOAD,
        "resources": body["resources"],
    }
    assert isinstance(body["resources"], str)
    assert json.loads(body["resources"]) == json.loads(json.dumps(PAYLOAD))


async def test_a_missing_description_is_sent_as_null(
    deliverer: WebhookDeliverer, endpoint: Endpoint
) -> None:
    await deliver_to(deliverer, endpoint.url("/ok"), description=None)

    assert json.loads(endpoint.received[0].body)["integration"]["description"] is None


async def test_a_deleted_event_carries_resources_as_an_object(
    deliverer: WebhookDeliverer, endpoint: Endpoint
) -> None:
    payload = {"data": {"type": "product", "id": "a34a0000-0000-4000-8000-000000000001"}}
    target = make_target(endpoint.url("/ok"))

    await deliverer.deliver(make_delivery(target, triggered_by="product.deleted", payload=payload))

    body = json.loads(endpoint.received[0].body)
    assert body["triggered_by"] == "product.deleted"
    assert body["payload"] == payload
    assert body["resources"] == payload


async def test_the_headers_name_the_trigger_and_the_content_type(
    deliverer: WebhookDeliverer, endpoint: Endpoint
) -> None:
    await deliver_to(deliverer, endpoint.url("/ok"))

    headers = endpoint.received[0].headers
    assert headers["Content-Type"] == "application/json"
    assert headers["User-Agent"] == "hub-webhooks/0.1"
    assert headers["X-MOLTIN-INTEGRATION-TRIGGER"] == "order.paid"
    assert "X-MOLTIN-SECRET-KEY" not in headers


async def test_the_secret_key_is_sent_only_when_configured(
    deliverer: WebhookDeliverer, endpoint: Endpoint
) -> None:
    await deliver_to(deliverer, endpoint.url("/ok"), secret_key="secret_squirrel")
    await deliver_to(deliverer, endpoint.url("/ok"))

    with_key, without_key = (request.headers for request in endpoint.received)
    assert with_key["X-MOLTIN-SECRET-KEY"] == "secret_squirrel"
    assert "X-MOLTIN-SECRET-KEY" not in without_key


async def test_the_webhook_id_is_the_job_id_on_every_attempt(
    deliverer: WebhookDeliverer, endpoint: Endpoint
) -> None:
    target = make_target(endpoint.url("/ok"))
    job_id = uuid4()

    for attempt in (1, 2):
        await deliverer.deliver(make_delivery(target, attempt=attempt, job_id=job_id))

    first, second = endpoint.received
    assert first.headers["webhook-id"] == second.headers["webhook-id"] == str(job_id)
    assert [json.loads(request.body)["attempt"] for request in endpoint.received] == [1, 2]
    assert abs(int(first.headers["webhook-timestamp"]) - time.time()) < 5


async def test_the_signature_verifies_with_the_standard_webhooks_library(
    deliverer: WebhookDeliverer, endpoint: Endpoint
) -> None:
    secret = new_secret()
    await deliver_to(deliverer, endpoint.url("/ok"), signing_secrets=(secret,))

    [received] = endpoint.received
    assert received.headers["webhook-signature"].startswith("v1,")
    assert Webhook(secret).verify(received.body, received.headers)["triggered_by"] == "order.paid"
    with pytest.raises(WebhookVerificationError):
        Webhook(new_secret()).verify(received.body, received.headers)


async def test_during_a_rotation_both_secrets_verify(
    deliverer: WebhookDeliverer, endpoint: Endpoint
) -> None:
    old, new = new_secret(), new_secret()
    await deliver_to(deliverer, endpoint.url("/ok"), signing_secrets=(new, old))

    [received] = endpoint.received
    assert len(received.headers["webhook-signature"].split(" ")) == 2
    for secret in (old, new):
        Webhook(secret).verify(received.body, received.headers)


async def test_a_malformed_signing_secret_is_a_failure_not_an_exception(
    deliverer: WebhookDeliverer, endpoint: Endpoint
) -> None:
    result = await deliver_to(deliverer, endpoint.url("/ok"), signing_secrets=("whsec_a",))

    assert not result.succeeded
    assert result.error_detail == (
        "Could not sign the webhook: signing secret #1 is not a valid whsec_ secret"
    )
    assert endpoint.received == []


# --- lifecycle and logs ----------------------------------------------------------------------


async def test_delivering_before_open_is_a_programming_error() -> None:
    deliverer = WebhookDeliverer(timeout=1.0, allowed_networks=LOOPBACK)

    with pytest.raises(RuntimeError, match="before open"):
        await deliverer.deliver(make_delivery(make_target("http://127.0.0.1:1/hook")))


async def test_closing_twice_is_harmless() -> None:
    deliverer = WebhookDeliverer(timeout=1.0, allowed_networks=LOOPBACK)
    await deliverer.open()

    await deliverer.aclose()
    await deliverer.aclose()


async def test_logs_carry_the_ids_and_never_the_secret_or_the_payload(
    deliverer: WebhookDeliverer, endpoint: Endpoint
) -> None:
    target = make_target(endpoint.url("/ok"), secret_key="secret_squirrel")
    delivery = make_delivery(target, attempt=2)

    with structlog.testing.capture_logs() as logs:
        await deliverer.deliver(delivery)
        await deliverer.deliver(make_delivery(make_target(f"http://127.0.0.1:{closed_port()}/")))

    assert [log["event"] for log in logs] == ["webhook_delivered", "webhook_failed"]
    assert logs[0]["job_id"] == str(delivery.job_id)
    assert logs[0]["integration_id"] == str(target.id)
    assert logs[0]["attempt"] == 2
    text = repr(logs)
    assert "secret_squirrel" not in text
    assert "whsec_" not in text
    assert "Caf" not in text
