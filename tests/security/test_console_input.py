"""The console against hostile input and ended access: a NUL character or a time out of range in
any query string or form is a 400 page (never a 500), arbitrary query strings on every page are
answered below 500, and an open live-log stream ends with its session (the key revoked, signed
out)."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Any
from urllib.parse import quote
from uuid import UUID

import pytest
from aiohttp.test_utils import TestClient, TestServer
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sqlalchemy.ext.asyncio import AsyncEngine

from hub.store import stores
from hub.web import create_app
from tests.conftest import Tenant, make_tenant, settings_for, webhook_integration
from tests.integration.test_console import page_csrf, sign_in
from tests.integration.test_console_sessions import rows_of_key

Client = TestClient[Any, Any]


@pytest.fixture
async def console(shared_db: str, shared_engine: AsyncEngine) -> AsyncIterator[Client]:
    app = create_app(settings_for(shared_db), shared_engine)
    async with TestClient(TestServer(app, host="127.0.0.1")) as client:
        yield client


@pytest.fixture
async def signed_in(console: Client, tenant: Tenant) -> tuple[Client, str]:
    """A manage session, and the path of one of its store's integrations."""
    response = await console.post(
        "/v2/integrations",
        json=webhook_integration(),
        headers={"Authorization": f"Bearer {tenant.keys['manage']}"},
    )
    assert response.status == 201, await response.text()
    integration_id = (await response.json())["data"]["id"]
    assert (await sign_in(console, tenant.keys["manage"])).status == 303
    return console, f"/console/integrations/{integration_id}"


def pages(integration: str) -> list[str]:
    """Every console page that reads its query string."""
    return ["/console/integrations", integration, "/console/logs"]


@pytest.mark.parametrize("param", ["type", "enabled", "status", "event", "logs", "after", "since"])
async def test_a_nul_character_in_any_filter_is_a_400_page(
    signed_in: tuple[Client, str], param: str
) -> None:
    client, integration = signed_in
    for path in pages(integration):
        page = await client.get(f"{path}?{param}=a%00b")

        assert page.status == 400, (path, await page.text())
        assert "NUL" in await page.text()


@pytest.mark.parametrize(
    "raw", ["0001-01-01T00:00:00+14:00", "9999-12-31T23:59:59-14:00", "0001-01-01T00:00"]
)
@pytest.mark.parametrize("param", ["since", "until"])
async def test_a_time_outside_the_range_once_in_utc_is_a_400_page(
    signed_in: tuple[Client, str], param: str, raw: str
) -> None:
    client, integration = signed_in

    page = await client.get(f"{integration}?{param}={quote(raw)}")

    if raw == "0001-01-01T00:00":
        assert page.status == 200, "year 1 in UTC is the first instant served"
    else:
        assert page.status == 400, await page.text()
        assert "0001-01-01T00:00:00Z" in await page.text()


async def test_a_live_log_cursor_out_of_range_is_ignored_not_a_500(
    signed_in: tuple[Client, str],
) -> None:
    client, _ = signed_in
    cursor = quote(f"0001-01-01T00:00:00+14:00|{UUID(int=1)}")

    page = await client.get(f"/console/logs?after={cursor}")
    async with client.get(f"/console/logs/stream?after={cursor}") as stream:
        streamed = stream.status

    assert page.status == 400, "a page link out of range says so"
    assert "Bad page link" in await page.text()
    assert streamed == 200, "the stream starts from now"


async def test_a_nul_character_in_a_form_is_a_400_page(signed_in: tuple[Client, str]) -> None:
    client, integration = signed_in
    csrf = await page_csrf(client, integration)

    replay = await client.post(f"{integration}/replay", data={"csrf": csrf, "since": "2026\x00"})

    assert replay.status == 400, await replay.text()
    assert "NUL" in await replay.text()


async def test_a_nul_character_in_the_sign_in_key_is_refused_not_a_500(console: Client) -> None:
    csrf = await page_csrf(console, "/console/login")

    response = await console.post(
        "/console/login", data={"csrf": csrf, "key": "hub_0123\x00456789ab_x"}
    )

    assert 400 <= response.status < 500, await response.text()


#: Any text, and the values that once reached a 500 (times out of range once in UTC, a NUL).
QUERY_TEXT = st.one_of(
    st.text(st.characters(codec="utf-8"), max_size=40),
    st.sampled_from(
        [
            "0001-01-01T00:00:00+14:00",
            "9999-12-31T23:59:59-14:00",
            f"9999-12-31T23:59:59-14:00|{UUID(int=1)}",
            "a\x00b",
        ]
    ),
)


@settings(
    max_examples=150,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture],
)
@given(
    page=st.sampled_from(["integrations", "integration", "logs"]),
    params=st.dictionaries(
        st.sampled_from(
            ["type", "enabled", "status", "event", "since", "until", "logs", "after", "page"]
        ),
        QUERY_TEXT,
        max_size=4,
    ),
)
async def test_any_query_string_on_any_page_is_answered_below_500(
    signed_in: tuple[Client, str], page: str, params: dict[str, str]
) -> None:
    client, integration = signed_in
    path = {
        "integrations": "/console/integrations",
        "integration": integration,
        "logs": "/console/logs",
    }[page]
    query = "&".join(f"{quote(k)}={quote(v, safe='')}" for k, v in params.items())

    response = await client.get(f"{path}?{query}", allow_redirects=False)

    assert response.status < 500, (path, params, await response.text())


async def _stream_ends(client: Client, end: Any) -> None:
    """Open the live log, run `end`, and see the stream close by itself."""
    async with client.get("/console/logs/stream") as stream:
        assert stream.status == 200
        await end()
        async with asyncio.timeout(10):
            while await stream.content.readany():
                pass
        assert stream.content.at_eof()


async def test_an_open_live_log_ends_when_its_key_is_revoked(
    console: Client, shared_engine: AsyncEngine
) -> None:
    tenant = await make_tenant(shared_engine)
    await sign_in(console, tenant.keys["view"])
    [row] = await rows_of_key(shared_engine, tenant, "view")

    async def revoke() -> None:
        async with shared_engine.begin() as conn:
            assert await stores.revoke_key(conn, row.key_id)

    await _stream_ends(console, revoke)
    again = await console.get("/console/logs/stream", allow_redirects=False)
    assert again.status == 303


async def test_an_open_live_log_ends_when_its_session_signs_out(
    console: Client, tenant: Tenant
) -> None:
    await sign_in(console, tenant.keys["view"])
    csrf = await page_csrf(console, "/console/logs")

    async def sign_out() -> None:
        # The same browser, from another tab, while the stream is open.
        response = await console.post("/console/logout", data={"csrf": csrf}, allow_redirects=False)
        assert response.status == 303

    await _stream_ends(console, sign_out)
