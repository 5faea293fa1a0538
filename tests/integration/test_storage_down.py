"""With the database unreachable the API answers 503 in the error envelope, never 500."""

from __future__ import annotations

import socket
from collections.abc import AsyncIterator
from typing import Any

import pytest
from aiohttp.test_utils import TestClient, TestServer

from hub.store.engine import create_engine
from hub.web import create_app
from tests.conftest import event_body, settings_for


def _closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
    return port


@pytest.fixture
async def client() -> AsyncIterator[TestClient[Any, Any]]:
    url = f"postgresql://postgres@127.0.0.1:{_closed_port()}/nowhere"
    engine = create_engine(url)
    try:
        async with TestClient(TestServer(create_app(settings_for(url), engine))) as client:
            yield client
    finally:
        await engine.dispose()


KEY = {"Authorization": "Bearer hub_0123456789ab_" + "a" * 43}


async def test_readiness_fails_with_503_while_liveness_stays_up(
    client: TestClient[Any, Any],
) -> None:
    assert (await client.get("/healthz")).status == 200
    response = await client.get("/readyz")
    assert response.status == 503
    assert response.headers["Retry-After"] == "1"
    [error] = (await response.json())["errors"]
    assert error["status"] == 503
    assert error["title"] == "Service Unavailable"


@pytest.mark.parametrize(
    ("method", "path", "body"),
    [
        ("GET", "/v2/integrations", None),
        ("POST", "/v2/events", event_body()),
    ],
)
async def test_api_calls_answer_503_when_storage_is_unreachable(
    client: TestClient[Any, Any], method: str, path: str, body: dict[str, Any] | None
) -> None:
    response = await client.request(method, path, json=body, headers=KEY)
    assert response.status == 503
    assert (await response.json())["errors"][0]["status"] == 503
