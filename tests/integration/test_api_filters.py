"""Elastic Path's `filter=` and `sort=` on every list that filters: integrations, an
integration's jobs, and the logs (store-wide, an integration's, a job's); and the log lists'
`filter[created_at]` forms. A filter or sort the hub does not know is a 400 naming it."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any
from urllib.parse import quote, urlsplit
from uuid import UUID

import pytest
from aiohttp.test_utils import TestClient

from hub.settings import Settings
from tests.conftest import Tenant, event_body, settings_for, webhook_integration
from tests.support.sinks import ScriptedDeliverer
from tests.support.stack import Stack, hub_stack
from tests.support.waiting import eventually

Client = TestClient[Any, Any]

STOMP = {"addresses": ["stomp://broker.example.com:61613"], "destination": "/queue/orders"}
SQS = {
    "url": "https://sqs.eu-west-1.amazonaws.com/123456789012/orders",
    "aws_access_key_id": "AKIAEXAMPLEKEYID0001",
    "aws_secret_access_key": "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY",
    "region": "eu-west-1",
}


def stamp(moment: datetime) -> str:
    return moment.isoformat().replace("+00:00", "Z")


async def listed(api: Client, tenant: Tenant, path: str, query: str) -> list[dict[str, Any]]:
    resp = await api.get(f"{path}?{query}", headers=tenant.auth("view"))
    assert resp.status == 200, await resp.text()
    data: list[dict[str, Any]] = (await resp.json())["data"]
    return data


async def refused(api: Client, tenant: Tenant, path: str, query: str) -> dict[str, Any]:
    resp = await api.get(f"{path}?{query}", headers=tenant.auth("view"))
    assert resp.status == 400, await resp.text()
    [error] = (await resp.json())["errors"]
    assert error["title"] == "Bad Request"
    return dict(error)


# --- integrations --------------------------------------------------------------------------------


@dataclass
class Integrations:
    tenant: Tenant
    ids: dict[str, str]
    """By name."""
    between: datetime
    """After the first two were created, before the others."""


async def create(api: Client, tenant: Tenant, body: dict[str, Any]) -> str:
    resp = await api.post("/v2/integrations", json=body, headers=tenant.auth("manage"))
    assert resp.status == 201, await resp.text()
    integration_id: str = (await resp.json())["data"]["id"]
    return integration_id


@pytest.fixture
async def four(api: Client, tenant: Tenant) -> Integrations:
    ids = {
        "alpha orders": await create(
            api, tenant, webhook_integration(name="alpha orders", observes=["order.paid"])
        ),
        "bravo orders": await create(
            api,
            tenant,
            webhook_integration(name="bravo orders", enabled=False, observes=["order.*"]),
        ),
    }
    await asyncio.sleep(0.01)
    between = datetime.now(UTC)
    await asyncio.sleep(0.01)
    stomp = webhook_integration(name="charlie customers", observes=["customer.created"])
    stomp["data"] |= {"integration_type": "stomp", "configuration": STOMP}
    ids["charlie customers"] = await create(api, tenant, stomp)
    sqs = webhook_integration(name="delta", enabled=False, description="Orders (100% of them)")
    sqs["data"] |= {"integration_type": "aws_sqs", "configuration": SQS}
    ids["delta"] = await create(api, tenant, sqs)
    return Integrations(tenant, ids, between)


async def names(api: Client, four: Integrations, query: str) -> list[str]:
    return [i["name"] for i in await listed(api, four.tenant, "/v2/integrations", query)]


async def test_the_sdks_filter_finds_what_it_says(api: Client, four: Integrations) -> None:
    assert await names(api, four, "filter=eq(enabled,true):eq(integration_type,webhook)") == [
        "alpha orders"
    ]
    assert await names(api, four, "filter=eq(enabled,false)") == ["delta", "bravo orders"]


@pytest.mark.parametrize(
    ("query", "expected"),
    [
        ("filter=like(name,*ORDERS*)", {"alpha orders", "bravo orders"}),
        ("filter=like(name,b*)", {"bravo orders"}),
        ("filter=eq(name,delta)", {"delta"}),
        ("filter=like(description,*100%25*)", {"delta"}),
        ("filter=like(description,*100_*)", set()),
        ("filter=in(integration_type,stomp,aws_sqs)", {"charlie customers", "delta"}),
        ("filter=eq(observes,order.paid)", {"alpha orders", "bravo orders"}),
        ("filter=eq(observes,order.*)", {"bravo orders"}),
        (
            "filter=in(observes,order.paid,customer.created)",
            {"alpha orders", "bravo orders", "charlie customers"},
        ),
        ("filter=eq(enabled,false)&filter[integration_type]=webhook", {"bravo orders"}),
        ("filter=like(name,*orders*)&filter=eq(enabled,true)", {"alpha orders"}),
        ('filter=eq(name,"charlie customers")', {"charlie customers"}),
    ],
)
async def test_integrations_filter_on_each_of_their_fields(
    api: Client, four: Integrations, query: str, expected: set[str]
) -> None:
    assert set(await names(api, four, query)) == expected


async def test_integrations_filter_on_their_times(api: Client, four: Integrations) -> None:
    after = f"filter=gt(created_at,{stamp(four.between)})"
    before = f"filter=le(created_at,{quote(stamp(four.between))})"

    assert set(await names(api, four, after)) == {"charlie customers", "delta"}
    assert set(await names(api, four, before)) == {"alpha orders", "bravo orders"}
    assert await names(api, four, f"filter=lt(updated_at,{stamp(four.between)})") == [
        "bravo orders",
        "alpha orders",
    ]


@pytest.mark.parametrize(
    ("query", "source", "named"),
    [
        ("filter=eq(colour,red)", "filter", "colour"),
        ("filter=ne(enabled,true)", "filter", "'ne'"),
        ("filter=like(enabled,t*)", "filter", "like does not apply to enabled"),
        ("filter=eq(integration_type,ftp)", "filter", "webhook, aws_sqs, stomp, amqp or web_push"),
        ("filter=eq(enabled,true)eq(name,x)", "filter", "expected :"),
        ("filter=", "filter", "empty"),
        ("filter[colour]=red", "filter[colour]", "filter[colour]"),
        ("filter[enabled]=maybe", "filter[enabled]", "true or false"),
        ("sort=colour", "sort", "colour"),
        ("sort=name&sort=-name", "sort", "more than once"),
    ],
)
async def test_an_unknown_filter_or_sort_is_a_400_naming_it(
    api: Client, tenant: Tenant, query: str, source: str, named: str
) -> None:
    error = await refused(api, tenant, "/v2/integrations", query)

    assert error["source"] == source
    assert named in error["detail"]


async def test_integrations_sort_by_name_and_times_either_way(
    api: Client, four: Integrations
) -> None:
    everyone = ["alpha orders", "bravo orders", "charlie customers", "delta"]
    assert await names(api, four, "sort=name") == everyone
    assert await names(api, four, "sort=-name") == everyone[::-1]
    assert await names(api, four, "sort=created_at") == everyone
    assert await names(api, four, "") == everyone[::-1]  # the default: newest first
    resp = await api.put(
        f"/v2/integrations/{four.ids['bravo orders']}",
        json={"data": {"type": "integration", "description": "touched"}},
        headers=four.tenant.auth("manage"),
    )
    assert resp.status == 200
    assert (await names(api, four, "sort=-updated_at"))[0] == "bravo orders"
    assert (await names(api, four, "sort=updated_at"))[-1] == "bravo orders"


async def test_a_sort_with_ties_pages_through_every_integration_once_in_id_order(
    api: Client, tenant: Tenant
) -> None:
    created = [await create(api, tenant, webhook_integration(name="same")) for _ in range(5)]

    for sort, ids in (("name", sorted(created)), ("-name", sorted(created, reverse=True))):
        seen: list[str] = []
        for offset in range(0, 6, 2):
            page = await listed(
                api, tenant, "/v2/integrations", f"sort={sort}&page[limit]=2&page[offset]={offset}"
            )
            seen += [i["id"] for i in page]
        assert seen == ids, sort


async def test_list_links_keep_the_filter_and_the_sort(api: Client, four: Integrations) -> None:
    query = "filter=like(name,*orders*):eq(enabled,true)&sort=-name&page[limit]=1"

    resp = await api.get(f"/v2/integrations?{query}", headers=four.tenant.auth("view"))
    document = await resp.json()

    link = urlsplit(document["links"]["self"])
    follow = await api.get(f"{link.path}?{link.query}", headers=four.tenant.auth("view"))
    assert (await follow.json())["data"] == document["data"]
    assert document["meta"]["results"]["total"] == 1


# --- jobs ----------------------------------------------------------------------------------------


async def test_jobs_take_eps_filter_and_sort(api: Client, tenant: Tenant) -> None:
    integration = await create(api, tenant, webhook_integration(observes=["order.*"]))
    path = f"/v2/integrations/{integration}/jobs"
    for key in ("order.created", "order.paid"):
        resp = await api.post("/v2/events", json=event_body(key), headers=tenant.auth("publish"))
        assert resp.status == 202
    await asyncio.sleep(0.01)
    between = stamp(datetime.now(UTC))
    await asyncio.sleep(0.01)
    resp = await api.post(
        "/v2/events", json=event_body("order.fulfilled"), headers=tenant.auth("publish")
    )
    assert resp.status == 202

    async def keys(query: str) -> list[str]:
        return [job["triggered_by"] for job in await listed(api, tenant, path, query)]

    assert await keys("") == ["order.fulfilled", "order.paid", "order.created"]
    assert await keys("sort=created_at") == ["order.created", "order.paid", "order.fulfilled"]
    assert await keys("sort=-updated_at") == ["order.fulfilled", "order.paid", "order.created"]
    assert await keys("filter=eq(triggered_by,order.paid)") == ["order.paid"]
    assert await keys("filter=like(triggered_by,*ed)") == ["order.fulfilled", "order.created"]
    assert await keys("filter=in(status,pending,failed)") == await keys("")
    assert await keys("filter=eq(status,failed)") == []
    assert await keys(f"filter=ge(created_at,{between})") == ["order.fulfilled"]
    # The older forms mean the same.
    assert await keys(f"filter[created_at][gte]={between}") == ["order.fulfilled"]
    assert await keys(f"filter=lt(created_at,{between})&filter[triggered_by]=order.paid") == [
        "order.paid"
    ]
    for query, source in (
        ("sort=name", "sort"),
        ("filter=eq(enabled,true)", "filter"),
        ("filter=eq(status,lost)", "filter"),
        ("filter[enabled]=true", "filter[enabled]"),
    ):
        assert (await refused(api, tenant, path, query))["source"] == source


# --- logs ----------------------------------------------------------------------------------------


@dataclass
class Delivered:
    stack: Stack
    ok: str
    """An integration whose endpoint answers 200."""
    failing: str
    """…and one that answers 503 to every attempt (3 attempts: 2 retries)."""
    between: datetime
    """After the first event's attempts, before the second's."""
    failing_job: str


@pytest.fixture
async def delivered(fresh_db: str) -> AsyncIterator[Delivered]:
    settings: Settings = settings_for(fresh_db, retry_schedule="0.05s,0.05s")
    deliverer = ScriptedDeliverer()
    async with hub_stack(fresh_db, settings, [deliverer]) as stack:
        ok = await stack.create_integration(webhook_integration(name="ok"))
        failing = await stack.create_integration(webhook_integration(name="failing"))
        deliverer.status[UUID(failing)] = 503
        stack.start_worker()
        await stack.publish(event_body())

        async def logs_written() -> bool:
            document = await stack.get("/v2/integrations/logs")
            return int(document["results"]["total"]) == 4

        await eventually(logs_written, what="1 + 3 attempts logged")
        await asyncio.sleep(0.01)
        between = datetime.now(UTC)
        await asyncio.sleep(0.01)
        await stack.publish(event_body())
        await eventually(
            lambda: stack.scalar("SELECT count(*) = 8 FROM integration_logs"),
            what="the second event's attempts logged",
        )
        [job, _] = await stack.jobs(failing)
        yield Delivered(stack, ok, failing, between, job["id"])


async def test_log_lists_take_eps_filter_and_the_created_at_forms(delivered: Delivered) -> None:
    stack, between = delivered.stack, stamp(delivered.between)

    async def logs(path: str, query: str) -> list[dict[str, Any]]:
        document = await stack.get(f"{path}?{query}")
        assert document["results"] == {"total": len(document["data"])}
        data: list[dict[str, Any]] = document["data"]
        return data

    store = "/v2/integrations/logs"
    assert len(await logs(store, "filter=eq(succeeded,false)")) == 6
    assert len(await logs(store, "filter=eq(succeeded,true)")) == 2
    assert len(await logs(store, "filter=ge(status_code,500):eq(attempt,3)")) == 2
    assert len(await logs(store, f"filter=ge(created_at,{between})")) == 4
    assert len(await logs(store, f"filter[created_at][gte]={between}")) == 4
    assert len(await logs(store, f"filter[created_at][lte]={between}")) == 4
    assert len(await logs(store, f"filter=lt(created_at,{between}):eq(succeeded,true)")) == 1
    mine = f"/v2/integrations/{delivered.failing}/logs"
    assert len(await logs(mine, f"filter=gt(created_at,{between})")) == 3
    assert len(await logs(mine, "filter[succeeded]=true")) == 0
    job = f"/v2/integrations/{delivered.failing}/jobs/{delivered.failing_job}/logs"
    assert [log["attempt"] for log in await logs(job, "")] == [3, 2, 1]
    assert [log["attempt"] for log in await logs(job, "sort=created_at")] == [1, 2, 3]
    assert [log["attempt"] for log in await logs(job, "filter=le(attempt,2)")] == [2, 1]


async def test_log_lists_sort_by_creation_either_way(delivered: Delivered) -> None:
    newest = (await delivered.stack.get("/v2/integrations/logs"))["data"]
    oldest = (await delivered.stack.get("/v2/integrations/logs?sort=created_at"))["data"]
    explicit = (await delivered.stack.get("/v2/integrations/logs?sort=-created_at"))["data"]

    assert [log["id"] for log in oldest] == [log["id"] for log in newest][::-1]
    assert explicit == newest
    times = [log["meta"]["timestamps"]["created_at"] for log in oldest]
    assert times == sorted(times)


@pytest.mark.parametrize(
    ("query", "source"),
    [
        ("sort=name", "sort"),
        ("sort=updated_at", "sort"),
        ("filter=eq(enabled,true)", "filter"),
        ("filter=like(status_code,5*)", "filter"),
        ("filter=eq(created_at,2026-11-22T10:00:00Z)", "filter"),
        ("filter[created_at][gte]=yesterday", "filter[created_at][gte]"),
        ("filter[status]=failed", "filter[status]"),
    ],
)
async def test_a_bad_log_filter_or_sort_is_a_400_naming_it(
    api: Client, tenant: Tenant, query: str, source: str
) -> None:
    assert (await refused(api, tenant, "/v2/integrations/logs", query))["source"] == source
