"""Publishing events over HTTP: single and batch, idempotency, limits, and the fan-out to jobs."""

from __future__ import annotations

import asyncio
import secrets
from collections.abc import AsyncIterator
from typing import Any
from uuid import UUID

import asyncpg
import pytest
from aiohttp import ClientResponse
from aiohttp.test_utils import TestClient, TestServer
from sqlalchemy.ext.asyncio import AsyncEngine

from hub.store import enqueue
from hub.store.engine import plain_url
from hub.web import create_app
from tests.conftest import Tenant, event_body, settings_for, webhook_integration

Client = TestClient[Any, Any]

SMALL_EVENT_BYTES = 1000
SMALL_BODY_BYTES = 5000


@pytest.fixture(scope="module")
async def small_api(shared_db: str, shared_engine: AsyncEngine) -> AsyncIterator[Client]:
    """The API with tiny limits: 1000 bytes per event payload, 5000 per request body."""
    settings = settings_for(
        shared_db, max_event_bytes=SMALL_EVENT_BYTES, max_body_bytes=SMALL_BODY_BYTES
    )
    app = create_app(settings, shared_engine)
    async with TestClient(TestServer(app, host="127.0.0.1")) as client:
        yield client


async def integration(api: Client, tenant: Tenant, *observes: str, enabled: bool = True) -> str:
    body = webhook_integration(observes=list(observes), enabled=enabled)
    resp = await api.post("/v2/integrations", json=body, headers=tenant.auth("manage"))
    assert resp.status == 201, await resp.text()
    integration_id: str = (await resp.json())["data"]["id"]
    return integration_id


async def publish(
    api: Client, tenant: Tenant, body: dict[str, Any], headers: dict[str, str] | None = None
) -> ClientResponse:
    return await api.post("/v2/events", json=body, headers=tenant.auth("publish") | (headers or {}))


async def event(api: Client, tenant: Tenant, event_id: str) -> dict[str, Any]:
    resp = await api.get(f"/v2/events/{event_id}", headers=tenant.auth("view"))
    assert resp.status == 200, await resp.text()
    data: dict[str, Any] = (await resp.json())["data"]
    return data


async def job_total(api: Client, tenant: Tenant, integration_id: str) -> int:
    resp = await api.get(f"/v2/integrations/{integration_id}/jobs", headers=tenant.auth("view"))
    assert resp.status == 200, await resp.text()
    total: int = (await resp.json())["meta"]["results"]["total"]
    return total


async def errors_of(resp: ClientResponse, status: int) -> list[dict[str, Any]]:
    assert resp.status == status, await resp.text()
    assert resp.content_type == "application/json"
    errors: list[dict[str, Any]] = (await resp.json())["errors"]
    assert errors
    for error in errors:
        assert error["status"] == status
        assert set(error) <= {"status", "title", "detail", "source"}
    return errors


def batch(*keys: str, **extra: Any) -> dict[str, Any]:
    return {"data": [event_body(key, **extra)["data"] for key in keys]}


# --- publishing ----------------------------------------------------------------------------------


async def test_publishing_an_event_stores_it_and_answers_202_with_its_job_count(
    api: Client, tenant: Tenant
) -> None:
    await integration(api, tenant, "order.created")
    body = event_body(payload={"data": {"type": "order", "id": "o-1"}, "included": {"items": []}})

    resp = await publish(api, tenant, body)

    assert resp.status == 202
    data = (await resp.json())["data"]
    UUID(data["id"])
    assert data["type"] == "event"
    assert data["triggered_by"] == "order.created"
    assert data["jobs"] == {"total": 1}
    assert data["client_id"] is None
    assert data["payload"] == body["data"]["payload"]
    assert data["links"]["self"] == f"http://hub.test/v2/events/{data['id']}"
    assert data["meta"]["timestamps"]["created_at"].endswith("Z")


