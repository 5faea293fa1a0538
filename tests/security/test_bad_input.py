"""Input that once reached a 500: documents nested too deeply, and times that exist as text but
not as instants the hub can hold. Each is a clear 4xx in the envelope, and nothing is stored."""

from __future__ import annotations

from typing import Any
from uuid import uuid4

import pytest
from aiohttp.test_utils import TestClient

from tests.conftest import Tenant, event_body, webhook_integration

Client = TestClient[Any, Any]

DEPTH_DETAIL = "objects and arrays must not nest more than 64 levels deep"
RANGE = "between 0001-01-01T00:00:00Z and 9999-12-31T23:59:59.999999Z once in UTC"


def deep_body(levels: int) -> str:
    """An event whose payload's `data` nests `levels` arrays (written by hand: beyond 254
    levels no JSON encoder of ours would write it)."""
    inner = "[" * levels + "]" * levels
    return (
        '{"data": {"type": "event", "triggered_by": "order.created", '
        '"payload": {"data": ' + inner + "}}}"
    )


async def errors_of(resp: Any, status: int) -> list[dict[str, Any]]:
    assert resp.status == status, await resp.text()
    document = await resp.json()
    assert set(document) == {"errors"}
    errors: list[dict[str, Any]] = document["errors"]
    return errors


# --- nesting -----------------------------------------------------------------------------------


@pytest.mark.parametrize("levels", [62, 253, 254, 300, 1021, 5000])
async def test_a_body_nesting_deeper_than_64_levels_is_a_422(
    api: Client, tenant: Tenant, levels: int
) -> None:
    resp = await api.post(
        "/v2/events",
        data=deep_body(levels),
        headers=tenant.auth("publish") | {"Content-Type": "application/json"},
    )

    [error] = await errors_of(resp, 422)
    assert error["detail"] == DEPTH_DETAIL
    assert error["title"] == "Validation Error"


async def test_a_body_nesting_exactly_64_levels_is_accepted(api: Client, tenant: Tenant) -> None:
    # The body, data and payload are three levels: 61 more fit.
    resp = await api.post(
        "/v2/events",
        data=deep_body(61),
        headers=tenant.auth("publish") | {"Content-Type": "application/json"},
    )

    assert resp.status == 202, await resp.text()
    event_id = (await resp.json())["data"]["id"]
    read = await api.get(f"/v2/events/{event_id}", headers=tenant.auth("publish"))
    assert read.status == 200, await read.text()


async def test_deep_nesting_is_refused_on_every_json_route(api: Client, tenant: Tenant) -> None:
    created = await api.post(
        "/v2/integrations", json=webhook_integration(), headers=tenant.auth("manage")
    )
    integration_id = (await created.json())["data"]["id"]
    deep = "[" * 300 + "]" * 300
    bodies = {
        ("post", "/v2/integrations"): '{"data": {"type": "integration", "conditions": ' + deep,
        ("put", f"/v2/integrations/{integration_id}"): '{"data": {"name": ' + deep + "}}",
        ("post", f"/v2/integrations/{integration_id}/replay"): '{"data": ' + deep + "}",
    }
    for (method, path), text in bodies.items():
        text += "}" * (text.count("{") - text.count("}"))
        resp = await api.request(
            method,
            path,
            data=text,
            headers=tenant.auth("manage") | {"Content-Type": "application/json"},
        )
        [error] = await errors_of(resp, 422)
        assert error["detail"] == DEPTH_DETAIL, path


# --- times -------------------------------------------------------------------------------------


OUT_OF_RANGE = [
    "0001-01-01T00:00:00+14:00",  # before year 1 once in UTC
    "0001-01-01T13:59:59+14:00",
    "9999-12-31T23:59:59-14:00",  # after year 9999 once in UTC
    "9999-12-31T10:00:00-14:00",
]
AT_THE_EDGES = ["0001-01-01T00:00:00Z", "0001-01-01T00:00:00-14:00", "9999-12-31T23:59:59Z"]


