"""Browsers and bodies: CORS for the origins of `HUB_CORS_ORIGINS` (preflights answered with what
EP's clients send; the console never), and a 415 for a request body that is not JSON."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import pytest
from aiohttp.test_utils import TestClient, TestServer
from sqlalchemy.ext.asyncio import AsyncEngine

from hub.web import create_app
from tests.conftest import Tenant, make_tenant, settings_for, webhook_integration

Client = TestClient[Any, Any]
SHOP = "https://shop.example.com"
#: What a browser sends before the EP SDK's first `Integrations.All()`.
SDK_PREFLIGHT = {
    "Origin": SHOP,
    "Access-Control-Request-Method": "GET",
    "Access-Control-Request-Headers": (
        "authorization,content-type,x-moltin-application,x-moltin-sdk-language,x-moltin-sdk-version"
    ),
}


@pytest.fixture
async def browsers(shared_db: str, shared_engine: AsyncEngine) -> AsyncIterator[Client]:
    """The API with `HUB_CORS_ORIGINS` set to the shop and a second origin."""
    settings = settings_for(shared_db, cors_origins=f"{SHOP}, http://localhost:3000")
    async with TestClient(TestServer(create_app(settings, shared_engine), host="127.0.0.1")) as c:
        yield c


@pytest.fixture
async def anyone(shared_db: str, shared_engine: AsyncEngine) -> AsyncIterator[Client]:
    settings = settings_for(shared_db, cors_origins="*")
    async with TestClient(TestServer(create_app(settings, shared_engine), host="127.0.0.1")) as c:
        yield c


@pytest.fixture
async def shop_tenant(shared_engine: AsyncEngine) -> Tenant:
    return await make_tenant(shared_engine)


# --- CORS ----------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "path", ["/v2/integrations", "/v2/integrations/logs", "/oauth/access_token"]
)
async def test_a_preflight_from_an_allowed_origin_is_answered_with_what_ep_clients_send(
    browsers: Client, path: str
) -> None:
    resp = await browsers.options(path, headers=SDK_PREFLIGHT)

    assert resp.status == 204, await resp.text()
    assert resp.headers["Access-Control-Allow-Origin"] == SHOP
    assert "Origin" in resp.headers["Vary"]
    methods = {m.strip() for m in resp.headers["Access-Control-Allow-Methods"].split(",")}
    assert {"GET", "POST", "PUT", "DELETE"} <= methods
    allowed = {h.strip().lower() for h in resp.headers["Access-Control-Allow-Headers"].split(",")}
    assert {
        "authorization",
        "content-type",
        "x-moltin-application",
        "x-moltin-sdk-language",
        "x-moltin-sdk-version",
    } <= allowed
    assert int(resp.headers["Access-Control-Max-Age"]) > 0
    assert "Access-Control-Allow-Credentials" not in resp.headers


async def test_a_preflight_allows_only_the_headers_the_api_takes(browsers: Client) -> None:
    headers = SDK_PREFLIGHT | {
        "Access-Control-Request-Headers": "x-moltin-currency, x-evil, cookie"
    }

    resp = await browsers.options("/v2/integrations", headers=headers)

    allowed = {h.strip().lower() for h in resp.headers["Access-Control-Allow-Headers"].split(",")}
    assert "x-moltin-currency" in allowed
    assert not allowed & {"x-evil", "cookie"}


async def test_answers_to_an_allowed_origin_carry_the_origin_errors_included(
    browsers: Client, shop_tenant: Tenant
) -> None:
    origin = {"Origin": SHOP}

    ok = await browsers.get("/v2/integrations", headers=origin | shop_tenant.auth("view"))
    unauthorized = await browsers.get("/v2/integrations", headers=origin)
    missing = await browsers.get("/v2/nowhere", headers=origin | shop_tenant.auth("view"))

    for resp in (ok, unauthorized, missing):
        assert resp.headers["Access-Control-Allow-Origin"] == SHOP
        assert "Retry-After" in resp.headers["Access-Control-Expose-Headers"]
    assert (ok.status, unauthorized.status, missing.status) == (200, 401, 404)


async def test_another_origin_gets_no_cors_and_its_preflight_a_403(
    browsers: Client, shop_tenant: Tenant
) -> None:
    evil = {"Origin": "https://evil.example.net"}

    preflight = await browsers.options("/v2/integrations", headers=SDK_PREFLIGHT | evil)
    request = await browsers.get("/v2/integrations", headers=evil | shop_tenant.auth("view"))

    assert preflight.status == 403
    [error] = (await preflight.json())["errors"]
    assert "https://evil.example.net" in error["detail"]
    assert "Access-Control-Allow-Origin" not in preflight.headers
    assert request.status == 200  # served, but the browser keeps it from the page
    assert "Access-Control-Allow-Origin" not in request.headers


async def test_a_star_lets_any_origin_in(anyone: Client, shop_tenant: Tenant) -> None:
    preflight = await anyone.options(
        "/v2/integrations", headers=SDK_PREFLIGHT | {"Origin": "https://a.example"}
    )
    request = await anyone.get(
        "/v2/integrations", headers={"Origin": "https://b.example"} | shop_tenant.auth("view")
    )

    assert preflight.status == 204
    assert preflight.headers["Access-Control-Allow-Origin"] == "*"
    assert request.headers["Access-Control-Allow-Origin"] == "*"


async def test_the_console_never_gets_cors(anyone: Client) -> None:
    preflight = await anyone.options(
        "/console/login", headers=SDK_PREFLIGHT | {"Access-Control-Request-Method": "POST"}
    )
    page = await anyone.get("/console/login", headers={"Origin": SHOP})

    assert preflight.status == 405
    assert "Access-Control-Allow-Origin" not in preflight.headers
    assert page.status == 200
    assert "Access-Control-Allow-Origin" not in page.headers


async def test_without_hub_cors_origins_there_is_no_cors(api: Client, tenant: Tenant) -> None:
    preflight = await api.options("/v2/integrations", headers=SDK_PREFLIGHT)
    request = await api.get("/v2/integrations", headers={"Origin": SHOP} | tenant.auth("view"))

    assert preflight.status == 405
    assert "Access-Control-Allow-Origin" not in preflight.headers
    assert "Access-Control-Allow-Origin" not in request.headers


# --- 415 -----------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "content_type",
    [
        "text/plain",
        "application/x-www-form-urlencoded",
        "multipart/form-data; boundary=x",
        "application/xml",
    ],
)
async def test_a_body_that_is_not_json_is_a_415_in_the_envelope(
    api: Client, tenant: Tenant, content_type: str
) -> None:
    resp = await api.post(
        "/v2/integrations",
        data=b'{"data": {}}',
        headers=tenant.auth("manage") | {"Content-Type": content_type},
    )

    assert resp.status == 415, await resp.text()
    [error] = (await resp.json())["errors"]
    assert error["title"] == "Unsupported Media Type"
    assert error["source"] == "Content-Type"
    assert "application/json" in error["detail"]


@pytest.mark.parametrize(
    "content_type",
    ["application/json", "application/json; charset=utf-8", "application/vnd.api+json"],
)
async def test_json_media_types_are_read(api: Client, tenant: Tenant, content_type: str) -> None:
    resp = await api.post(
        "/v2/integrations",
        data=b'{"data": {"type": "integration"',
        headers=tenant.auth("manage") | {"Content-Type": content_type},
    )

    assert resp.status == 400  # read as JSON, and found broken
    assert "not valid JSON" in (await resp.json())["errors"][0]["detail"]


async def test_requests_without_a_body_may_say_json_as_eps_sdk_does(
    api: Client, tenant: Tenant
) -> None:
    created = await api.post(
        "/v2/integrations", json=webhook_integration(), headers=tenant.auth("manage")
    )
    integration = (await created.json())["data"]["id"]
    json_header = {"Content-Type": "application/json"}

    listed = await api.get("/v2/integrations", headers=tenant.auth("view") | json_header)
    deleted = await api.delete(
        f"/v2/integrations/{integration}", headers=tenant.auth("manage") | json_header
    )

    assert listed.status == 200
    assert deleted.status == 200
