"""The integrations resource over HTTP: create, read, partial update, delete, validation by type,
masking of secrets, list filters and the signing secret."""

from __future__ import annotations

import secrets
from typing import Any
from uuid import UUID

import pytest
from aiohttp import ClientResponse
from aiohttp.test_utils import TestClient
from sqlalchemy.ext.asyncio import AsyncEngine

from hub.store import integrations, stores
from tests.conftest import Tenant, event_body, webhook_integration

Client = TestClient[Any, Any]

SQS_CONFIG = {
    "url": "https://sqs.eu-west-1.amazonaws.com/123456789012/orders",
    "aws_access_key_id": "AKIAEXAMPLEKEYID0001",
    "aws_secret_access_key": "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY",
    "region": "eu-west-1",
}
STOMP_CONFIG = {
    "addresses": ["stomp://broker-1.internal:61613", "stomp+ssl://broker-2.internal:61614"],
    "destination": "/queue/orders",
    "username": "hub",
    "password": "stomp-password-0001",
}


def integration(
    integration_type: str, configuration: dict[str, Any], **extra: Any
) -> dict[str, Any]:
    body = webhook_integration(**extra)
    body["data"]["integration_type"] = integration_type
    body["data"]["configuration"] = configuration
    return body


async def created(api: Client, tenant: Tenant, body: dict[str, Any]) -> dict[str, Any]:
    resp = await api.post("/v2/integrations", json=body, headers=tenant.auth("manage"))
    assert resp.status == 201, await resp.text()
    data: dict[str, Any] = (await resp.json())["data"]
    return data


async def put(
    api: Client, tenant: Tenant, integration_id: str, **attributes: Any
) -> ClientResponse:
    body = {"data": {"type": "integration", **attributes}}
    return await api.put(
        f"/v2/integrations/{integration_id}", json=body, headers=tenant.auth("manage")
    )


async def get(api: Client, tenant: Tenant, integration_id: str) -> dict[str, Any]:
    resp = await api.get(f"/v2/integrations/{integration_id}", headers=tenant.auth("view"))
    assert resp.status == 200, await resp.text()
    data: dict[str, Any] = (await resp.json())["data"]
    return data


async def errors_of(resp: ClientResponse, status: int) -> list[dict[str, Any]]:
    assert resp.status == status, await resp.text()
    errors: list[dict[str, Any]] = (await resp.json())["errors"]
    assert errors
    assert all(e["status"] == status for e in errors)
    return errors


async def sources_of(resp: ClientResponse, status: int = 422) -> set[str | None]:
    return {e.get("source") for e in await errors_of(resp, status)}


async def stored_configuration(
    engine: AsyncEngine, tenant: Tenant, integration_id: str
) -> dict[str, Any]:
    async with engine.connect() as conn:
        store = await stores.get_store_by_name(conn, tenant.name)
        assert store is not None
        record = await integrations.get_integration(conn, store.id, UUID(integration_id))
    assert record is not None
    return record.configuration


# --- create and read -----------------------------------------------------------------------------


async def test_creating_a_webhook_integration_returns_it_with_201(
    api: Client, tenant: Tenant
) -> None:
    resp = await api.post(
        "/v2/integrations", json=webhook_integration(), headers=tenant.auth("manage")
    )

    assert resp.status == 201
    assert resp.content_type == "application/json"
    data = (await resp.json())["data"]
    UUID(data["id"])
    assert data["type"] == "integration"
    assert data["name"] == "Order hook"
    assert data["description"] == "Tells the ERP"
    assert data["enabled"] is True
    assert data["integration_type"] == "webhook"
    assert data["observes"] == ["order.created"]
    assert data["configuration"] == {
        "url": "https://example.com/hook",
        "secret_key": "*************alue",
    }
    assert data["links"]["self"] == f"http://hub.test/v2/integrations/{data['id']}"
    timestamps = data["meta"]["timestamps"]
    assert timestamps["created_at"].endswith("Z")
    assert len(timestamps["created_at"]) == len("2026-11-22T10:00:00.000Z")
    assert timestamps["updated_at"] == timestamps["created_at"]


async def test_an_integration_is_disabled_unless_enabled_is_given(
    api: Client, tenant: Tenant
) -> None:
    body = webhook_integration()
    del body["data"]["enabled"], body["data"]["description"]

    data = await created(api, tenant, body)

    assert data["enabled"] is False
    assert data["description"] is None


