"""Per-store quotas: a store may have `HUB_MAX_INTEGRATIONS_PER_STORE` integrations (a 422
beyond, counted under a lock so that concurrent creates cannot pass it together), and one
publish request may create `HUB_MAX_JOBS_PER_PUBLISH` jobs (a 413 beyond, before anything is
written)."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Any

import pytest
from aiohttp.test_utils import TestClient, TestServer
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine

from hub.settings import Settings
from hub.web import create_app
from tests.conftest import Tenant, event_body, make_tenant, settings_for, webhook_integration

Client = TestClient[Any, Any]


@pytest.fixture
async def quota(shared_db: str, shared_engine: AsyncEngine) -> AsyncIterator[Client]:
    settings = settings_for(shared_db, max_integrations_per_store=3, max_jobs_per_publish=5)
    async with TestClient(TestServer(create_app(settings, shared_engine), host="127.0.0.1")) as c:
        yield c


async def create(client: Client, tenant: Tenant) -> Any:
    return await client.post(
        "/v2/integrations", json=webhook_integration(), headers=tenant.auth("manage")
    )


async def test_a_store_at_its_integration_quota_gets_a_422_until_it_deletes_one(
    quota: Client, shared_engine: AsyncEngine
) -> None:
    tenant = await make_tenant(shared_engine)
    other = await make_tenant(shared_engine)
    created = [await create(quota, tenant) for _ in range(3)]
    assert [r.status for r in created] == [201, 201, 201]

    refused = await create(quota, tenant)
    elsewhere = await create(quota, other)

    assert refused.status == 422, await refused.text()
    [error] = (await refused.json())["errors"]
    assert error == {
        "status": 422,
        "title": "Quota Exceeded",
        "detail": "This store has 3 integrations, the most it may have (3, "
        "HUB_MAX_INTEGRATIONS_PER_STORE): delete one before creating another",
    }
    assert elsewhere.status == 201, "the quota is per store"
    first = (await created[0].json())["data"]["id"]
    deleted = await quota.delete(f"/v2/integrations/{first}", headers=tenant.auth("manage"))
    assert deleted.status == 200
    assert (await create(quota, tenant)).status == 201


async def test_concurrent_creates_cannot_pass_the_quota_together(
    quota: Client, shared_engine: AsyncEngine
) -> None:
    tenant = await make_tenant(shared_engine)

    answers = await asyncio.gather(*(create(quota, tenant) for _ in range(8)))

    assert sorted(r.status for r in answers) == [201] * 3 + [422] * 5
    listed = await quota.get("/v2/integrations", headers=tenant.auth("view"))
    assert (await listed.json())["meta"]["results"]["total"] == 3


async def test_a_publish_that_would_create_too_many_jobs_is_a_413_and_stores_nothing(
    quota: Client, shared_engine: AsyncEngine
) -> None:
    tenant = await make_tenant(shared_engine)
    for _ in range(3):
        assert (await create(quota, tenant)).status == 201
    publish = tenant.auth("publish")

    one = await quota.post("/v2/events", json=event_body(), headers=publish)  # 3 jobs
    two = await quota.post(
        "/v2/events", json={"data": [event_body()["data"]] * 2}, headers=publish
    )  # 6 jobs
    unobserved = await quota.post(
        "/v2/events", json={"data": [event_body("order.paid")["data"]] * 100}, headers=publish
    )  # none observe order.paid: no jobs at all

    assert one.status == 202, await one.text()
    assert unobserved.status == 202, await unobserved.text()
    assert two.status == 413, await two.text()
    [error] = (await two.json())["errors"]
    assert error == {
        "status": 413,
        "title": "Payload Too Large",
        "detail": "This request would create 6 jobs (2 events, each to every matching "
        "integration); one publish request may create at most 5 (HUB_MAX_JOBS_PER_PUBLISH): "
        "publish fewer events per request",
        "source": "data",
    }
    async with shared_engine.connect() as conn:
        stored = (
            await conn.execute(
                text(
                    "SELECT count(*) FROM events e JOIN stores s ON s.id = e.store_id "
                    "WHERE s.name = :name AND e.triggered_by = 'order.created'"
                ),
                {"name": tenant.name},
            )
        ).scalar_one()
    assert stored == 1


def test_the_quotas_default_to_1000_integrations_and_10000_jobs_and_0_turns_them_off() -> None:
    defaults = Settings(_env_file=None)
    off = Settings(_env_file=None, max_integrations_per_store=0, max_jobs_per_publish=0)

    assert (defaults.max_integrations_per_store, defaults.max_jobs_per_publish) == (1000, 10_000)
    assert (off.max_integrations_per_store, off.max_jobs_per_publish) == (0, 0)
