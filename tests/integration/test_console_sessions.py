"""Console sessions in the database: the table holds the session id's digest only, a key holds
at most `HUB_CONSOLE_SESSIONS_PER_KEY` sessions, revoking the key ends them, expired ones are
purged; and sign-in is throttled per client address for the deployment as a whole."""

from __future__ import annotations

import hashlib
from collections.abc import AsyncIterator, Callable
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from typing import Any

import pytest
from aiohttp.test_utils import TestClient, TestServer
from sqlalchemy import func, text
from sqlalchemy.ext.asyncio import AsyncEngine

from hub.ratelimit import Share
from hub.store import retention, stores
from hub.store.models import console_sessions
from hub.web import create_app
from tests.conftest import Tenant, make_tenant, settings_for
from tests.integration.test_console import sign_in

Client = TestClient[Any, Any]
ClientFactory = Callable[..., AbstractAsyncContextManager[Client]]


@pytest.fixture
def console(shared_db: str, shared_engine: AsyncEngine) -> ClientFactory:
    """Clients (each its own cookie jar) of an app on the shared database with `settings`."""

    @asynccontextmanager
    async def open_client(
        app: Any = None, share: Share | None = None, **settings: Any
    ) -> AsyncIterator[Client]:
        if app is None:
            app = create_app(settings_for(shared_db, **settings), shared_engine, share=share)
        async with TestClient(TestServer(app, host="127.0.0.1")) as client:
            yield client

    return open_client


async def rows_of_key(engine: AsyncEngine, tenant: Tenant, role: str) -> list[Any]:
    prefix = tenant.keys[role].split("_")[1]
    async with engine.connect() as conn:
        rows = await conn.execute(
            text(
                "SELECT s.* FROM console_sessions s JOIN api_keys k ON k.id = s.key_id "
                "WHERE k.prefix = :prefix ORDER BY s.created_at"
            ),
            {"prefix": prefix},
        )
        return list(rows)


async def test_the_table_holds_the_digest_of_the_session_id_never_the_id_or_the_key(
    console: ClientFactory, shared_engine: AsyncEngine, tenant: Tenant
) -> None:
    async with console() as client:
        response = await sign_in(client, tenant.keys["view"])
        sid = response.cookies["hub_console"].value

        [row] = await rows_of_key(shared_engine, tenant, "view")

        assert row.id_hash == hashlib.sha256(sid.encode()).digest()
        assert row.role == "view"
        stored = " ".join(str(value) for value in row)
        assert sid not in stored
        assert tenant.keys["view"] not in stored
        assert (await client.get("/console/integrations")).status == 200


async def test_a_sign_in_beyond_the_cap_ends_the_keys_oldest_session(
    console: ClientFactory, shared_engine: AsyncEngine, tenant: Tenant
) -> None:
    async with (
        console(console_sessions_per_key=2) as first,
        console(console_sessions_per_key=2) as second,
        console(console_sessions_per_key=2) as third,
        console(console_sessions_per_key=2) as other_key,
    ):
        for client in (first, second, third):
            assert (await sign_in(client, tenant.keys["view"])).status == 303
        assert (await sign_in(other_key, tenant.keys["manage"])).status == 303

        oldest = await first.get("/console/integrations", allow_redirects=False)
        newer = [await c.get("/console/integrations") for c in (second, third, other_key)]

        assert oldest.status == 303, "the oldest session of the key was ended"
        assert [r.status for r in newer] == [200, 200, 200]
        assert len(await rows_of_key(shared_engine, tenant, "view")) == 2
        assert len(await rows_of_key(shared_engine, tenant, "manage")) == 1