async def test_an_event_nobody_observes_is_stored_with_no_jobs(api: Client, tenant: Tenant) -> None:
    resp = await publish(api, tenant, event_body("customer.deleted"))

    assert resp.status == 202
    data = (await resp.json())["data"]
    assert data["jobs"] == {"total": 0}
    stored = await event(api, tenant, data["id"])
    assert stored["jobs"] == {"total": 0, "data": []}


@pytest.mark.parametrize("key", ["wishlist_ext.created", "integration.test", "order.paid"])
async def test_catalogue_custom_and_test_keys_can_be_published(
    api: Client, tenant: Tenant, key: str
) -> None:
    resp = await publish(api, tenant, event_body(key))

    assert resp.status == 202, await resp.text()


async def test_a_batch_is_published_in_one_go_and_answered_in_order(
    api: Client, tenant: Tenant
) -> None:
    await integration(api, tenant, "order.*")
    keys = ("order.created", "customer.created", "order.paid")

    resp = await publish(api, tenant, batch(*keys))

    assert resp.status == 202
    data = (await resp.json())["data"]
    assert [d["triggered_by"] for d in data] == list(keys)
    assert [d["jobs"]["total"] for d in data] == [1, 0, 1]
    assert len({d["id"] for d in data}) == 3
    for item in data:
        assert (await event(api, tenant, item["id"]))["triggered_by"] == item["triggered_by"]


async def test_a_batch_of_a_hundred_events_is_accepted(api: Client, tenant: Tenant) -> None:
    integration_id = await integration(api, tenant, "order.created")
    body = {
        "data": [
            event_body(payload={"data": {"type": "order", "id": f"o-{i}"}})["data"]
            for i in range(100)
        ]
    }

    resp = await publish(api, tenant, body)

    assert resp.status == 202
    data = (await resp.json())["data"]
    assert [d["payload"]["data"]["id"] for d in data] == [f"o-{i}" for i in range(100)]
    assert await job_total(api, tenant, integration_id) == 100


@pytest.mark.parametrize("size", [0, 101])
async def test_a_batch_must_hold_between_one_and_a_hundred_events(
    api: Client, tenant: Tenant, size: int
) -> None:
    integration_id = await integration(api, tenant, "order.created")

    resp = await publish(api, tenant, batch(*["order.created"] * size))

    errors = await errors_of(resp, 422)
    assert [e.get("source") for e in errors] == ["data"]
    assert await job_total(api, tenant, integration_id) == 0


async def test_a_batch_with_one_bad_event_publishes_none_of_them(
    api: Client, tenant: Tenant
) -> None:
    integration_id = await integration(api, tenant, "*")

    resp = await publish(api, tenant, batch("order.created", "order.exploded", "order.*"))

    errors = await errors_of(resp, 422)
    assert {e.get("source") for e in errors} == {"data[1].triggered_by", "data[2].triggered_by"}
    assert await job_total(api, tenant, integration_id) == 0


# --- idempotency ---------------------------------------------------------------------------------


async def test_publishing_the_same_client_id_again_returns_the_original_event_with_200(
    api: Client, tenant: Tenant
) -> None:
    integration_id = await integration(api, tenant, "order.created")
    client_id = f"evt-{secrets.token_hex(4)}"

    first = await publish(api, tenant, event_body(id=client_id))
    second = await publish(api, tenant, event_body(id=client_id))

    assert (first.status, second.status) == (202, 200)
    original, repeated = (await first.json())["data"], (await second.json())["data"]
    assert repeated["id"] == original["id"]
    assert repeated["client_id"] == client_id
    assert repeated["payload"] == original["payload"]
    assert repeated["jobs"] == {"total": 1}
    assert await job_total(api, tenant, integration_id) == 1


