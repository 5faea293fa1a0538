"""Payload conditions over HTTP: validated at create and update time (422s pointing into
`data.conditions`), stored canonical, and evaluated at fan-out so that a non-matching event
creates no job."""

from __future__ import annotations

from typing import Any

import pytest
from aiohttp.test_utils import TestClient

from tests.conftest import Tenant, webhook_integration

Client = TestClient[Any, Any]

BIG_PAID = {
    "all": [
        {"field": "data.status", "equals": "paid"},
        {"any": [{"field": "data.total", "gte": 100}, {"field": "data.tags", "exists": True}]},
    ]
}


async def create(api: Client, tenant: Tenant, **extra: Any) -> dict[str, Any]:
    body = webhook_integration(observes=["order.*"], **extra)
    response = await api.post("/v2/integrations", json=body, headers=tenant.auth("manage"))
    assert response.status == 201, await response.text()
    data: dict[str, Any] = (await response.json())["data"]
    return data


async def publish(
    api: Client, tenant: Tenant, data: dict[str, Any], key: str = "order.paid"
) -> int:
    body = {"data": {"type": "event", "triggered_by": key, "payload": {"data": data}}}
    response = await api.post("/v2/events", json=body, headers=tenant.auth("publish"))
    assert response.status == 202, await response.text()
    total: int = (await response.json())["data"]["jobs"]["total"]
    return total


async def job_count(api: Client, tenant: Tenant, integration_id: str) -> int:
    response = await api.get(f"/v2/integrations/{integration_id}/jobs", headers=tenant.auth())
    assert response.status == 200
    total: int = (await response.json())["meta"]["results"]["total"]
    return total


async def test_conditions_are_stored_in_canonical_form_and_shown(
    api: Client, tenant: Tenant
) -> None:
    reordered = {"all": [{"equals": "paid", "field": "data.status"}]}
    created = await create(api, tenant, conditions=reordered)
    assert created["conditions"] == {"all": [{"field": "data.status", "equals": "paid"}]}
    assert list(created["conditions"]["all"][0]) == ["field", "equals"]
    response = await api.get(f"/v2/integrations/{created['id']}", headers=tenant.auth("view"))
    assert (await response.json())["data"]["conditions"] == created["conditions"]


async def test_an_integration_without_conditions_shows_null(api: Client, tenant: Tenant) -> None:
    assert (await create(api, tenant))["conditions"] is None


@pytest.mark.parametrize(
    ("conditions", "sources"),
    [
        ("status == paid", ["data.conditions"]),
        ({}, ["data.conditions"]),
        ({"field": "data.total", "gte": "lots", "lte": 3}, ["data.conditions"]),
        ({"all": [{"field": "data..x", "exists": True}]}, ["data.conditions.all[0].field"]),
        (
            {"any": [{"field": "a", "in": []}, {"not": {"field": "b", "gt": None}}]},
            ["data.conditions.any[0].in", "data.conditions.any[1].not.gt"],
        ),
        (
            {"not": {"not": {"not": {"not": {"not": {"field": "a", "exists": True}}}}}},
            ["data.conditions.not.not.not.not.not"],
        ),
        ({"any": [{"field": "a", "exists": True}] * 51}, ["data.conditions"]),
    ],
    ids=[
        "a string",
        "an empty object",
        "two operators",
        "an empty path segment",
        "two problems at once",
        "too deep",
        "too many leaves",
    ],
)
async def test_an_invalid_condition_is_a_422_pointing_into_it(
    api: Client, tenant: Tenant, conditions: Any, sources: list[str]
) -> None:
    body = webhook_integration(conditions=conditions)
    response = await api.post("/v2/integrations", json=body, headers=tenant.auth("manage"))
    assert response.status == 422, await response.text()
    errors = (await response.json())["errors"]
    assert [error["source"] for error in errors] == sources
    for error in errors:
        assert error["title"] == "Validation Error"
        assert error["detail"].startswith(error["source"] + ": ")


async def test_an_update_replaces_the_conditions_and_null_removes_them(
    api: Client, tenant: Tenant
) -> None:
    created = await create(api, tenant, conditions=BIG_PAID)
    path = f"/v2/integrations/{created['id']}"

    async def put(**attributes: Any) -> Any:
        body = {"data": {"type": "integration", **attributes}}
        return await api.put(path, json=body, headers=tenant.auth("manage"))

    renamed = await (await put(name="renamed")).json()
    assert renamed["data"]["conditions"] == BIG_PAID, "untouched when not given"
    small = {"field": "data.total", "lt": 10}
    assert (await (await put(conditions=small)).json())["data"]["conditions"] == small
    invalid = await put(conditions={"field": "data.total", "lt": []})
    assert invalid.status == 422
    assert (await invalid.json())["errors"][0]["source"] == "data.conditions.lt"
    assert (await (await put(conditions=None)).json())["data"]["conditions"] is None
    assert await publish(api, tenant, {"total": 5000}) == 1


# payload data → which of the integrations below get a job
FAN_OUT: list[tuple[dict[str, Any], set[str]]] = [
    ({"status": "paid", "total": 150}, {"none", "big_paid", "not_test"}),
    ({"status": "paid", "total": 20, "tags": ["gift"]}, {"none", "big_paid", "not_test"}),
    ({"status": "paid", "total": 20}, {"none", "not_test"}),
    ({"status": "paid", "total": "150"}, {"none", "not_test"}),
    ({"status": "open", "total": 500}, {"none", "not_test"}),
    ({"status": "test", "total": 500}, {"none"}),
    ({}, {"none", "not_test"}),
]


async def test_fan_out_creates_jobs_only_for_integrations_whose_conditions_hold(
    api: Client, tenant: Tenant
) -> None:
    integrations = {
        "none": await create(api, tenant),
        "big_paid": await create(api, tenant, conditions=BIG_PAID),
        "not_test": await create(
            api, tenant, conditions={"not": {"field": "data.status", "equals": "test"}}
        ),
    }
    expected = dict.fromkeys(integrations, 0)
    for data, receivers in FAN_OUT:
        assert await publish(api, tenant, data) == len(receivers), data
        for name in receivers:
            expected[name] += 1
    for name, integration in integrations.items():
        assert await job_count(api, tenant, integration["id"]) == expected[name], name


async def test_conditions_apply_only_to_events_the_integration_observes(
    api: Client, tenant: Tenant
) -> None:
    body = webhook_integration(observes=["order.paid"], conditions={"field": "data.x", "equals": 1})
    response = await api.post("/v2/integrations", json=body, headers=tenant.auth("manage"))
    integration_id = (await response.json())["data"]["id"]
    assert await publish(api, tenant, {"x": 1}, key="order.created") == 0
    assert await publish(api, tenant, {"x": 1}, key="order.paid") == 1
    assert await job_count(api, tenant, integration_id) == 1


async def test_a_batch_is_filtered_event_by_event(api: Client, tenant: Tenant) -> None:
    integration = await create(api, tenant, conditions={"field": "data.n", "in": [1, 3]})
    events = [
        {"type": "event", "triggered_by": "order.paid", "payload": {"data": {"n": n}}}
        for n in range(1, 5)
    ]
    response = await api.post("/v2/events", json={"data": events}, headers=tenant.auth("publish"))
    assert response.status == 202
    totals = [event["jobs"]["total"] for event in (await response.json())["data"]]
    assert totals == [1, 0, 1, 0]
    assert await job_count(api, tenant, integration["id"]) == 2
