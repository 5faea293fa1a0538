"""Lists over HTTP: pagination, links and totals, stable order, bad page parameters, and the jobs
and logs lists (which stay empty of logs here: no dispatcher runs in these tests)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any, cast
from urllib.parse import parse_qsl, urlsplit
from uuid import UUID

import pytest
from aiohttp import ClientResponse
from aiohttp.test_utils import TestClient
from sqlalchemy import Table, update
from sqlalchemy.ext.asyncio import AsyncEngine

from hub.store import stores
from hub.store.models import Integration
from tests.conftest import Tenant, event_body, make_tenant, webhook_integration

Client = TestClient[Any, Any]

COUNT = 32
BASE = "http://hub.test"


async def create_integration(api: Client, tenant: Tenant, **extra: Any) -> str:
    resp = await api.post(
        "/v2/integrations", json=webhook_integration(**extra), headers=tenant.auth("manage")
    )
    assert resp.status == 201, await resp.text()
    integration_id: str = (await resp.json())["data"]["id"]
    return integration_id


async def page(api: Client, tenant: Tenant, path: str) -> dict[str, Any]:
    resp = await api.get(path, headers=tenant.auth("view"))
    assert resp.status == 200, await resp.text()
    document: dict[str, Any] = await resp.json()
    # Log lists also carry EP's `results` (see test_a_logs_list_without_attempts_…).
    logs = urlsplit(path).path.endswith("/logs")
    assert set(document) == {"data", "links", "meta"} | ({"results"} if logs else set())
    return document


async def bad_request(resp: ClientResponse) -> dict[str, Any]:
    assert resp.status == 400, await resp.text()
    (error,) = (await resp.json())["errors"]
    assert error["status"] == 400
    assert error["title"] == "Bad Request"
    return cast(dict[str, Any], error)


def link(path: str, offset: int, limit: int, query: str = "") -> str:
    return f"{BASE}{path}?{query}page[offset]={offset}&page[limit]={limit}"


@dataclass(frozen=True)
class Populated:
    """A store with `COUNT` integrations; `newest_first` is their ids, newest first."""

    tenant: Tenant
    newest_first: list[str]


@pytest.fixture(scope="module")
async def populated(api: Client, shared_engine: AsyncEngine) -> Populated:
    tenant = await make_tenant(shared_engine)
    created = [
        await create_integration(api, tenant, name=f"hook {i}", enabled=i % 2 == 0)
        for i in range(COUNT)
    ]
    return Populated(tenant, created[::-1])


# --- pagination ----------------------------------------------------------------------------------


async def test_a_list_shows_25_of_the_newest_by_default_with_links_and_totals(
    api: Client, populated: Populated
) -> None:
    document = await page(api, populated.tenant, "/v2/integrations")

    assert [d["id"] for d in document["data"]] == populated.newest_first[:25]
    path = "/v2/integrations"
    assert document["links"] == {
        "self": link(path, 0, 25),
        "first": link(path, 0, 25),
        "last": link(path, 25, 25),
        "next": link(path, 25, 25),
        "prev": None,
    }
    assert document["meta"] == {
        "page": {"limit": 25, "offset": 0, "current": 1, "total": 2},
        "results": {"total": COUNT},
    }


@pytest.mark.parametrize(
    ("offset", "limit", "current", "pages", "nxt", "prev", "last"),
    [
        (0, 10, 1, 4, 10, None, 30),
        (10, 10, 2, 4, 20, 0, 30),
        (20, 10, 3, 4, 30, 10, 30),
        (30, 10, 4, 4, None, 20, 30),
        (25, 25, 2, 2, None, 0, 25),
        (0, 32, 1, 1, None, None, 0),
        (0, 100, 1, 1, None, None, 0),
        (0, 1, 1, 32, 1, None, 31),
        (31, 1, 32, 32, None, 30, 31),
    ],
)
async def test_page_limit_and_offset_choose_the_page_and_its_links(
    api: Client,
    populated: Populated,
    offset: int,
    limit: int,
    current: int,
    pages: int,
    nxt: int | None,
    prev: int | None,
    last: int,
) -> None:
    path = "/v2/integrations"

    document = await page(
        api, populated.tenant, f"{path}?page[offset]={offset}&page[limit]={limit}"
    )

    assert [d["id"] for d in document["data"]] == populated.newest_first[offset : offset + limit]
    assert document["links"] == {
        "self": link(path, offset, limit),
        "first": link(path, 0, limit),
        "last": link(path, last, limit),
        "next": None if nxt is None else link(path, nxt, limit),
        "prev": None if prev is None else link(path, prev, limit),
    }
    assert document["meta"] == {
        "page": {"limit": limit, "offset": offset, "current": current, "total": pages},
        "results": {"total": COUNT},
    }


async def test_following_next_links_visits_every_record_once_in_order(
    api: Client, populated: Populated
) -> None:
    seen: list[str] = []
    url: str | None = f"{BASE}/v2/integrations?page[limit]=7"
    pages = 0
    while url is not None:
        parts = urlsplit(url)
        document = await page(api, populated.tenant, f"{parts.path}?{parts.query}")
        seen += [d["id"] for d in document["data"]]
        url = document["links"]["next"]
        pages += 1

    assert seen == populated.newest_first
    assert pages == 5


async def test_a_page_past_the_end_is_empty_and_has_no_next(
    api: Client, populated: Populated
) -> None:
    document = await page(api, populated.tenant, "/v2/integrations?page[offset]=40")

    assert document["data"] == []
    assert document["links"]["next"] is None
    assert document["meta"]["results"]["total"] == COUNT


async def test_links_keep_the_filters_of_the_request(api: Client, populated: Populated) -> None:
    path = "/v2/integrations"

    document = await page(
        api, populated.tenant, f"{path}?filter[enabled]=true&page[limit]=5&page[offset]=5"
    )

    enabled = populated.newest_first[1::2]  # the even-numbered ones, newest first
    assert [d["id"] for d in document["data"]] == enabled[5:10]
    assert document["meta"]["results"]["total"] == COUNT // 2
    query = "filter[enabled]=true&"
    assert document["links"] == {
        "self": link(path, 5, 5, query),
        "first": link(path, 0, 5, query),
        "last": link(path, 15, 5, query),
        "next": link(path, 10, 5, query),
        "prev": link(path, 0, 5, query),
    }


async def test_records_created_at_the_same_instant_are_ordered_by_id(
    api: Client, tenant: Tenant, shared_engine: AsyncEngine
) -> None:
    ids = [await create_integration(api, tenant) for _ in range(6)]
    instant = datetime(2026, 1, 1, tzinfo=UTC)
    table = cast(Table, Integration.__table__)
    async with shared_engine.begin() as conn:
        store = await stores.get_store_by_name(conn, tenant.name)
        assert store is not None
        await conn.execute(
            update(table).where(table.c.store_id == store.id).values(created_at=instant)
        )
        # The oldest by id is the newest by time: time decides before id does.
        await conn.execute(
            update(table)
            .where(table.c.id == UUID(ids[0]))
            .values(created_at=instant + timedelta(seconds=1))
        )
    expected = [ids[0], *sorted(ids[1:], key=UUID, reverse=True)]

    whole = await page(api, tenant, "/v2/integrations")
    paged: list[str] = []
    for offset in range(0, 6, 2):
        part = await page(api, tenant, f"/v2/integrations?page[limit]=2&page[offset]={offset}")
        paged += [d["id"] for d in part["data"]]

    assert [d["id"] for d in whole["data"]] == expected
    assert paged == expected


async def test_an_empty_list_has_one_empty_page(api: Client, tenant: Tenant) -> None:
    document = await page(api, tenant, "/v2/integrations")

    assert document["data"] == []
    path = "/v2/integrations"
    assert document["links"] == {
        "self": link(path, 0, 25),
        "first": link(path, 0, 25),
        "last": link(path, 0, 25),
        "next": None,
        "prev": None,
    }
    assert document["meta"] == {
        "page": {"limit": 25, "offset": 0, "current": 1, "total": 1},
        "results": {"total": 0},
    }


@pytest.mark.parametrize(
    ("query", "source"),
    [
        ("page[limit]=0", "page[limit]"),
        ("page[limit]=101", "page[limit]"),
        ("page[limit]=-5", "page[limit]"),
        ("page[limit]=abc", "page[limit]"),
        ("page[limit]=2.5", "page[limit]"),
        ("page[limit]=", "page[limit]"),
        ("page[offset]=-1", "page[offset]"),
        ("page[offset]=abc", "page[offset]"),
        ("page[offset]=1e3", "page[offset]"),
        ("page[offset]=99999999999999999999", "page[offset]"),
        ("page[offset]=9223372036854775808", "page[offset]"),
    ],
)
@pytest.mark.parametrize(
    "path",
    [
        "/v2/integrations",
        "/v2/integrations/logs",
        "/v2/integrations/{id}/logs",
        "/v2/integrations/{id}/jobs",
        "/v2/integrations/{id}/jobs/{job}/logs",
    ],
)
async def test_a_bad_page_parameter_is_a_400_naming_it(
    api: Client, tenant: Tenant, path: str, query: str, source: str
) -> None:
    integration_id, job_ids = await integration_with_jobs(api, tenant, 1)

    resp = await api.get(
        f"{path.format(id=integration_id, job=job_ids[0])}?{query}", headers=tenant.auth("view")
    )

    error = await bad_request(resp)
    assert error["source"] == source


async def test_the_largest_offset_is_answered_with_an_empty_page(
    api: Client, tenant: Tenant
) -> None:
    document = await page(api, tenant, "/v2/integrations?page[offset]=9223372036854775807")

    assert document["data"] == []
    assert document["links"]["next"] is None


# --- jobs ----------------------------------------------------------------------------------------


async def integration_with_jobs(
    api: Client, tenant: Tenant, count: int, *, observes: str = "order.created"
) -> tuple[str, list[str]]:
    """An enabled integration and the ids of its `count` jobs, newest first."""
    integration_id = await create_integration(api, tenant, observes=[observes])
    for _ in range(count):
        resp = await api.post("/v2/events", json=event_body(), headers=tenant.auth("publish"))
        assert resp.status == 202, await resp.text()
    document = await page(api, tenant, f"/v2/integrations/{integration_id}/jobs")
    return integration_id, [d["id"] for d in document["data"]]


async def set_enabled(api: Client, tenant: Tenant, integration_id: str, enabled: bool) -> None:
    resp = await api.put(
        f"/v2/integrations/{integration_id}",
        json={"data": {"type": "integration", "enabled": enabled}},
        headers=tenant.auth("manage"),
    )
    assert resp.status == 200, await resp.text()


async def test_jobs_are_listed_newest_first_with_the_list_envelope(
    api: Client, tenant: Tenant
) -> None:
    integration_id, job_ids = await integration_with_jobs(api, tenant, 3)
    path = f"/v2/integrations/{integration_id}/jobs"

    document = await page(api, tenant, f"{path}?page[limit]=2")

    assert [d["id"] for d in document["data"]] == job_ids[:2]
    assert document["meta"] == {
        "page": {"limit": 2, "offset": 0, "current": 1, "total": 2},
        "results": {"total": 3},
    }
    assert document["links"]["next"] == link(path, 2, 2)
    assert document["links"]["prev"] is None
    for job in document["data"]:
        assert job["type"] == "integration-job"
        assert job["status"] == "pending"


async def test_jobs_filter_by_one_or_several_statuses(api: Client, tenant: Tenant) -> None:
    integration_id, cancelled = await integration_with_jobs(api, tenant, 2)
    await set_enabled(api, tenant, integration_id, False)  # cancels the pending jobs
    await set_enabled(api, tenant, integration_id, True)
    resp = await api.post("/v2/events", json=event_body(), headers=tenant.auth("publish"))
    assert resp.status == 202
    path = f"/v2/integrations/{integration_id}/jobs"

    async def ids(status: str) -> list[str]:
        document = await page(api, tenant, f"{path}?filter[status]={status}")
        assert document["meta"]["results"]["total"] == len(document["data"])
        return [d["id"] for d in document["data"]]

    (pending,) = await ids("pending")
    assert await ids("cancelled") == cancelled
    assert await ids("pending,cancelled") == [pending, *cancelled]
    assert await ids("cancelled, pending") == [pending, *cancelled]
    assert await ids("succeeded") == []
    assert await ids("failed,delivering,succeeded") == []


@pytest.mark.parametrize("status", ["bogus", "", ",", "pending,bogus", "PENDING", "pending;failed"])
async def test_a_bad_status_filter_is_a_400_naming_it(
    api: Client, tenant: Tenant, status: str
) -> None:
    integration_id, _ = await integration_with_jobs(api, tenant, 1)

    resp = await api.get(
        f"/v2/integrations/{integration_id}/jobs?filter[status]={status}",
        headers=tenant.auth("view"),
    )

    error = await bad_request(resp)
    assert error["source"] == "filter[status]"


async def test_a_job_is_read_by_id_with_its_state_and_relationships(
    api: Client, tenant: Tenant
) -> None:
    integration_id, (job_id,) = await integration_with_jobs(api, tenant, 1)
    event = await api.post(
        "/v2/events", json=event_body("order.paid"), headers=tenant.auth("publish")
    )
    assert (await event.json())["data"]["jobs"]["total"] == 0

    resp = await api.get(
        f"/v2/integrations/{integration_id}/jobs/{job_id}", headers=tenant.auth("view")
    )

    assert resp.status == 200
    job = (await resp.json())["data"]
    assert job["id"] == job_id
    assert job["type"] == "integration-job"
    assert job["status"] == "pending"
    assert job["attempts"] == 0
    assert job["triggered_by"] == "order.created"
    assert job["last_error"] is None
    assert job["next_attempt_at"].endswith("Z")
    assert job["relationships"]["integration"]["data"] == {
        "type": "integration",
        "id": integration_id,
    }
    assert job["relationships"]["event"]["data"]["type"] == "event"
    assert job["links"]["self"] == f"{BASE}/v2/integrations/{integration_id}/jobs/{job_id}"
    timestamps = job["meta"]["timestamps"]
    assert timestamps["created_at"].endswith("Z")
    assert timestamps["updated_at"].endswith("Z")
    assert timestamps["completed_at"] is None


async def test_a_cancelled_job_shows_why_and_when_it_ended(api: Client, tenant: Tenant) -> None:
    integration_id, (job_id,) = await integration_with_jobs(api, tenant, 1)
    await set_enabled(api, tenant, integration_id, False)

    resp = await api.get(
        f"/v2/integrations/{integration_id}/jobs/{job_id}", headers=tenant.auth("view")
    )

    job = (await resp.json())["data"]
    assert job["status"] == "cancelled"
    assert job["next_attempt_at"] is None
    assert job["last_error"]
    assert job["meta"]["timestamps"]["completed_at"].endswith("Z")


async def test_a_job_is_found_only_under_its_own_integration(api: Client, tenant: Tenant) -> None:
    _, (job_id,) = await integration_with_jobs(api, tenant, 1)
    other_integration = await create_integration(api, tenant, observes=["customer.created"])

    resp = await api.get(
        f"/v2/integrations/{other_integration}/jobs/{job_id}", headers=tenant.auth("view")
    )

    assert resp.status == 404


async def test_a_cancelled_job_can_be_retried_as_a_new_job(api: Client, tenant: Tenant) -> None:
    integration_id, (job_id,) = await integration_with_jobs(api, tenant, 1)
    await set_enabled(api, tenant, integration_id, False)
    await set_enabled(api, tenant, integration_id, True)

    resp = await api.post(
        f"/v2/integrations/{integration_id}/jobs/{job_id}/retry", headers=tenant.auth("manage")
    )

    assert resp.status == 202, await resp.text()
    new = (await resp.json())["data"]
    assert new["id"] != job_id
    assert new["status"] == "pending"
    assert new["relationships"]["retry_of"]["data"] == {"type": "integration-job", "id": job_id}
    document = await page(api, tenant, f"/v2/integrations/{integration_id}/jobs")
    assert [d["id"] for d in document["data"]] == [new["id"], job_id]


async def test_retrying_a_pending_job_or_one_of_a_disabled_integration_is_a_409(
    api: Client, tenant: Tenant
) -> None:
    integration_id, (job_id,) = await integration_with_jobs(api, tenant, 1)
    path = f"/v2/integrations/{integration_id}/jobs/{job_id}/retry"

    pending = await api.post(path, headers=tenant.auth("manage"))
    await set_enabled(api, tenant, integration_id, False)
    disabled = await api.post(path, headers=tenant.auth("manage"))

    for resp in (pending, disabled):
        assert resp.status == 409, await resp.text()
        (error,) = (await resp.json())["errors"]
        assert error["status"] == 409
        assert error["title"] == "Conflict"


# --- logs ----------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "path",
    [
        "/v2/integrations/logs",
        "/v2/integrations/{id}/logs",
        "/v2/integrations/{id}/jobs/{job}/logs",
    ],
)
async def test_a_logs_list_without_attempts_is_an_empty_page(
    api: Client, tenant: Tenant, path: str
) -> None:
    integration_id, (job_id,) = await integration_with_jobs(api, tenant, 1)
    path = path.format(id=integration_id, job=job_id)

    for query, limit in [("", 25), ("?page[limit]=5&filter[succeeded]=false", 5)]:
        document = await page(api, tenant, f"{path}{query}")

        assert document["data"] == []
        kept = "filter[succeeded]=false&" if query else ""
        assert document["links"] == {
            "self": link(path, 0, limit, kept),
            "first": link(path, 0, limit, kept),
            "last": link(path, 0, limit, kept),
            "next": None,
            "prev": None,
        }
        page_meta = {"limit": limit, "offset": 0, "current": 1, "total": 1}
        # EP's log lists (and its SDK's IntegrationLogsResponse type) also have the page's
        # numbers directly in `meta`, and `results` at the top.
        assert document["meta"] == {"page": page_meta, "results": {"total": 0}, **page_meta}
        assert document["results"] == {"total": 0}


@pytest.mark.parametrize("path", ["/v2/integrations/logs", "/v2/integrations/{id}/logs"])
async def test_a_bad_succeeded_filter_is_a_400_naming_it(
    api: Client, tenant: Tenant, path: str
) -> None:
    integration_id = await create_integration(api, tenant)

    resp = await api.get(
        f"{path.format(id=integration_id)}?filter[succeeded]=perhaps", headers=tenant.auth("view")
    )

    error = await bad_request(resp)
    assert error["source"] == "filter[succeeded]"


async def test_link_queries_are_parseable_back_into_the_same_parameters(
    api: Client, populated: Populated
) -> None:
    document = await page(
        api, populated.tenant, "/v2/integrations?filter[observes]=order.created&page[limit]=3"
    )

    query = dict(parse_qsl(urlsplit(document["links"]["next"]).query))
    assert query == {"filter[observes]": "order.created", "page[offset]": "3", "page[limit]": "3"}