async def test_the_idempotency_key_header_makes_a_publish_idempotent(
    api: Client, tenant: Tenant
) -> None:
    integration_id = await integration(api, tenant, "order.created")
    header = {"Idempotency-Key": f"idem-{secrets.token_hex(4)}"}

    first = await publish(api, tenant, event_body(), header)
    second = await publish(api, tenant, event_body(), header)
    same_as_id = await publish(api, tenant, event_body(id=header["Idempotency-Key"]))

    assert (first.status, second.status, same_as_id.status) == (202, 200, 200)
    original = (await first.json())["data"]
    assert original["client_id"] == header["Idempotency-Key"]
    assert (await second.json())["data"]["id"] == original["id"]
    assert (await same_as_id.json())["data"]["id"] == original["id"]
    assert await job_total(api, tenant, integration_id) == 1


async def test_an_idempotency_key_reused_with_another_body_is_a_409_and_stores_nothing(
    api: Client, tenant: Tenant
) -> None:
    integration_id = await integration(api, tenant, "order.created")
    key = f"idem-{secrets.token_hex(4)}"
    header = {"Idempotency-Key": key}
    first = await publish(api, tenant, event_body(), header)
    original = (await first.json())["data"]

    other_payload = await publish(
        api, tenant, event_body(payload={"data": {"type": "order", "id": "o-2"}}), header
    )
    other_key = await publish(api, tenant, event_body("order.updated"), header)

    for resp in (other_payload, other_key):
        assert resp.status == 409, await resp.text()
        [error] = (await resp.json())["errors"]
        assert error["title"] == "Conflict"
        assert error["source"] == "Idempotency-Key"
        assert error["detail"].startswith(
            f"The Idempotency-Key {key!r} was already used for a different event (published "
        )
        assert f"id {original['id']}): a repeat must carry the same triggered_by" in error["detail"]
    assert await job_total(api, tenant, integration_id) == 1
    stored = await api.get(f"/v2/events/{original['id']}", headers=tenant.auth("publish"))
    assert (await stored.json())["data"]["payload"] == original["payload"]


async def test_the_same_event_in_another_key_order_or_spacing_is_a_repeat(
    api: Client, tenant: Tenant
) -> None:
    header = {"Idempotency-Key": f"idem-{secrets.token_hex(4)}", "Content-Type": "application/json"}
    auth = tenant.auth("publish") | header
    first = (
        b'{"data": {"type": "event", "triggered_by": "order.created", '
        b'"payload": {"a": 1, "b": {"c": [1, 2], "d": null}}}}'
    )
    reordered = (
        b'{"data":{"payload":{"b":{"d":null,"c":[1,2]},"a":1},'
        b'"triggered_by":"order.created","type":"event"}}'
    )

    answers = [await api.post("/v2/events", data=body, headers=auth) for body in (first, reordered)]

    assert [r.status for r in answers] == [202, 200]
    assert len({(await r.json())["data"]["id"] for r in answers}) == 1


async def test_a_client_id_reused_with_another_payload_is_a_409_naming_data_id(
    api: Client, tenant: Tenant
) -> None:
    client_id = f"evt-{secrets.token_hex(4)}"
    await publish(api, tenant, event_body(id=client_id))

    resp = await publish(api, tenant, event_body(id=client_id, payload={"data": {"v": 2}}))

    assert resp.status == 409, await resp.text()
    [error] = (await resp.json())["errors"]
    assert error["source"] == "data.id"
    assert error["detail"].startswith(f"The id {client_id!r} was already used for a different")


async def test_a_batch_reusing_a_client_id_for_another_event_is_refused_whole(
    api: Client, tenant: Tenant
) -> None:
    integration_id = await integration(api, tenant, "order.created")
    seen = f"evt-{secrets.token_hex(4)}"
    await publish(api, tenant, event_body(id=seen))
    key = f"idem-{secrets.token_hex(4)}"
    await publish(api, tenant, {"data": [event_body()["data"]] * 2}, {"Idempotency-Key": key})
    changed = event_body(payload={"data": {"v": 2}})["data"]
    body = {
        "data": [
            event_body(id=f"{seen}-new")["data"],  # new: would be stored
            {**changed, "id": seen},  # another event under a seen id
            event_body()["data"],  # new, no id
        ]
    }
    by_header = {"data": [event_body()["data"], changed]}  # `<key>:1` was another event

    resp = await publish(api, tenant, body)
    resp_header = await publish(api, tenant, by_header, {"Idempotency-Key": key})

    assert resp.status == 409, await resp.text()
    assert [e["source"] for e in (await resp.json())["errors"]] == ["data[1].id"]
    assert resp_header.status == 409, await resp_header.text()
    [error] = (await resp_header.json())["errors"]
    assert error["source"] == "data[1]"
    assert f"The Idempotency-Key {key!r} (as '{key}:1') was already used" in error["detail"]
    # Nothing of either batch was stored: one event, then the two of the keyed batch.
    assert await job_total(api, tenant, integration_id) == 3
    new = await publish(api, tenant, event_body(id=f"{seen}-new"))
    assert new.status == 202