async def test_a_created_integration_can_be_read_back_by_id_and_in_the_list(
    api: Client, tenant: Tenant
) -> None:
    data = await created(api, tenant, webhook_integration())

    assert await get(api, tenant, data["id"]) == data
    resp = await api.get("/v2/integrations", headers=tenant.auth("view"))
    assert resp.status == 200
    assert (await resp.json())["data"] == [data]


async def test_each_integration_type_can_be_created_with_its_configuration(
    api: Client, tenant: Tenant
) -> None:
    sqs = await created(api, tenant, integration("aws_sqs", SQS_CONFIG))
    stomp = await created(api, tenant, integration("stomp", STOMP_CONFIG))

    assert sqs["integration_type"] == "aws_sqs"
    assert sqs["configuration"]["url"] == SQS_CONFIG["url"]
    assert sqs["configuration"]["region"] == "eu-west-1"
    assert sqs["configuration"]["aws_access_key_id"] == "*" * 16 + "0001"
    assert stomp["integration_type"] == "stomp"
    assert stomp["configuration"]["addresses"] == STOMP_CONFIG["addresses"]
    assert stomp["configuration"]["destination"] == "/queue/orders"
    assert stomp["configuration"]["username"] == "hub"
    assert stomp["configuration"]["password"] == "*" * 15 + "0001"


# --- partial update ------------------------------------------------------------------------------


async def test_updating_changes_only_the_given_attributes(api: Client, tenant: Tenant) -> None:
    before = await created(api, tenant, webhook_integration())

    resp = await put(api, tenant, before["id"], name="Renamed hook")

    assert resp.status == 200, await resp.text()
    after = (await resp.json())["data"]
    assert after["name"] == "Renamed hook"
    unchanged = ("description", "enabled", "integration_type", "observes", "configuration")
    assert {k: after[k] for k in unchanged} == {k: before[k] for k in unchanged}
    assert after["meta"]["timestamps"]["created_at"] == before["meta"]["timestamps"]["created_at"]
    assert after["meta"]["timestamps"]["updated_at"] >= before["meta"]["timestamps"]["updated_at"]
    assert await get(api, tenant, before["id"]) == after


async def test_updating_enabled_observes_and_description_applies_each(
    api: Client, tenant: Tenant
) -> None:
    before = await created(api, tenant, webhook_integration())

    resp = await put(
        api, tenant, before["id"], enabled=False, observes=["order.*"], description=None
    )

    assert resp.status == 200, await resp.text()
    after = (await resp.json())["data"]
    assert after["enabled"] is False
    assert after["observes"] == ["order.*"]
    assert after["description"] is None
    assert after["name"] == before["name"]


async def test_an_update_may_echo_back_the_read_only_attributes_of_a_get(
    api: Client, tenant: Tenant
) -> None:
    before = await created(api, tenant, webhook_integration())
    echoed = dict(before, name="Round-tripped")

    resp = await api.put(
        f"/v2/integrations/{before['id']}", json={"data": echoed}, headers=tenant.auth("manage")
    )

    assert resp.status == 200, await resp.text()
    assert (await resp.json())["data"]["name"] == "Round-tripped"


async def test_a_configuration_update_is_merged_into_the_stored_configuration(
    api: Client, tenant: Tenant, shared_engine: AsyncEngine
) -> None:
    before = await created(api, tenant, webhook_integration())

    resp = await put(api, tenant, before["id"], configuration={"url": "https://example.com/new"})

    assert resp.status == 200, await resp.text()
    assert (await resp.json())["data"]["configuration"] == {
        "url": "https://example.com/new",
        "secret_key": "*************alue",
    }
    assert await stored_configuration(shared_engine, tenant, before["id"]) == {
        "url": "https://example.com/new",
        "secret_key": "very-secret-value",
    }


async def test_a_masked_secret_sent_back_keeps_the_stored_secret(
    api: Client, tenant: Tenant, shared_engine: AsyncEngine
) -> None:
    before = await created(api, tenant, webhook_integration())

    resp = await put(api, tenant, before["id"], configuration=before["configuration"])

    assert resp.status == 200, await resp.text()
    stored = await stored_configuration(shared_engine, tenant, before["id"])
    assert stored["secret_key"] == "very-secret-value"


