"""Operational surfaces: a caller's `X-Request-Id` is taken only when it is a sane id (1 to 128
characters of `[A-Za-z0-9._:-]`), else replaced (the one bound to log lines too) and never
echoed; `/metrics` is open unless
`HUB_METRICS_TOKEN` is set, then only for `Authorization: Bearer <token>`."""

from __future__ import annotations

import re
from collections.abc import AsyncIterator
from typing import Any

import pytest
from aiohttp.test_utils import TestClient, TestServer
from sqlalchemy.ext.asyncio import AsyncEngine

from hub.web import create_app
from tests.conftest import settings_for

Client = TestClient[Any, Any]

GENERATED = re.compile(r"[0-9a-f]{32}")
TOKEN = "metrics-token-6b1f0c9e2d"


@pytest.mark.parametrize(
    "given",
    [
        "4f9c2a1e-0b7d-4c3e-9a55-1f6f4b0f5c11",
        "req_01HZX3.trace:span-7",
        "a" * 128,
    ],
)
async def test_a_sane_request_id_is_echoed(api: Client, given: str) -> None:
    resp = await api.get("/healthz", headers={"X-Request-Id": given})

    assert resp.headers["X-Request-Id"] == given


@pytest.mark.parametrize(
    "given",
    [
        "a" * 129,
        "x" * 8000,
        "two words",
        "id\tafter-a-tab",
        "<script>alert(1)</script>",
        "ünïcode",
        "",
    ],
    ids=["129 characters", "8000 characters", "a space", "a tab", "markup", "non-ASCII", "empty"],
)
async def test_any_other_request_id_is_replaced_and_never_echoed(api: Client, given: str) -> None:
    ok = await api.get("/healthz", headers={"X-Request-Id": given})
    refused = await api.get("/v2/integrations/logs", headers={"X-Request-Id": given})

    assert refused.status == 401  # an error answer gets an id of its own too
    ids = [resp.headers["X-Request-Id"] for resp in (ok, refused)]
    assert all(GENERATED.fullmatch(request_id) for request_id in ids), ids
    assert ids[0] != ids[1]


@pytest.fixture
async def guarded(shared_db: str, shared_engine: AsyncEngine) -> AsyncIterator[Client]:
    settings = settings_for(shared_db, metrics_token=TOKEN)
    async with TestClient(TestServer(create_app(settings, shared_engine), host="127.0.0.1")) as c:
        yield c


@pytest.mark.parametrize(
    "authorization",
    [None, "", f"Basic {TOKEN}", "Bearer wrong", f"Bearer {TOKEN}x", f"Bearer {TOKEN[:-1]}"],
)
async def test_with_a_metrics_token_metrics_need_it(
    guarded: Client, authorization: str | None
) -> None:
    headers = {} if authorization is None else {"Authorization": authorization}

    resp = await guarded.get("/metrics", headers=headers)

    assert resp.status == 401, await resp.text()
    [error] = (await resp.json())["errors"]
    assert error["title"] == "Unauthorized"
    assert error["detail"] == "/metrics needs Authorization: Bearer <HUB_METRICS_TOKEN>"


async def test_with_a_metrics_token_the_token_opens_metrics(guarded: Client) -> None:
    resp = await guarded.get("/metrics", headers={"Authorization": f"Bearer {TOKEN}"})
    lower = await guarded.get("/metrics", headers={"Authorization": f"bearer {TOKEN}"})

    assert resp.status == lower.status == 200
    assert "hub_http_requests_total" in await resp.text()
    assert (await guarded.get("/healthz")).status == 200  # nothing else needs it


async def test_without_a_metrics_token_metrics_are_open(api: Client) -> None:
    resp = await api.get("/metrics")

    assert resp.status == 200
