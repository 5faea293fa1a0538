"""The API's limits: request bodies over `HUB_MAX_BODY_BYTES` are a 413 and keys over their rate
(`HUB_API_RATE_LIMIT`, `HUB_API_RATE_BURST`) a 429 with `Retry-After`, both in the envelope."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any
from uuid import uuid4

import pytest
from aiohttp.test_utils import TestClient, TestServer
from sqlalchemy.ext.asyncio import AsyncEngine

from hub.ratelimit import RateLimiter
from hub.web import create_app
from tests.conftest import Tenant, event_body, make_tenant, settings_for, webhook_integration

Client = TestClient[Any, Any]


@pytest.fixture
async def limited(shared_db: str, shared_engine: AsyncEngine) -> AsyncIterator[Client]:
    settings = settings_for(shared_db, max_body_bytes=4096, api_rate_limit=0.5, api_rate_burst=3)
    async with TestClient(TestServer(create_app(settings, shared_engine), host="127.0.0.1")) as c:
        yield c


async def errors_of(resp: Any, status: int) -> list[dict[str, Any]]:
    assert resp.status == status, await resp.text()
    assert resp.content_type == "application/json"
    document = await resp.json()
    assert set(document) == {"errors"}
    errors: list[dict[str, Any]] = document["errors"]
    return errors


# --- 413 -----------------------------------------------------------------------------------------


@pytest.mark.parametrize("path", ["/v2/integrations", "/v2/events"])
async def test_a_body_over_the_limit_is_a_413_in_the_envelope(
    limited: Client, shared_engine: AsyncEngine, path: str
) -> None:
    tenant = await make_tenant(shared_engine)
    body = event_body() if path == "/v2/events" else webhook_integration()
    body["data"]["description"] = "x" * 5000

    resp = await limited.post(path, json=body, headers=tenant.auth("admin"))

    [error] = await errors_of(resp, 413)
    assert error == {
        "status": 413,
        "title": "Payload Too Large",
        "detail": "The request body is larger than 4096 bytes",
    }


async def test_a_chunked_body_over_the_limit_is_a_413_too(
    limited: Client, shared_engine: AsyncEngine
) -> None:
    tenant = await make_tenant(shared_engine)

    async def chunks() -> AsyncIterator[bytes]:
        yield b'{"data": {"type": "event", "triggered_by": "order.created", "payload": {"x": "'
        for _ in range(10):
            yield b"y" * 1024
        yield b'"}}}'

    resp = await limited.post(
        "/v2/events",
        data=chunks(),
        headers=tenant.auth("publish") | {"Content-Type": "application/json"},
    )

    await errors_of(resp, 413)


async def test_a_body_within_the_limit_is_served(
    limited: Client, shared_engine: AsyncEngine
) -> None:
    tenant = await make_tenant(shared_engine)
    body = webhook_integration()
    body["data"]["description"] = "x" * 3000

    resp = await limited.post("/v2/integrations", json=body, headers=tenant.auth("manage"))

    assert resp.status == 201, await resp.text()


# --- 429 -----------------------------------------------------------------------------------------


async def test_a_key_over_its_rate_is_a_429_with_retry_after_and_other_keys_go_on(
    limited: Client, shared_engine: AsyncEngine
) -> None:
    tenant: Tenant = await make_tenant(shared_engine)

    statuses = [
        (await limited.get("/v2/integrations", headers=tenant.auth("view"))).status
        for _ in range(3)
    ]
    refused = await limited.get("/v2/integrations", headers=tenant.auth("view"))
    other_key = await limited.get("/v2/integrations", headers=tenant.auth("manage"))
    # A write is refused as well, before it changes anything.
    write = await limited.post(
        "/v2/integrations", json=webhook_integration(), headers=tenant.auth("view")
    )

    assert statuses == [200, 200, 200]
    [error] = await errors_of(refused, 429)
    assert error["title"] == "Too Many Requests"
    assert refused.headers["Retry-After"] == "2"  # one token at 0.5/s
    assert "retry after 2 s" in error["detail"]
    assert other_key.status == 200
    await errors_of(write, 429)


async def test_unknown_keys_are_401_and_never_rate_limited(limited: Client) -> None:
    headers = {"Authorization": f"Bearer hub_{'0' * 12}_{'A' * 43}"}

    statuses = {(await limited.get("/v2/integrations", headers=headers)).status for _ in range(6)}

    assert statuses == {401}


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


@pytest.mark.parametrize(
    ("rate", "burst", "calls", "elapsed", "expected"),
    [
        # A full bucket serves `burst` at once, then answers how long until a token is back.
        (10.0, 5, 5, 0.0, None),
        (10.0, 5, 6, 0.0, 1),
        (0.25, 1, 2, 0.0, 4),
        (0.25, 1, 2, 3.0, 1),
        # Tokens come back with time, never beyond the burst.
        (2.0, 2, 3, 0.5, None),
        (2.0, 2, 4, 0.25, 1),
        (1.0, 3, 4, 100.0, None),
        # 0 turns the limit off.
        (0.0, 1, 1000, 0.0, None),
    ],
)
def test_the_token_bucket(
    rate: float, burst: int, calls: int, elapsed: float, expected: int | None
) -> None:
    clock = Clock()
    limiter = RateLimiter(rate, burst, clock=clock)
    key = uuid4()
    answers = []

    for index in range(calls):
        if index == calls - 1:
            clock.now += elapsed
        answers.append(limiter.take(key))

    assert answers[-1] == expected
    assert limiter.take(uuid4()) is None  # another key has its own bucket