async def test_a_new_secret_replaces_the_stored_one(
    api: Client, tenant: Tenant, shared_engine: AsyncEngine
) -> None:
    before = await created(api, tenant, webhook_integration())

    resp = await put(api, tenant, before["id"], configuration={"secret_key": "another-secret-9876"})

    assert resp.status == 200, await resp.text()
    assert (await resp.json())["data"]["configuration"]["secret_key"] == "*" * 15 + "9876"
    stored = await stored_configuration(shared_engine, tenant, before["id"])
    assert stored["secret_key"] == "another-secret-9876"


async def test_null_removes_the_optional_secret_key(
    api: Client, tenant: Tenant, shared_engine: AsyncEngine
) -> None:
    before = await created(api, tenant, webhook_integration())

    resp = await put(api, tenant, before["id"], configuration={"secret_key": None})

    assert resp.status == 200, await resp.text()
    assert (await resp.json())["data"]["configuration"] == {"url": "https://example.com/hook"}
    assert await stored_configuration(shared_engine, tenant, before["id"]) == {
        "url": "https://example.com/hook"
    }


async def test_null_for_a_required_configuration_field_is_a_validation_error(
    api: Client, tenant: Tenant
) -> None:
    before = await created(api, tenant, webhook_integration())

    resp = await put(api, tenant, before["id"], configuration={"url": None})

    assert await sources_of(resp) == {"data.configuration.url"}
    assert await get(api, tenant, before["id"]) == before


async def test_changing_the_integration_type_requires_a_whole_new_configuration(
    api: Client, tenant: Tenant
) -> None:
    before = await created(api, tenant, webhook_integration())

    without = await put(api, tenant, before["id"], integration_type="aws_sqs")
    partial = await put(
        api, tenant, before["id"], integration_type="aws_sqs", configuration={"region": "eu-west-1"}
    )

    assert {
        "data.configuration.url",
        "data.configuration.aws_access_key_id",
        "data.configuration.aws_secret_access_key",
        "data.configuration.region",
    } == await sources_of(without)
    assert {
        "data.configuration.url",
        "data.configuration.aws_access_key_id",
        "data.configuration.aws_secret_access_key",
    } == await sources_of(partial)
    assert await get(api, tenant, before["id"]) == before


async def test_changing_the_integration_type_with_a_full_configuration_replaces_it(
    api: Client, tenant: Tenant, shared_engine: AsyncEngine
) -> None:
    before = await created(api, tenant, webhook_integration())

    resp = await put(
        api, tenant, before["id"], integration_type="stomp", configuration=STOMP_CONFIG
    )

    assert resp.status == 200, await resp.text()
    after = (await resp.json())["data"]
    assert after["integration_type"] == "stomp"
    assert set(after["configuration"]) == set(STOMP_CONFIG)
    assert await stored_configuration(shared_engine, tenant, before["id"]) == STOMP_CONFIG


async def test_an_update_with_a_mismatched_data_id_is_a_validation_error(
    api: Client, tenant: Tenant
) -> None:
    before = await created(api, tenant, webhook_integration())

    resp = await put(api, tenant, before["id"], id=str(UUID(int=1)), name="x")

    assert await sources_of(resp) == {"data.id"}


@pytest.mark.parametrize(
    "attribute", ["name", "enabled", "observes", "integration_type", "configuration"]
)
async def test_null_for_a_required_attribute_is_a_validation_error(
    api: Client, tenant: Tenant, attribute: str
) -> None:
    before = await created(api, tenant, webhook_integration())

    resp = await put(api, tenant, before["id"], **{attribute: None})

    assert await sources_of(resp) == {f"data.{attribute}"}
    assert await get(api, tenant, before["id"]) == before


# --- delete --------------------------------------------------------------------------------------


async def test_deleting_an_integration_answers_its_type_and_id_and_then_it_is_gone(
    api: Client, tenant: Tenant
) -> None:
    data = await created(api, tenant, webhook_integration())
    path = f"/v2/integrations/{data['id']}"

    resp = await api.delete(path, headers=tenant.auth("manage"))

    assert resp.status == 200
    assert await resp.json() == {"data": {"type": "integration", "id": data["id"]}}
    for method in ("GET", "DELETE"):
        again = await api.request(method, path, headers=tenant.auth("manage"))
        await errors_of(again, 404)
    await errors_of(await put(api, tenant, data["id"], name="x"), 404)
    await errors_of(await api.get(f"{path}/jobs", headers=tenant.auth("view")), 404)
    listed = await api.get("/v2/integrations", headers=tenant.auth("view"))
    assert (await listed.json())["data"] == []


