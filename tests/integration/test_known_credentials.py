"""A web process remembers the keys and tokens it verified (`KnownCredentials`), and forgets
them at once when any process revokes a key: the revocation still ends the key and its tokens
as soon as its notice arrives, long before the cache's own time would."""

from __future__ import annotations

import time
from collections.abc import AsyncIterator
from typing import Any

import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient, TestServer
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine

from hub.api.http import KNOWN_CREDENTIALS
from hub.services.access import KnownCredentials
from hub.web import create_app
from tests.conftest import make_tenant, settings_for
from tests.integration.test_api_tokens import bearer, revoke, token_for
from tests.support.waiting import eventually

Client = TestClient[Any, Any]
#: Far longer than any wait below: only the revocation notice can make the cache forget.
LONG_TTL = 300


@pytest.fixture
async def api(shared_db: str, shared_engine: AsyncEngine) -> AsyncIterator[Client]:
    app = create_app(settings_for(shared_db, key_cache_seconds=LONG_TTL), shared_engine)
    async with TestClient(TestServer(app, host="127.0.0.1")) as client:
        await eventually(lambda: app[KNOWN_CREDENTIALS].trusted, what="the key notices' listener")
        yield client


def known_of(api: Client) -> KnownCredentials:
    app: web.Application | None = api.app
    assert app is not None
    return app[KNOWN_CREDENTIALS]


async def refused(api: Client, credential: str) -> bool:
    resp = await api.get("/v2/integrations", headers=bearer(credential))
    assert resp.status in (200, 401), await resp.text()
    return resp.status == 401


async def test_a_key_used_once_is_remembered_without_its_secret(
    api: Client, shared_engine: AsyncEngine
) -> None:
    tenant = await make_tenant(shared_engine)
    key = tenant.keys["view"]
    assert known_of(api).get(key) is None

    assert not await refused(api, key)

    assert known_of(api).get(key) is not None


async def test_a_revoked_key_is_refused_at_once_although_it_was_remembered(
    api: Client, shared_engine: AsyncEngine
) -> None:
    tenant = await make_tenant(shared_engine)
    key = tenant.keys["view"]
    assert not await refused(api, key)
    assert known_of(api).get(key) is not None
    started = time.monotonic()

    await revoke(shared_engine, key)

    await eventually(lambda: refused(api, key), timeout=5, what="the revoked key to be refused")
    assert time.monotonic() - started < LONG_TTL
    assert known_of(api).get(key) is None


async def test_a_revoked_keys_remembered_token_is_refused_at_once(
    api: Client, shared_engine: AsyncEngine
) -> None:
    tenant = await make_tenant(shared_engine)
    token = await token_for(api, tenant.keys["manage"])
    assert not await refused(api, token)
    assert known_of(api).get(token) is not None

    await revoke(shared_engine, tenant.keys["manage"])

    await eventually(lambda: refused(api, token), timeout=5, what="the token to be refused")


async def test_losing_the_listener_forgets_everything_until_it_listens_again(
    api: Client, shared_engine: AsyncEngine
) -> None:
    tenant = await make_tenant(shared_engine)
    key = tenant.keys["view"]
    assert not await refused(api, key)
    assert known_of(api).get(key) is not None

    async with shared_engine.begin() as conn:
        ended = await conn.execute(
            text(
                "SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
                "WHERE datname = current_database() AND query LIKE 'LISTEN%hub_keys%'"
            )
        )
        assert ended.all(), "no listener on hub_keys"

    # A revocation sent while nobody listened would be lost: the cache starts again empty.
    await eventually(
        lambda: known_of(api).trusted and known_of(api).get(key) is None,
        timeout=10,
        what="the listener to come back with an empty cache",
    )
    assert not await refused(api, key)
