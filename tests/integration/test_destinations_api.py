"""The `amqp` and `web_push` types through the API: validation, the AMQP URL stored encrypted
and shown without its password (a masked URL sent back keeps the stored one), nested secrets,
and the list filter."""

from __future__ import annotations

from typing import Any
from uuid import UUID

import pytest
from aiohttp.test_utils import TestClient
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine

from deliverers.web_push import generate_key_pair
from hub.store import integrations
from tests.conftest import Tenant

Client = TestClient[Any, Any]
URL = "amqp://orders:S3cret-pa55@rabbit.example.com:5672/shop"
KEYS = {
    "p256dh": generate_key_pair().public_key,
    "auth": "c2VjcmV0LWF1dGgtMTIzNA",  # 16 bytes
}


def body(integration_type: str, configuration: dict[str, Any]) -> dict[str, Any]:
    return {
        "data": {
            "type": "integration",
            "name": "bus",
            "integration_type": integration_type,
            "observes": ["order.created"],
            "configuration": configuration,
        }
    }


async def create(api: Client, tenant: Tenant, payload: dict[str, Any]) -> dict[str, Any]:
    resp = await api.post("/v2/integrations", json=payload, headers=tenant.auth("manage"))
    assert resp.status == 201, await resp.text()
    data: dict[str, Any] = (await resp.json())["data"]
    return data


async def test_an_amqp_url_is_stored_encrypted_and_shown_without_its_password(
    api: Client, tenant: Tenant, shared_engine: AsyncEngine
) -> None:
    created = await create(api, tenant, body("amqp", {"url": URL, "exchange": "orders"}))
    path = f"/v2/integrations/{created['id']}"

    assert created["configuration"]["url"] == "amqp://orders:****@rabbit.example.com:5672/shop"
    resp = await api.put(
        path,
        json={
            "data": {
                "type": "integration",
                "configuration": {**created["configuration"], "routing_key": "orders.all"},
            }
        },
        headers=tenant.auth("manage"),
    )
    assert resp.status == 200, await resp.text()
    async with shared_engine.connect() as conn:
        raw = (
            await conn.execute(
                text("SELECT configuration FROM integrations WHERE id = :id"),
                {"id": created["id"]},
            )
        ).scalar_one()
        store_id = (
            await conn.execute(
                text("SELECT store_id FROM integrations WHERE id = :id"), {"id": created["id"]}
            )
        ).scalar_one()
        stored = await integrations.get_integration(conn, store_id, UUID(created["id"]))
    assert set(raw["url"]) == {"$enc"}
    assert "S3cret" not in str(raw)
    assert stored is not None
    assert stored.configuration["url"] == URL  # the masked echo kept the password
    assert stored.configuration["routing_key"] == "orders.all"


async def test_a_webhook_url_is_not_encrypted(
    api: Client, tenant: Tenant, shared_engine: AsyncEngine
) -> None:
    created = await create(api, tenant, body("webhook", {"url": "https://example.com/h"}))
    async with shared_engine.connect() as conn:
        raw = (
            await conn.execute(
                text("SELECT configuration FROM integrations WHERE id = :id"),
                {"id": created["id"]},
            )
        ).scalar_one()

    assert raw["url"] == "https://example.com/h", "url is a secret of amqp only"


@pytest.mark.parametrize(
    ("integration_type", "configuration", "source"),
    [
        ("amqp", {"url": "http://rabbit.example.com", "exchange": "x"}, "url"),
        ("amqp", {"url": "amqp://rabbit.example.com", "exchange": "x"}, "url"),
        ("amqp", {"url": URL + "?cafile=/etc/passwd", "exchange": "x"}, "url"),
        ("amqp", {"url": "amqp://u:p@169.254.169.254/", "exchange": "x"}, "url"),
        ("amqp", {"url": URL, "exchange": "bad name!"}, "exchange"),
        ("amqp", {"url": URL, "exchange": "x", "headers": {"hub-job-id": "1"}}, "headers"),
        ("amqp", {"url": URL, "exchange": "amq.topic", "declare": True}, "configuration"),
        ("web_push", {"endpoint": "http://push.example.com/x", "keys": KEYS}, "endpoint"),
        ("web_push", {"endpoint": "https://10.0.0.1/x", "keys": KEYS}, "endpoint"),
        (
            "web_push",
            {"endpoint": "https://push.example.com/x", "keys": {**KEYS, "p256dh": "AAAA"}},
            "keys.p256dh",
        ),
        (
            "web_push",
            {"endpoint": "https://push.example.com/x", "keys": {**KEYS, "auth": "AAAA"}},
            "keys.auth",
        ),
        (
            "web_push",
            {"endpoint": "https://push.example.com/x", "keys": KEYS, "topic": "no spaces"},
            "topic",
        ),
    ],
)
async def test_a_bad_configuration_is_a_422_naming_the_field(
    api: Client, tenant: Tenant, integration_type: str, configuration: dict[str, Any], source: str
) -> None:
    resp = await api.post(
        "/v2/integrations", json=body(integration_type, configuration), headers=tenant.auth()
    )

    assert resp.status == 422, await resp.text()
    sources = [e.get("source") for e in (await resp.json())["errors"]]
    expected = "data.configuration" if source == "configuration" else f"data.configuration.{source}"
    assert expected in sources


async def test_a_browser_subscription_is_a_web_push_configuration_and_filters_by_type(
    api: Client, tenant: Tenant
) -> None:
    subscription = {
        "endpoint": "https://push.example.com/send/abc",
        "expirationTime": None,
        "keys": KEYS,
    }
    created = await create(api, tenant, body("web_push", subscription))
    amqp = await create(api, tenant, body("amqp", {"url": URL, "exchange": "orders"}))
    resp = await api.get(
        "/v2/integrations?filter[integration_type]=web_push", headers=tenant.auth("view")
    )
    bad = await api.get(
        "/v2/integrations?filter[integration_type]=pigeon", headers=tenant.auth("view")
    )

    ids = [i["id"] for i in (await resp.json())["data"]]
    assert created["id"] in ids
    assert amqp["id"] not in ids
    assert created["configuration"]["keys"]["auth"].endswith(KEYS["auth"][-4:])
    assert created["configuration"]["keys"]["auth"].startswith("****")
    assert bad.status == 400
    assert "web_push" in (await bad.json())["errors"][0]["detail"]