async def test_deleting_an_integration_cancels_its_pending_jobs_only(
    api: Client, tenant: Tenant
) -> None:
    doomed = await created(api, tenant, webhook_integration())
    kept = await created(api, tenant, webhook_integration())
    published = await api.post("/v2/events", json=event_body(), headers=tenant.auth("publish"))
    assert published.status == 202
    event_id = (await published.json())["data"]["id"]

    resp = await api.delete(f"/v2/integrations/{doomed['id']}", headers=tenant.auth("manage"))

    assert resp.status == 200
    event = await api.get(f"/v2/events/{event_id}", headers=tenant.auth("view"))
    jobs = {j["integration_id"]: j["status"] for j in (await event.json())["data"]["jobs"]["data"]}
    assert jobs == {doomed["id"]: "cancelled", kept["id"]: "pending"}


# --- validation ----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("integration_type", "configuration", "source"),
    [
        ("webhook", {}, "data.configuration.url"),
        ("webhook", {"secret_key": "s"}, "data.configuration.url"),
        ("webhook", {"url": "ftp://example.com/hook"}, "data.configuration.url"),
        ("webhook", {"url": "example.com/hook"}, "data.configuration.url"),
        ("webhook", {"url": "https://user:pw@example.com/"}, "data.configuration.url"),
        ("webhook", {"url": "https://x.test", "colour": "red"}, "data.configuration.colour"),
        *[
            ("aws_sqs", {k: v for k, v in SQS_CONFIG.items() if k != missing}, source)
            for missing, source in [
                ("url", "data.configuration.url"),
                ("aws_access_key_id", "data.configuration.aws_access_key_id"),
                ("aws_secret_access_key", "data.configuration.aws_secret_access_key"),
                ("region", "data.configuration.region"),
            ]
        ],
        ("aws_sqs", {**SQS_CONFIG, "url": "sqs://queue"}, "data.configuration.url"),
        ("aws_sqs", {**SQS_CONFIG, "region": "EU WEST"}, "data.configuration.region"),
        (
            "stomp",
            {**STOMP_CONFIG, "addresses": ["tcp://broker:61613"]},
            "data.configuration.addresses",
        ),
        (
            "stomp",
            {**STOMP_CONFIG, "addresses": ["stomp://broker"]},
            "data.configuration.addresses",
        ),
        ("stomp", {**STOMP_CONFIG, "addresses": []}, "data.configuration.addresses"),
        (
            "stomp",
            {**STOMP_CONFIG, "addresses": "stomp://broker:61613"},
            "data.configuration.addresses",
        ),
        ("stomp", {"addresses": STOMP_CONFIG["addresses"]}, "data.configuration.destination"),
    ],
)
async def test_a_configuration_invalid_for_its_type_is_a_422_naming_the_field(
    api: Client, tenant: Tenant, integration_type: str, configuration: dict[str, Any], source: str
) -> None:
    resp = await api.post(
        "/v2/integrations",
        json=integration(integration_type, configuration),
        headers=tenant.auth("manage"),
    )

    errors = await errors_of(resp, 422)
    assert source in {e.get("source") for e in errors}
    assert all(e["title"] == "Validation Error" for e in errors)
    listed = await api.get("/v2/integrations", headers=tenant.auth("view"))
    assert (await listed.json())["meta"]["results"]["total"] == 0


async def test_every_problem_of_a_create_is_reported_at_once(api: Client, tenant: Tenant) -> None:
    body = integration("aws_sqs", {"region": "eu-west-1"}, observes=["order.exploded"])

    resp = await api.post("/v2/integrations", json=body, headers=tenant.auth("manage"))

    assert await sources_of(resp) == {
        "data.observes[0]",
        "data.configuration.url",
        "data.configuration.aws_access_key_id",
        "data.configuration.aws_secret_access_key",
    }


@pytest.mark.parametrize(
    ("observes", "source"),
    [
        (["order.exploded"], "data.observes[0]"),
        (["order.created", "Order.Paid"], "data.observes[1]"),
        (["order"], "data.observes[0]"),
        (["order.**"], "data.observes[0]"),
        (["*.created"], "data.observes[0]"),
        ([""], "data.observes[0]"),
        ([], "data.observes"),
        (["order.created", "order.created"], "data.observes"),
        ("order.created", "data.observes"),
    ],
)
async def test_observes_with_an_unknown_or_malformed_key_is_rejected(
    api: Client, tenant: Tenant, observes: Any, source: str
) -> None:
    body = webhook_integration()
    body["data"]["observes"] = observes  # set by hand: the helper replaces [] by its default

    resp = await api.post("/v2/integrations", json=body, headers=tenant.auth())

    assert await sources_of(resp) == {source}


