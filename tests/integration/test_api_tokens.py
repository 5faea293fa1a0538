"""`POST /oauth/access_token`, Elastic Path's token endpoint: a key's client id and secret give a
bearer token with the key's store and role, which dies with the key or at its expiry; every
other grant or credential is refused in the error envelope."""

from __future__ import annotations

import time
from collections.abc import AsyncIterator
from typing import Any

import pytest
from aiohttp import ClientResponse
from aiohttp.test_utils import TestClient, TestServer
from sqlalchemy import func, select, update
from sqlalchemy.ext.asyncio import AsyncEngine

from hub.auth import TOKEN_RE, digest, key_prefix
from hub.store import retention, stores
from hub.store.engine import driver_of
from hub.store.models import access_tokens
from hub.web import create_app
from tests.conftest import Tenant, make_tenant, settings_for, webhook_integration
from tests.support.waiting import eventually

Client = TestClient[Any, Any]
TOKEN_URL = "/oauth/access_token"
UNAUTHORIZED = "Unable to validate access token"


def client_id(key: str) -> str:
    """What `hub keys create` prints as the key's client id: its first 16 characters."""
    return key[:16]


def credentials(key: str) -> dict[str, str]:
    return {"grant_type": "client_credentials", "client_id": client_id(key), "client_secret": key}


async def errors_of(resp: ClientResponse, status: int) -> list[dict[str, Any]]:
    assert resp.status == status, await resp.text()
    assert resp.content_type == "application/json"
    document = await resp.json()
    assert set(document) == {"errors"}
    errors: list[dict[str, Any]] = document["errors"]
    assert all(error["status"] == status for error in errors)
    return errors


async def token_for(api: Client, key: str) -> str:
    resp = await api.post(TOKEN_URL, data=credentials(key))
    assert resp.status == 200, await resp.text()
    token: str = (await resp.json())["access_token"]
    return token


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


async def token_rows(engine: AsyncEngine) -> int:
    async with engine.connect() as conn:
        count: int = (
            await conn.execute(select(func.count()).select_from(access_tokens))
        ).scalar_one()
        return count


async def revoke(engine: AsyncEngine, key: str) -> None:
    prefix = key_prefix(key)
    assert prefix is not None
    async with engine.begin() as conn:
        found = await stores.find_active_key(await driver_of(conn), prefix)
        assert found is not None
        assert await stores.revoke_key(conn, found[0].id)


# --- issuing -------------------------------------------------------------------------------------


async def test_a_keys_client_id_and_secret_give_eps_token_body(api: Client, tenant: Tenant) -> None:
    before = time.time()

    resp = await api.post(TOKEN_URL, data=credentials(tenant.keys["manage"]))

    assert resp.status == 200, await resp.text()
    assert resp.content_type == "application/json"
    assert resp.headers["Cache-Control"] == "no-store"
    body = await resp.json()
    assert set(body) == {"access_token", "token_type", "expires", "expires_in", "identifier"}
    assert body["token_type"] == "Bearer"
    assert body["identifier"] == "client_credentials"
    assert body["expires_in"] == 3600
    assert isinstance(body["expires"], int)
    assert before + 3600 - 5 <= body["expires"] <= time.time() + 3600 + 5
    assert TOKEN_RE.match(body["access_token"])
    assert tenant.keys["manage"] not in body["access_token"]


async def test_the_same_fields_as_json_give_a_token_too(api: Client, tenant: Tenant) -> None:
    resp = await api.post(TOKEN_URL, json=credentials(tenant.keys["view"]))

    assert resp.status == 200, await resp.text()
    assert TOKEN_RE.match((await resp.json())["access_token"])


async def test_only_the_tokens_digest_is_stored(
    api: Client, tenant: Tenant, shared_engine: AsyncEngine
) -> None:
    token = await token_for(api, tenant.keys["view"])

    async with shared_engine.connect() as conn:
        row = (
            await conn.execute(
                select(access_tokens).where(access_tokens.c.prefix == token.split("_")[1])
            )
        ).one()
    assert bytes(row.token_hash) == digest(token)
    assert token not in repr(tuple(row))


# --- using a token -------------------------------------------------------------------------------