async def test_client_ids_belong_to_their_store(
    api: Client, tenant: Tenant, other_tenant: Tenant
) -> None:
    client_id = f"evt-{secrets.token_hex(4)}"

    mine = await publish(api, tenant, event_body(id=client_id))
    theirs = await publish(api, other_tenant, event_body(id=client_id))

    assert (mine.status, theirs.status) == (202, 202)
    assert (await mine.json())["data"]["id"] != (await theirs.json())["data"]["id"]


async def test_a_concurrent_double_publish_creates_exactly_one_event(
    api: Client, tenant: Tenant
) -> None:
    integration_id = await integration(api, tenant, "order.created")
    client_id = f"evt-{secrets.token_hex(4)}"

    answers = await asyncio.gather(
        *(publish(api, tenant, event_body(id=client_id)) for _ in range(5))
    )

    assert sorted(r.status for r in answers) == [200, 200, 200, 200, 202]
    assert len({(await r.json())["data"]["id"] for r in answers}) == 1
    assert await job_total(api, tenant, integration_id) == 1


async def test_a_batch_repeating_a_published_id_creates_only_the_new_events(
    api: Client, tenant: Tenant
) -> None:
    integration_id = await integration(api, tenant, "order.created")
    seen = f"evt-{secrets.token_hex(4)}"
    first = await publish(api, tenant, event_body(id=seen))
    body = {"data": [event_body(id=seen)["data"], event_body(id=f"{seen}-new")["data"]]}

    resp = await publish(api, tenant, body)
    again = await publish(api, tenant, body)

    assert (resp.status, again.status) == (202, 200)
    data = (await resp.json())["data"]
    assert data[0]["id"] == (await first.json())["data"]["id"]
    assert [d["id"] for d in (await again.json())["data"]] == [d["id"] for d in data]
    assert await job_total(api, tenant, integration_id) == 2


async def test_an_idempotency_key_that_differs_from_data_id_is_a_validation_error(
    api: Client, tenant: Tenant
) -> None:
    resp = await publish(api, tenant, event_body(id="evt-a"), {"Idempotency-Key": "evt-b"})

    errors = await errors_of(resp, 422)
    assert [e.get("source") for e in errors] == ["data.id"]


async def test_duplicate_ids_in_a_batch_are_a_validation_error(api: Client, tenant: Tenant) -> None:
    body = {"data": [event_body(id="dup")["data"], event_body(id="dup")["data"]]}

    resp = await publish(api, tenant, body)

    errors = await errors_of(resp, 422)
    assert [e.get("source") for e in errors] == ["data[1].id"]


# --- validation and limits -----------------------------------------------------------------------


@pytest.mark.parametrize(
    "key", ["order.exploded", "order.*", "*", "order", "Order.Created", "order..created", ""]
)
async def test_a_triggered_by_that_cannot_be_published_is_a_422_naming_it(
    api: Client, tenant: Tenant, key: str
) -> None:
    resp = await publish(api, tenant, event_body(key))

    errors = await errors_of(resp, 422)
    assert [e.get("source") for e in errors] == ["data.triggered_by"]
    assert errors[0]["title"] == "Validation Error"