@pytest.mark.parametrize(
    "observes",
    [
        ["order.*"],
        ["*"],
        ["wishlist_ext.created", "wishlist_ext.*"],
        ["order.paid", "customer.deleted", "subscription.*"],
    ],
)
async def test_observes_accepts_catalogue_custom_and_wildcard_keys(
    api: Client, tenant: Tenant, observes: list[str]
) -> None:
    data = await created(api, tenant, webhook_integration(observes=observes))

    assert data["observes"] == observes


# --- secrets -------------------------------------------------------------------------------------


async def test_secrets_never_appear_in_clear_in_any_response(api: Client, tenant: Tenant) -> None:
    raw = {
        "webhook": "whk-" + secrets.token_hex(12),
        "aws_access_key_id": "AKIA" + secrets.token_hex(8).upper(),
        "aws_secret_access_key": secrets.token_hex(20),
        "stomp": "pw-" + secrets.token_hex(10),
    }
    bodies = [
        webhook_integration(
            configuration={"url": "https://x.test/h", "secret_key": raw["webhook"]}
        ),
        integration(
            "aws_sqs",
            {
                **SQS_CONFIG,
                "aws_access_key_id": raw["aws_access_key_id"],
                "aws_secret_access_key": raw["aws_secret_access_key"],
            },
        ),
        integration("stomp", {**STOMP_CONFIG, "password": raw["stomp"]}),
    ]
    texts: list[str] = []
    ids: list[str] = []
    for body in bodies:
        resp = await api.post("/v2/integrations", json=body, headers=tenant.auth("manage"))
        assert resp.status == 201
        texts.append(await resp.text())
        ids.append((await resp.json())["data"]["id"])
    for integration_id in ids:
        resp = await api.get(f"/v2/integrations/{integration_id}", headers=tenant.auth("view"))
        texts.append(await resp.text())
        resp = await put(api, tenant, integration_id, name="renamed")
        assert resp.status == 200
        texts.append(await resp.text())
    for query in ("", "?filter[enabled]=true", "?page[limit]=1&page[offset]=1"):
        resp = await api.get(f"/v2/integrations{query}", headers=tenant.auth("admin"))
        texts.append(await resp.text())
    # A new secret given in an update is masked in the answer too.
    fresh = "rotated-" + secrets.token_hex(10)
    resp = await put(api, tenant, ids[0], configuration={"secret_key": fresh})
    texts.append(await resp.text())

    everything = "\n".join(texts)
    for secret in [*raw.values(), fresh]:
        assert secret not in everything
        assert secret[-4:] in everything  # masked, not dropped
    assert "whsec_" not in everything  # the signing secret has its own endpoint


@pytest.mark.parametrize(
    ("value", "masked"),
    [("abcdefgh", "****efgh"), ("abcde", "*bcde"), ("abcd", "****"), ("ab", "**")],
)
async def test_a_secret_is_masked_as_ep_does(
    api: Client, tenant: Tenant, value: str, masked: str
) -> None:
    body = webhook_integration(configuration={"url": "https://x.test/h", "secret_key": value})

    data = await created(api, tenant, body)

    assert data["configuration"]["secret_key"] == masked


# --- list filters --------------------------------------------------------------------------------