async def test_a_token_acts_with_its_keys_store_and_role(
    api: Client, tenant: Tenant, other_tenant: Tenant
) -> None:
    manage = await token_for(api, tenant.keys["manage"])
    view = await token_for(api, tenant.keys["view"])
    theirs = await api.post(
        "/v2/integrations", json=webhook_integration(), headers=other_tenant.auth("manage")
    )
    their_id = (await theirs.json())["data"]["id"]

    created = await api.post("/v2/integrations", json=webhook_integration(), headers=bearer(manage))
    refused = await api.post("/v2/integrations", json=webhook_integration(), headers=bearer(view))
    listed = await api.get("/v2/integrations", headers=bearer(view))
    other = await api.get(f"/v2/integrations/{their_id}", headers=bearer(manage))
    elsewhere = await api.get(
        "/v2/integrations", headers=bearer(manage) | {"X-Hub-Store": other_tenant.name}
    )

    assert created.status == 201, await created.text()
    mine = (await created.json())["data"]["id"]
    [error] = await errors_of(refused, 403)
    assert "view" in error["detail"]
    assert [i["id"] for i in (await listed.json())["data"]] == [mine]
    await errors_of(other, 404)
    await errors_of(elsewhere, 403)


async def test_the_key_itself_keeps_working_beside_its_tokens(api: Client, tenant: Tenant) -> None:
    await token_for(api, tenant.keys["view"])

    assert (await api.get("/v2/integrations", headers=tenant.auth("view"))).status == 200


async def test_revoking_the_key_ends_its_tokens_at_once(
    api: Client, tenant: Tenant, shared_engine: AsyncEngine
) -> None:
    token = await token_for(api, tenant.keys["manage"])
    assert (await api.get("/v2/integrations", headers=bearer(token))).status == 200

    await revoke(shared_engine, tenant.keys["manage"])

    # The revocation reaches this process with its notice, moments after the commit.
    async def refused() -> bool:
        resp = await api.get("/v2/integrations", headers=bearer(token))
        await resp.read()
        return resp.status == 401

    await eventually(refused, timeout=5, what="the revoked key's token refused")
    [error] = await errors_of(await api.get("/v2/integrations", headers=bearer(token)), 401)
    assert error["detail"] == UNAUTHORIZED
    await errors_of(await api.post(TOKEN_URL, data=credentials(tenant.keys["manage"])), 401)
    # The store's other keys and their tokens are untouched.
    view = await token_for(api, tenant.keys["view"])
    assert (await api.get("/v2/integrations", headers=bearer(view))).status == 200


async def test_an_expired_token_is_a_401(
    api: Client, tenant: Tenant, shared_engine: AsyncEngine
) -> None:
    token = await token_for(api, tenant.keys["view"])
    async with shared_engine.begin() as conn:
        await conn.execute(
            update(access_tokens)
            .where(access_tokens.c.prefix == token.split("_")[1])
            .values(expires_at=func.now() - func.make_interval(0, 0, 0, 0, 0, 0, 1))
        )

    [error] = await errors_of(await api.get("/v2/integrations", headers=bearer(token)), 401)
    assert error["detail"] == UNAUTHORIZED


@pytest.fixture
async def short_lived(shared_db: str, shared_engine: AsyncEngine) -> AsyncIterator[Client]:
    """The API with `HUB_TOKEN_TTL=1`."""
    app = create_app(settings_for(shared_db, token_ttl="1"), shared_engine)
    async with TestClient(TestServer(app, host="127.0.0.1")) as client:
        yield client


async def test_a_token_lives_as_long_as_hub_token_ttl_says(
    short_lived: Client, shared_engine: AsyncEngine
) -> None:
    tenant = await make_tenant(shared_engine)
    resp = await short_lived.post(TOKEN_URL, data=credentials(tenant.keys["view"]))
    body = await resp.json()
    assert body["expires_in"] == 1
    token = body["access_token"]
    assert (await short_lived.get("/v2/integrations", headers=bearer(token))).status == 200

    async def refused() -> bool:
        resp = await short_lived.get("/v2/integrations", headers=bearer(token))
        return resp.status == 401

    await eventually(refused, timeout=10, what="the token to expire")


async def test_the_retention_pass_purges_expired_tokens_only(
    api: Client, tenant: Tenant, shared_engine: AsyncEngine
) -> None:
    live = await token_for(api, tenant.keys["view"])
    dead = await token_for(api, tenant.keys["view"])
    async with shared_engine.begin() as conn:
        await conn.execute(
            update(access_tokens)
            .where(access_tokens.c.prefix == dead.split("_")[1])
            .values(expires_at=func.now() - func.make_interval(0, 0, 0, 0, 0, 0, 1))
        )

    async with shared_engine.begin() as conn:
        purged = await retention.purge_expired_tokens(conn)

    assert purged.tokens >= 1
    async with shared_engine.connect() as conn:
        left = set((await conn.execute(select(access_tokens.c.prefix))).scalars())
    assert live.split("_")[1] in left
    assert dead.split("_")[1] not in left