@pytest.mark.parametrize(
    ("data", "source"),
    [
        ({"triggered_by": "order.created", "payload": {}}, "data.type"),
        ({"type": "integration", "triggered_by": "order.created", "payload": {}}, "data.type"),
        ({"type": "event", "payload": {}}, "data.triggered_by"),
        ({"type": "event", "triggered_by": "order.created"}, "data.payload"),
        ({"type": "event", "triggered_by": "order.created", "payload": []}, "data.payload"),
        ({"type": "event", "triggered_by": "order.created", "payload": {}, "x": 1}, "data.x"),
        ({"type": "event", "triggered_by": "order.created", "payload": {}, "id": ""}, "data.id"),
        ({"type": "event", "triggered_by": 7, "payload": {}}, "data.triggered_by"),
    ],
)
async def test_a_malformed_event_is_a_422_naming_the_field(
    api: Client, tenant: Tenant, data: dict[str, Any], source: str
) -> None:
    resp = await publish(api, tenant, {"data": data})

    errors = await errors_of(resp, 422)
    assert source in {e.get("source") for e in errors}


async def test_a_payload_over_the_event_limit_is_a_413(small_api: Client, tenant: Tenant) -> None:
    big = event_body(payload={"data": {"blob": "x" * SMALL_EVENT_BYTES}})

    resp = await publish(small_api, tenant, big)

    errors = await errors_of(resp, 413)
    assert errors[0]["source"] == "data.payload"
    assert str(SMALL_EVENT_BYTES) in errors[0]["detail"]


async def test_one_payload_over_the_limit_fails_the_whole_batch_with_413(
    small_api: Client, tenant: Tenant
) -> None:
    integration_id = await integration(small_api, tenant, "order.created")
    body = {
        "data": [
            event_body()["data"],
            event_body(payload={"data": {"blob": "x" * SMALL_EVENT_BYTES}})["data"],
        ]
    }

    resp = await publish(small_api, tenant, body)

    errors = await errors_of(resp, 413)
    assert errors[0]["source"] == "data[1].payload"
    assert await job_total(small_api, tenant, integration_id) == 0


async def test_a_payload_just_under_the_event_limit_is_accepted(
    small_api: Client, tenant: Tenant
) -> None:
    overhead = len(b'{"data":{"blob":""}}')
    body = event_body(payload={"data": {"blob": "x" * (SMALL_EVENT_BYTES - overhead)}})

    resp = await publish(small_api, tenant, body)

    assert resp.status == 202, await resp.text()


async def test_a_body_over_the_request_limit_is_a_413_in_the_error_envelope(
    small_api: Client, tenant: Tenant
) -> None:
    body = batch(*["order.created"] * 10, payload={"data": {"blob": "x" * 600}})

    resp = await publish(small_api, tenant, body)

    errors = await errors_of(resp, 413)
    assert errors[0]["title"] == "Payload Too Large"
    assert str(SMALL_BODY_BYTES) in errors[0]["detail"]


# --- fan-out -------------------------------------------------------------------------------------


async def test_jobs_are_created_exactly_for_the_enabled_matching_integrations_of_the_store(
    api: Client, tenant: Tenant, other_tenant: Tenant
) -> None:
    exact = await integration(api, tenant, "order.created")
    wildcard = await integration(api, tenant, "order.*")
    everything = await integration(api, tenant, "*")
    several = await integration(api, tenant, "customer.created", "order.created", "order.*")
    disabled = await integration(api, tenant, "order.created", "*", enabled=False)
    other_action = await integration(api, tenant, "order.paid")
    other_resource = await integration(api, tenant, "customer.*", "cart.created")
    deleted = await integration(api, tenant, "order.created")
    await api.delete(f"/v2/integrations/{deleted}", headers=tenant.auth("manage"))
    foreign = await integration(api, other_tenant, "*")

    resp = await publish(api, tenant, event_body("order.created"))

    assert resp.status == 202
    data = (await resp.json())["data"]
    assert data["jobs"]["total"] == 4
    stored = await event(api, tenant, data["id"])
    assert stored["jobs"]["total"] == 4
    jobs = stored["jobs"]["data"]
    assert {j["integration_id"] for j in jobs} == {exact, wildcard, everything, several}
    for job in jobs:
        UUID(job["id"])
        assert job["type"] == "integration-job"
        assert job["status"] == "pending"
        assert job["attempts"] == 0
    for unmatched in (disabled, other_action, other_resource):
        assert await job_total(api, tenant, unmatched) == 0
    assert await job_total(api, other_tenant, foreign) == 0