async def test_revoking_the_key_ends_its_sessions_at_their_next_request(
    console: ClientFactory, shared_engine: AsyncEngine
) -> None:
    tenant = await make_tenant(shared_engine)
    async with console() as client:
        await sign_in(client, tenant.keys["manage"])
        assert (await client.get("/console/integrations")).status == 200
        [row] = await rows_of_key(shared_engine, tenant, "manage")
        async with shared_engine.begin() as conn:
            assert await stores.revoke_key(conn, row.key_id)

        page = await client.get("/console/integrations", allow_redirects=False)

        assert page.status == 303
        assert page.headers["Location"] == "/console/login"
        assert await rows_of_key(shared_engine, tenant, "manage") == [], "and its row is gone"


async def test_expired_sessions_are_purged_by_retention_and_live_ones_stay(
    console: ClientFactory, shared_engine: AsyncEngine
) -> None:
    tenant = await make_tenant(shared_engine)
    async with console() as expired, console() as live:
        await sign_in(expired, tenant.keys["view"])
        await sign_in(live, tenant.keys["manage"])
        [old] = await rows_of_key(shared_engine, tenant, "view")
        async with shared_engine.begin() as conn:
            await conn.execute(
                console_sessions.update()
                .where(console_sessions.c.id_hash == old.id_hash)
                .values(expires_at=func.now() - text("interval '1 second'"))
            )
        assert (await expired.get("/console/integrations", allow_redirects=False)).status == 303

        async with shared_engine.begin() as conn:
            purged = await retention.purge(conn, before=None)

        assert purged.sessions >= 1
        assert await rows_of_key(shared_engine, tenant, "view") == []
        assert len(await rows_of_key(shared_engine, tenant, "manage")) == 1
        assert (await live.get("/console/integrations")).status == 200


async def test_sign_in_is_throttled_per_client_address_with_retry_after(
    console: ClientFactory, tenant: Tenant
) -> None:
    async with console(
        console_sign_in_rate=6, console_sign_in_burst=3, trusted_proxies="127.0.0.0/8"
    ) as client:
        wrong = tenant.keys["view"][:-4] + "AAAA"
        tries = [(await sign_in(client, wrong)).status for _ in range(3)]
        refused = await sign_in(client, tenant.keys["view"])
        refused_page = await refused.text()
        # Behind a trusted proxy, another client's address has a bucket of its own.
        page = await client.get("/console/login")
        token = page.cookies["hub_console_login"].value
        forwarded = await client.post(
            "/console/login",
            data={"csrf": token, "key": tenant.keys["view"]},
            headers={"X-Forwarded-For": "203.0.113.9"},
            allow_redirects=False,
        )

    assert tries == [401, 401, 401]
    assert refused.status == 429
    assert refused.headers["Retry-After"] == "10"  # a token every 10 s at 6 a minute
    assert "Too many sign-in attempts" in refused_page
    assert "hub_console" not in refused.cookies
    assert forwarded.status == 303


async def test_a_forwarded_address_from_an_untrusted_peer_is_not_believed(
    console: ClientFactory, tenant: Tenant
) -> None:
    async with console(console_sign_in_rate=6, console_sign_in_burst=1) as client:
        assert (await sign_in(client, tenant.keys["view"][:-4] + "AAAA")).status == 401
        page = await client.get("/console/login")
        token = page.cookies["hub_console_login"].value
        spoofed = await client.post(
            "/console/login",
            data={"csrf": token, "key": tenant.keys["view"]},
            headers={"X-Forwarded-For": "203.0.113.10"},
            allow_redirects=False,
        )

    assert spoofed.status == 429


async def test_the_sign_in_throttle_holds_for_the_deployment_as_a_whole(
    console: ClientFactory, tenant: Tenant
) -> None:
    # Two API processes whose heartbeats counted two: each takes half of the burst of 4.
    wrong = tenant.keys["view"][:-4] + "AAAA"
    async with (
        console(share=Share(2), console_sign_in_rate=1, console_sign_in_burst=4) as one,
        console(share=Share(2), console_sign_in_rate=1, console_sign_in_burst=4) as two,
    ):
        statuses = [(await sign_in(c, wrong)).status for c in (one, two, one, two, one, two)]

    assert statuses == [401, 401, 401, 401, 429, 429]