@pytest.fixture
async def integration_id(api: Client, tenant: Tenant) -> str:
    created = await api.post(
        "/v2/integrations", json=webhook_integration(), headers=tenant.auth("manage")
    )
    assert created.status == 201, await created.text()
    await api.post("/v2/events", json=event_body(), headers=tenant.auth("publish"))
    value: str = (await created.json())["data"]["id"]
    return value


@pytest.mark.parametrize("bound", ["gte", "lte"])
@pytest.mark.parametrize("value", OUT_OF_RANGE)
async def test_a_time_filter_out_of_range_is_a_400_naming_it(
    api: Client, tenant: Tenant, integration_id: str, bound: str, value: str
) -> None:
    name = f"filter[created_at][{bound}]"

    resp = await api.get(
        f"/v2/integrations/{integration_id}/jobs",
        params={name: value},
        headers=tenant.auth("view"),
    )

    [error] = await errors_of(resp, 400)
    assert error["source"] == name
    assert RANGE in error["detail"]


@pytest.mark.parametrize("value", AT_THE_EDGES)
async def test_a_time_filter_at_the_edges_of_the_range_is_served(
    api: Client, tenant: Tenant, integration_id: str, value: str
) -> None:
    gte = await api.get(
        f"/v2/integrations/{integration_id}/jobs",
        params={"filter[created_at][gte]": value},
        headers=tenant.auth("view"),
    )
    lte = await api.get(
        f"/v2/integrations/{integration_id}/jobs",
        params={"filter[created_at][lte]": value},
        headers=tenant.auth("view"),
    )

    assert gte.status == 200, await gte.text()
    assert lte.status == 200, await lte.text()
    totals = [(await r.json())["meta"]["results"]["total"] for r in (gte, lte)]
    assert totals == ([0, 1] if value.startswith("9999") else [1, 0])


@pytest.mark.parametrize("field", ["since", "until"])
@pytest.mark.parametrize("value", OUT_OF_RANGE)
async def test_a_replay_time_out_of_range_is_a_422_naming_it(
    api: Client, tenant: Tenant, integration_id: str, field: str, value: str
) -> None:
    data = {"type": "integration-replay", "since": "2026-01-01T00:00:00Z", field: value}

    resp = await api.post(
        f"/v2/integrations/{integration_id}/replay",
        json={"data": data},
        headers=tenant.auth("manage"),
    )

    [error] = await errors_of(resp, 422)
    assert error["source"] == f"data.{field}"
    assert RANGE in error["detail"]


@pytest.mark.parametrize(
    ("since", "until"),
    [("0001-01-01T00:00:00Z", None), ("0001-01-01T00:00:00-14:00", "9999-12-31T23:59:59Z")],
)
async def test_a_replay_of_everything_ever_is_served_and_read_back(
    api: Client, tenant: Tenant, integration_id: str, since: str, until: str | None
) -> None:
    data: dict[str, Any] = {"type": "integration-replay", "since": since, "status": ["succeeded"]}
    if until is not None:
        data["until"] = until

    resp = await api.post(
        f"/v2/integrations/{integration_id}/replay",
        json={"data": data},
        headers=tenant.auth("manage"),
    )

    assert resp.status == 202, await resp.text()
    answer = (await resp.json())["data"]
    again = await api.get(
        answer["links"]["self"].removeprefix("http://hub.test"), headers=tenant.auth("view")
    )
    assert again.status == 200, await again.text()
    assert (await again.json())["data"]["since"] == answer["since"]
    assert answer["since"].startswith("0001-01-01T")


async def test_an_unknown_replay_id_is_still_a_404(
    api: Client, tenant: Tenant, integration_id: str
) -> None:
    resp = await api.get(
        f"/v2/integrations/{integration_id}/replays/{uuid4()}", headers=tenant.auth("view")
    )
    await errors_of(resp, 404)