# --- refusals ------------------------------------------------------------------------------------


@pytest.mark.parametrize("grant", ["password", "authorization_code", "refresh_token", "x"])
async def test_a_grant_other_than_client_credentials_is_a_400(
    api: Client, tenant: Tenant, grant: str
) -> None:
    fields = credentials(tenant.keys["admin"]) | {"grant_type": grant}

    [error] = await errors_of(await api.post(TOKEN_URL, data=fields), 400)

    assert error["source"] == "grant_type"
    assert grant in error["detail"]
    assert "client_credentials" in error["detail"]


async def test_the_implicit_grant_is_refused_and_gives_no_token(
    api: Client, tenant: Tenant, shared_engine: AsyncEngine
) -> None:
    before = await token_rows(shared_engine)
    implicit = {"grant_type": "implicit", "client_id": client_id(tenant.keys["view"])}

    [error] = await errors_of(await api.post(TOKEN_URL, data=implicit), 400)
    # Even with a valid secret, implicit gives nothing.
    with_secret = implicit | {"client_secret": tenant.keys["view"]}
    await errors_of(await api.post(TOKEN_URL, data=with_secret), 400)

    assert error["title"] == "Bad Request"
    assert "implicit is not supported" in error["detail"]
    assert await token_rows(shared_engine) == before


@pytest.mark.parametrize(
    ("fields", "sources"),
    [
        ({}, {"grant_type", "client_id"}),
        ({"grant_type": "client_credentials"}, {"client_id"}),
        ({"grant_type": "client_credentials", "client_id": "hub_0123456789ab"}, {"client_secret"}),
        ({"grant_type": "", "client_id": "", "client_secret": ""}, {"grant_type", "client_id"}),
    ],
)
async def test_missing_fields_are_a_422_naming_each(
    api: Client, fields: dict[str, str], sources: set[str]
) -> None:
    errors = await errors_of(await api.post(TOKEN_URL, data=fields), 422)

    assert {error["source"] for error in errors} == sources
    assert all(error["title"] == "Validation Error" for error in errors)


async def test_wrong_credentials_are_a_401_that_does_not_say_which_was_wrong(
    api: Client, tenant: Tenant, other_tenant: Tenant
) -> None:
    key = tenant.keys["manage"]
    token = await token_for(api, key)
    attempts = [
        # another key's secret with this key's client id, and the other way round
        credentials(key) | {"client_secret": other_tenant.keys["manage"]},
        credentials(key) | {"client_id": client_id(other_tenant.keys["manage"])},
        # the right prefix, a wrong secret
        credentials(key) | {"client_secret": key[:-4] + ("AAAA" if key[-4:] != "AAAA" else "BBBB")},
        # a well-formed client id of no key
        {**credentials(key), "client_id": "hub_000000000000", "client_secret": key},
        # malformed ones
        credentials(key) | {"client_id": "somebody"},
        credentials(key) | {"client_secret": "letmein"},
        # a token is no client secret
        credentials(key) | {"client_secret": token},
    ]

    for fields in attempts:
        [error] = await errors_of(await api.post(TOKEN_URL, data=fields), 401)
        assert error["detail"] == "The client_id and client_secret do not match an active API key"


async def test_a_body_neither_form_nor_json_is_a_415(api: Client, tenant: Tenant) -> None:
    resp = await api.post(
        TOKEN_URL,
        data=b"grant_type=client_credentials",
        headers={"Content-Type": "text/plain"},
    )

    [error] = await errors_of(resp, 415)
    assert error["title"] == "Unsupported Media Type"
    assert "application/x-www-form-urlencoded" in error["detail"]


@pytest.mark.parametrize(
    ("body", "content_type", "status"),
    [
        (b"\xff\xfe=\x00", "application/x-www-form-urlencoded", 400),
        (b"grant_type=a&grant_type=b&client_id=x", "application/x-www-form-urlencoded", 400),
        (b"[1, 2]", "application/json", 422),
        (b"{nope", "application/json", 400),
        (b'{"grant_type": 5, "client_id": ["x"]}', "application/json", 422),
    ],
)
async def test_malformed_bodies_are_client_errors_in_the_envelope(
    api: Client, body: bytes, content_type: str, status: int
) -> None:
    resp = await api.post(TOKEN_URL, data=body, headers={"Content-Type": content_type})

    await errors_of(resp, status)