async def test_the_list_filters_by_enabled_type_and_observed_key(
    api: Client, tenant: Tenant
) -> None:
    exact = await created(api, tenant, webhook_integration(observes=["order.paid"]))
    wildcard = await created(api, tenant, webhook_integration(observes=["order.*"]))
    everything = await created(api, tenant, webhook_integration(observes=["*"], enabled=False))
    other_key = await created(api, tenant, webhook_integration(observes=["order.created"]))
    sqs = await created(api, tenant, integration("aws_sqs", SQS_CONFIG, observes=["customer.*"]))
    stomp = await created(api, tenant, integration("stomp", STOMP_CONFIG, enabled=False))

    async def ids(query: str) -> set[str]:
        resp = await api.get(f"/v2/integrations?{query}", headers=tenant.auth("view"))
        assert resp.status == 200, await resp.text()
        document = await resp.json()
        assert document["meta"]["results"]["total"] == len(document["data"])
        return {d["id"] for d in document["data"]}

    assert await ids("filter[enabled]=true") == {
        exact["id"],
        wildcard["id"],
        other_key["id"],
        sqs["id"],
    }
    assert await ids("filter[enabled]=false") == {everything["id"], stomp["id"]}
    assert await ids("filter[integration_type]=webhook") == {
        exact["id"],
        wildcard["id"],
        everything["id"],
        other_key["id"],
    }
    assert await ids("filter[integration_type]=aws_sqs") == {sqs["id"]}
    assert await ids("filter[integration_type]=stomp") == {stomp["id"]}
    # A concrete key finds every integration that would receive it, wildcards included.
    assert await ids("filter[observes]=order.paid") == {
        exact["id"],
        wildcard["id"],
        everything["id"],
    }
    assert await ids("filter[observes]=customer.created") == {sqs["id"], everything["id"]}
    # A wildcard finds the integrations that list that very wildcard.
    assert await ids("filter[observes]=order.*") == {wildcard["id"]}
    assert await ids("filter[observes]=*") == {everything["id"]}
    assert await ids("filter[observes]=order.paid&filter[enabled]=true") == {
        exact["id"],
        wildcard["id"],
    }
    assert await ids("filter[observes]=order.paid&filter[integration_type]=aws_sqs") == set()

    bad = await api.get("/v2/integrations?filter[observes]=Order..x", headers=tenant.auth("view"))
    assert bad.status == 400
    assert (await bad.json())["errors"][0]["source"] == "filter[observes]"


@pytest.mark.parametrize(
    ("query", "source"),
    [
        ("filter[enabled]=maybe", "filter[enabled]"),
        ("filter[enabled]=", "filter[enabled]"),
        ("filter[integration_type]=ftp", "filter[integration_type]"),
        ("filter[integration_type]=", "filter[integration_type]"),
    ],
)
async def test_a_bad_filter_value_is_a_400_naming_the_parameter(
    api: Client, tenant: Tenant, query: str, source: str
) -> None:
    resp = await api.get(f"/v2/integrations?{query}", headers=tenant.auth("view"))

    errors = await errors_of(resp, 400)
    assert [e.get("source") for e in errors] == [source]
    assert errors[0]["title"] == "Bad Request"


# --- signing secret ------------------------------------------------------------------------------


async def test_a_manage_key_reads_the_signing_secret(api: Client, tenant: Tenant) -> None:
    data = await created(api, tenant, webhook_integration())

    resp = await api.get(f"/v2/integrations/{data['id']}/secret", headers=tenant.auth("manage"))
    again = await api.get(f"/v2/integrations/{data['id']}/secret", headers=tenant.auth("admin"))

    assert resp.status == 200
    document = await resp.json()
    assert document["data"]["type"] == "integration-secret"
    assert document["data"]["secret"].startswith("whsec_")
    assert len(document["data"]["secret"]) > len("whsec_") + 32
    assert await again.json() == document


async def test_every_integration_gets_its_own_signing_secret(api: Client, tenant: Tenant) -> None:
    first = await created(api, tenant, webhook_integration())
    second = await created(api, tenant, webhook_integration())

    found = []
    for data in (first, second):
        resp = await api.get(f"/v2/integrations/{data['id']}/secret", headers=tenant.auth())
        found.append((await resp.json())["data"]["secret"])

    assert found[0] != found[1]


@pytest.mark.parametrize("role", ["view", "publish"])
async def test_the_signing_secret_is_forbidden_to_keys_that_cannot_manage(
    api: Client, tenant: Tenant, role: str
) -> None:
    data = await created(api, tenant, webhook_integration())

    resp = await api.get(f"/v2/integrations/{data['id']}/secret", headers=tenant.auth(role))

    errors = await errors_of(resp, 403)
    assert "whsec_" not in await resp.text()
    assert errors[0]["title"] == "Forbidden"


async def test_another_stores_signing_secret_is_not_found(
    api: Client, tenant: Tenant, other_tenant: Tenant
) -> None:
    data = await created(api, other_tenant, webhook_integration())

    resp = await api.get(f"/v2/integrations/{data['id']}/secret", headers=tenant.auth("manage"))

    await errors_of(resp, 404)