async def test_a_job_lists_the_event_it_was_made_for(api: Client, tenant: Tenant) -> None:
    integration_id = await integration(api, tenant, "order.*")
    resp = await publish(api, tenant, event_body("order.paid"))
    event_id = (await resp.json())["data"]["id"]

    jobs = await api.get(f"/v2/integrations/{integration_id}/jobs", headers=tenant.auth("view"))

    (job,) = (await jobs.json())["data"]
    assert job["triggered_by"] == "order.paid"
    assert job["relationships"]["event"]["data"] == {"type": "event", "id": event_id}
    assert job["relationships"]["integration"]["data"] == {
        "type": "integration",
        "id": integration_id,
    }
    assert (await event(api, tenant, event_id))["jobs"]["data"][0]["id"] == job["id"]


async def test_each_event_of_a_batch_fans_out_on_its_own_key(api: Client, tenant: Tenant) -> None:
    orders = await integration(api, tenant, "order.*")
    customers = await integration(api, tenant, "customer.created")

    resp = await publish(api, tenant, batch("order.created", "customer.created", "order.paid"))

    assert [d["jobs"]["total"] for d in (await resp.json())["data"]] == [1, 1, 1]
    assert await job_total(api, tenant, orders) == 2
    assert await job_total(api, tenant, customers) == 1


# --- reading events ------------------------------------------------------------------------------


@pytest.mark.parametrize("role", ["view", "manage", "publish", "admin"])
async def test_every_role_reads_back_an_event_of_its_store(
    api: Client, tenant: Tenant, role: str
) -> None:
    published = (await (await publish(api, tenant, event_body())).json())["data"]

    resp = await api.get(f"/v2/events/{published['id']}", headers=tenant.auth(role))

    assert resp.status == 200
    data = (await resp.json())["data"]
    assert {k: v for k, v in data.items() if k != "jobs"} == {
        k: v for k, v in published.items() if k != "jobs"
    }


async def test_another_stores_event_is_not_found(
    api: Client, tenant: Tenant, other_tenant: Tenant
) -> None:
    published = (await (await publish(api, other_tenant, event_body())).json())["data"]

    resp = await api.get(f"/v2/events/{published['id']}", headers=tenant.auth("admin"))

    errors = await errors_of(resp, 404)
    assert errors[0]["detail"] == "The resource could not be found"


async def test_a_publish_that_queues_jobs_wakes_the_workers_and_a_repeat_does_not(
    api: Client, tenant: Tenant, shared_db: str
) -> None:
    await integration(api, tenant, "order.paid")
    woken: asyncio.Queue[str] = asyncio.Queue()
    listener = await asyncpg.connect(plain_url(shared_db))
    try:
        await listener.add_listener(enqueue.CHANNEL, lambda *args: woken.put_nowait(args[2]))
        client_id = f"wake-{secrets.token_hex(4)}"
        resp = await publish(api, tenant, event_body("order.paid", id=client_id))
        assert resp.status == 202, await resp.text()
        assert await asyncio.wait_for(woken.get(), 5) == enqueue.CHANNEL

        again = await publish(api, tenant, event_body("order.paid", id=client_id))
        assert again.status == 200, await again.text()
        nobody = await publish(api, tenant, event_body("customer.created"))
        assert nobody.status == 202, await nobody.text()
        await asyncio.sleep(0.3)
        assert woken.empty()  # no job was queued by either
    finally:
        await listener.close()
