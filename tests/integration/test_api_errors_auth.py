"""The API's edges: the error envelope for every client mistake, keys and roles, store isolation,
and admin keys acting on another store."""

from __future__ import annotations

import secrets
from dataclasses import dataclass
from typing import Any
from uuid import UUID, uuid4

import pytest
from aiohttp import ClientResponse
from aiohttp.test_utils import TestClient
from sqlalchemy.ext.asyncio import AsyncEngine

from hub.auth import key_prefix
from hub.store import stores
from hub.store.engine import driver_of
from tests.conftest import Tenant, event_body, webhook_integration
from tests.support.waiting import eventually

Client = TestClient[Any, Any]

ROLES = ("view", "manage", "publish", "admin")
UNAUTHORIZED = "Unable to validate access token"


async def envelope(resp: ClientResponse, status: int) -> list[dict[str, Any]]:
    """The `errors` of a response that must be an error of `status`, in the spec's shape."""
    text = await resp.text()
    assert resp.status == status, text
    assert resp.content_type == "application/json"
    assert "Traceback" not in text
    document = await resp.json()
    assert set(document) == {"errors"}
    errors: list[dict[str, Any]] = document["errors"]
    assert errors
    for error in errors:
        assert set(error) <= {"status", "title", "detail", "source"}
        assert {"status", "title", "detail"} <= set(error)
        assert error["status"] == status
        assert isinstance(error["title"], str)
        assert error["title"]
        assert isinstance(error["detail"], str)
        assert error["detail"]
        assert isinstance(error.get("source", ""), str)
    return errors


@dataclass(frozen=True)
class Seeded:
    """An integration of a store with one pending job, and the event that made it."""

    integration: str
    job: str
    event: str


async def seed(api: Client, tenant: Tenant) -> Seeded:
    resp = await api.post(
        "/v2/integrations", json=webhook_integration(), headers=tenant.auth("manage")
    )
    assert resp.status == 201, await resp.text()
    integration_id = (await resp.json())["data"]["id"]
    resp = await api.post("/v2/events", json=event_body(), headers=tenant.auth("publish"))
    assert resp.status == 202, await resp.text()
    event_id = (await resp.json())["data"]["id"]
    resp = await api.get(f"/v2/integrations/{integration_id}/jobs", headers=tenant.auth("view"))
    (job,) = (await resp.json())["data"]
    return Seeded(integration_id, job["id"], event_id)


@dataclass(frozen=True)
class Route:
    method: str
    path: str
    roles: frozenset[str]
    """The roles allowed to call it."""
    success: int
    body: dict[str, Any] | None = None

    def url(self, ids: Seeded) -> str:
        return self.path.format(id=ids.integration, job=ids.job, event=ids.event)


READERS = frozenset({"view", "manage", "admin"})
WRITERS = frozenset({"manage", "admin"})
PUBLISHERS = frozenset({"publish", "admin"})
UPDATE = {"data": {"type": "integration", "name": "Renamed"}}

ROUTES = [
    Route("GET", "/v2/integrations", READERS, 200),
    Route("POST", "/v2/integrations", WRITERS, 201, webhook_integration()),
    Route("GET", "/v2/integrations/{id}", READERS, 200),
    Route("PUT", "/v2/integrations/{id}", WRITERS, 200, UPDATE),
    Route("DELETE", "/v2/integrations/{id}", WRITERS, 200),
    Route("GET", "/v2/integrations/{id}/secret", WRITERS, 200),
    Route("GET", "/v2/integrations/logs", READERS, 200),
    Route("GET", "/v2/integrations/{id}/logs", READERS, 200),
    Route("GET", "/v2/integrations/{id}/jobs", READERS, 200),
    Route("GET", "/v2/integrations/{id}/jobs/{job}", READERS, 200),
    Route("GET", "/v2/integrations/{id}/jobs/{job}/logs", READERS, 200),
    # The job is still pending, so a permitted retry is refused for its state (409), not its key.
    Route("POST", "/v2/integrations/{id}/jobs/{job}/retry", WRITERS, 409),
    Route("POST", "/v2/events", PUBLISHERS, 202, event_body()),
    Route("GET", "/v2/events/{event}", frozenset(ROLES), 200),
]
#: The routes that name one resource of the store (and so must hide another store's).
SCOPED = [r for r in ROUTES if "{" in r.path]


def route_id(route: Route) -> str:
    return f"{route.method} {route.path}"


# --- malformed requests --------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("body", "status"),
    [
        (b"{not json", 400),
        (b'{"data": {"type": "integration",}}', 400),
        (b"", 400),
        (b"   ", 400),
        (b"\xff\xfe\x00", 400),
        (b'{"data": 1e400}', 400),
        (b'{"data": {"name": "\\ud800"}}', 400),
        (b"null", 422),
        (b"[]", 422),
        (b'"data"', 422),
        (b"{}", 422),
        (b'{"data": null}', 422),
        (b'{"data": []}', 422),
        (b'{"data": "integration"}', 422),
        (b'{"data": {"type": "integration", "name": "a\\u0000b"}}', 422),
        # Nested past the documented limit (64 levels), even past what the parser reads.
        (b"[" * 2000 + b"]" * 2000, 422),
    ],
)
@pytest.mark.parametrize("path", ["/v2/integrations", "/v2/integrations/{id}", "/v2/events"])
async def test_a_body_that_is_not_a_json_document_with_data_is_answered_with_an_error(
    api: Client, tenant: Tenant, path: str, body: bytes, status: int
) -> None:
    ids = await seed(api, tenant)
    method = "PUT" if "{id}" in path else "POST"
    headers = tenant.auth("admin") | {"Content-Type": "application/json"}

    resp = await api.request(method, path.format(id=ids.integration), data=body, headers=headers)

    errors = await envelope(resp, status)
    if status == 400:
        assert errors[0]["title"] == "Bad Request"


@pytest.mark.parametrize(
    ("data", "sources"),
    [
        ({"colour": "red"}, {"data.colour"}),
        ({"name": 5}, {"data.name"}),
        ({"name": ""}, {"data.name"}),
        ({"name": "x" * 256}, {"data.name"}),
        ({"enabled": "maybe"}, {"data.enabled"}),
        ({"enabled": [True]}, {"data.enabled"}),
        ({"observes": "order.created"}, {"data.observes"}),
        ({"observes": [1]}, {"data.observes[0]"}),
        ({"integration_type": "ftp"}, {"data.integration_type"}),
        ({"configuration": []}, {"data.configuration"}),
        ({"configuration": {"url": 7}}, {"data.configuration.url"}),
        ({"type": "event"}, {"data.type"}),
        ({"type": None}, {"data.type"}),
    ],
)
async def test_a_wrong_attribute_is_a_422_naming_it(
    api: Client, tenant: Tenant, data: dict[str, Any], sources: set[str]
) -> None:
    ids = await seed(api, tenant)
    create = webhook_integration()
    create["data"].update(data)
    update = {"data": {"type": "integration", **data}}

    created = await api.post("/v2/integrations", json=create, headers=tenant.auth())
    updated = await api.put(
        f"/v2/integrations/{ids.integration}", json=update, headers=tenant.auth()
    )

    for resp in (created, updated):
        errors = await envelope(resp, 422)
        assert {e.get("source") for e in errors} == sources
        assert {e["title"] for e in errors} == {"Validation Error"}


async def test_a_create_missing_required_attributes_names_each_of_them(
    api: Client, tenant: Tenant
) -> None:
    resp = await api.post("/v2/integrations", json={"data": {}}, headers=tenant.auth())

    errors = await envelope(resp, 422)
    assert {e.get("source") for e in errors} == {
        "data.type",
        "data.name",
        "data.integration_type",
        "data.observes",
        "data.configuration",
    }


async def test_an_unknown_top_level_member_is_a_422_naming_it(api: Client, tenant: Tenant) -> None:
    body = webhook_integration() | {"included": {}}

    resp = await api.post("/v2/integrations", json=body, headers=tenant.auth())

    errors = await envelope(resp, 422)
    assert [e.get("source") for e in errors] == ["included"]


async def test_an_unknown_route_is_a_404_in_the_envelope(api: Client, tenant: Tenant) -> None:
    for path in ("/v2/nothing", "/v1/integrations", "/v2/integrations/", "/"):
        for headers in ({}, tenant.auth("admin")):
            errors = await envelope(await api.get(path, headers=headers), 404)
            assert errors[0]["title"] == "Not Found"
            assert errors[0]["detail"] == "The resource could not be found"


@pytest.mark.parametrize(
    ("method", "path", "allow"),
    [
        ("PATCH", "/v2/integrations/{id}", {"GET", "PUT", "DELETE"}),
        ("POST", "/v2/integrations/{id}", {"GET", "PUT", "DELETE"}),
        ("DELETE", "/v2/integrations", {"GET", "POST"}),
        ("PUT", "/v2/integrations", {"GET", "POST"}),
        ("GET", "/v2/events", {"POST"}),
        ("DELETE", "/v2/events/{id}", {"GET"}),
        ("GET", "/v2/integrations/{id}/jobs/{id}/retry", {"POST"}),
    ],
)
async def test_a_wrong_method_is_a_405_in_the_envelope_with_allow(
    api: Client, tenant: Tenant, method: str, path: str, allow: set[str]
) -> None:
    resp = await api.request(method, path.format(id=uuid4()), headers=tenant.auth("admin"))

    errors = await envelope(resp, 405)
    assert errors[0]["title"] == "Method Not Allowed"
    assert allow <= set(resp.headers["Allow"].split(","))


@pytest.mark.parametrize(
    "path",
    [
        "/v2/integrations/not-a-uuid",
        "/v2/integrations/123",
        "/v2/integrations/not-a-uuid/jobs",
        "/v2/integrations/not-a-uuid/logs",
        "/v2/integrations/not-a-uuid/secret",
        "/v2/integrations/{id}/jobs/not-a-uuid",
        "/v2/integrations/{id}/jobs/not-a-uuid/logs",
        "/v2/events/not-a-uuid",
        "/v2/events/00000000-0000-0000-0000-00000000000g",
    ],
)
async def test_an_id_that_is_not_a_uuid_is_not_found(
    api: Client, tenant: Tenant, path: str
) -> None:
    ids = await seed(api, tenant)

    resp = await api.get(path.format(id=ids.integration), headers=tenant.auth("admin"))

    await envelope(resp, 404)


async def test_writes_to_an_id_that_is_not_a_uuid_are_not_found(
    api: Client, tenant: Tenant
) -> None:
    headers = tenant.auth("admin")
    for method, path, body in [
        ("PUT", "/v2/integrations/nope", UPDATE),
        ("DELETE", "/v2/integrations/nope", None),
        ("POST", f"/v2/integrations/{uuid4()}/jobs/nope/retry", None),
    ]:
        await envelope(await api.request(method, path, json=body, headers=headers), 404)


async def test_ids_that_do_not_exist_are_not_found(api: Client, tenant: Tenant) -> None:
    ids = await seed(api, tenant)
    unknown = Seeded(str(uuid4()), str(uuid4()), str(uuid4()))
    half = Seeded(ids.integration, str(uuid4()), ids.event)

    for route in SCOPED:
        for which in (unknown, half) if "{job}" in route.path else (unknown,):
            resp = await api.request(
                route.method, route.url(which), json=route.body, headers=tenant.auth("admin")
            )
            await envelope(resp, 404)


# --- keys ----------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "authorization",
    [
        None,
        "",
        "Bearer",
        "Bearer ",
        "Basic dXNlcjpwYXNz",
        "Bearer not-a-key",
        "Bearer hub_000000000000_" + "A" * 43,
        "Token {key}",
        "{key}",
        "Bearer {key}x",
        "Bearer {wrong_secret}",
    ],
)
async def test_a_missing_or_invalid_key_is_a_401(
    api: Client, tenant: Tenant, authorization: str | None
) -> None:
    key = tenant.keys["admin"]
    wrong_secret = key[:-4] + ("AAAA" if not key.endswith("AAAA") else "BBBB")
    headers = (
        {}
        if authorization is None
        else {"Authorization": authorization.format(key=key, wrong_secret=wrong_secret)}
    )

    for route in ROUTES:
        resp = await api.request(
            route.method,
            route.path.format(id=uuid4(), job=uuid4(), event=uuid4()),
            json=route.body,
            headers=headers,
        )
        errors = await envelope(resp, 401)
        assert errors == [{"status": 401, "title": "Unauthorized", "detail": UNAUTHORIZED}]


async def test_the_bearer_scheme_is_case_insensitive(api: Client, tenant: Tenant) -> None:
    resp = await api.get(
        "/v2/integrations", headers={"Authorization": f"bearer {tenant.keys['view']}"}
    )

    assert resp.status == 200


async def test_a_revoked_key_is_a_401(
    api: Client, tenant: Tenant, shared_engine: AsyncEngine
) -> None:
    key = tenant.keys["manage"]
    assert (await api.get("/v2/integrations", headers=tenant.auth("manage"))).status == 200
    prefix = key_prefix(key)
    assert prefix is not None
    async with shared_engine.begin() as conn:
        found = await stores.find_active_key(await driver_of(conn), prefix)
        assert found is not None
        assert await stores.revoke_key(conn, found[0].id)

    # Another process revoked it: this one forgets the key once the revocation's notice
    # arrives (`KnownCredentials`), moments after the commit rather than necessarily before
    # the very next request.
    async def refused() -> bool:
        resp = await api.get("/v2/integrations", headers=tenant.auth("manage"))
        await resp.read()
        return resp.status == 401

    await eventually(refused, timeout=5, what="the revoked key refused")
    resp = await api.get("/v2/integrations", headers=tenant.auth("manage"))
    errors = await envelope(resp, 401)
    assert errors[0]["detail"] == UNAUTHORIZED
    # The store's other keys still work.
    assert (await api.get("/v2/integrations", headers=tenant.auth("view"))).status == 200


@pytest.mark.parametrize(
    ("route", "role"),
    [(r, role) for r in ROUTES for role in ROLES if role not in r.roles],
    ids=lambda v: route_id(v) if isinstance(v, Route) else str(v),
)
async def test_a_key_without_the_role_for_a_route_is_a_403(
    api: Client, tenant: Tenant, route: Route, role: str
) -> None:
    ids = await seed(api, tenant)

    resp = await api.request(
        route.method, route.url(ids), json=route.body, headers=tenant.auth(role)
    )

    errors = await envelope(resp, 403)
    assert errors[0]["title"] == "Forbidden"
    assert role in errors[0]["detail"]


@pytest.mark.parametrize(
    ("route", "role"),
    [(r, role) for r in ROUTES for role in ROLES if role in r.roles],
    ids=lambda v: route_id(v) if isinstance(v, Route) else str(v),
)
async def test_a_key_with_the_role_for_a_route_is_served(
    api: Client, tenant: Tenant, route: Route, role: str
) -> None:
    ids = await seed(api, tenant)

    resp = await api.request(
        route.method, route.url(ids), json=route.body, headers=tenant.auth(role)
    )

    if route.success >= 400:
        await envelope(resp, route.success)
    else:
        assert resp.status == route.success, await resp.text()


async def test_a_forbidden_write_changes_nothing(api: Client, tenant: Tenant) -> None:
    ids = await seed(api, tenant)
    path = f"/v2/integrations/{ids.integration}"
    before = await (await api.get(path, headers=tenant.auth("view"))).json()

    await envelope(await api.put(path, json=UPDATE, headers=tenant.auth("view")), 403)
    await envelope(await api.delete(path, headers=tenant.auth("publish")), 403)
    await envelope(
        await api.post("/v2/events", json=event_body(), headers=tenant.auth("manage")), 403
    )

    assert await (await api.get(path, headers=tenant.auth("view"))).json() == before
    jobs = await api.get(f"{path}/jobs", headers=tenant.auth("view"))
    assert (await jobs.json())["meta"]["results"]["total"] == 1


# --- stores --------------------------------------------------------------------------------------


@pytest.mark.parametrize("route", SCOPED, ids=route_id)
async def test_another_stores_resources_are_not_found(
    api: Client, tenant: Tenant, other_tenant: Tenant, route: Route
) -> None:
    theirs = await seed(api, other_tenant)
    mine = await seed(api, tenant)
    attempts = [theirs]
    if "{job}" in route.path:
        # My own integration with their job is no better.
        attempts.append(Seeded(mine.integration, theirs.job, theirs.event))

    for ids in attempts:
        for key in sorted(route.roles):
            resp = await api.request(
                route.method, route.url(ids), json=route.body, headers=tenant.auth(key)
            )
            errors = await envelope(resp, 404)
            assert errors[0]["detail"] == "The resource could not be found"

    # Nothing of theirs changed.
    path = f"/v2/integrations/{theirs.integration}"
    resp = await api.get(path, headers=other_tenant.auth("view"))
    assert (await resp.json())["data"]["name"] == "Order hook"
    job = await api.get(f"{path}/jobs/{theirs.job}", headers=other_tenant.auth("view"))
    assert (await job.json())["data"]["status"] == "pending"


async def test_lists_show_only_the_keys_store(
    api: Client, tenant: Tenant, other_tenant: Tenant
) -> None:
    mine = await seed(api, tenant)
    await seed(api, other_tenant)

    resp = await api.get("/v2/integrations", headers=tenant.auth("admin"))

    assert [d["id"] for d in (await resp.json())["data"]] == [mine.integration]


async def test_an_admin_key_acts_on_another_store_named_by_x_hub_store(
    api: Client, tenant: Tenant, other_tenant: Tenant
) -> None:
    theirs = await seed(api, other_tenant)
    there = tenant.auth("admin") | {"X-Hub-Store": other_tenant.name}

    read = await api.get(f"/v2/integrations/{theirs.integration}", headers=there)
    listed = await api.get("/v2/integrations", headers=there)
    jobs = await api.get(f"/v2/integrations/{theirs.integration}/jobs", headers=there)
    event = await api.get(f"/v2/events/{theirs.event}", headers=there)
    created = await api.post("/v2/integrations", json=webhook_integration(), headers=there)
    published = await api.post("/v2/events", json=event_body(), headers=there)

    assert (await read.json())["data"]["id"] == theirs.integration
    assert [d["id"] for d in (await listed.json())["data"]] == [theirs.integration]
    assert [d["id"] for d in (await jobs.json())["data"]] == [theirs.job]
    assert (await event.json())["data"]["id"] == theirs.event
    assert created.status == 201
    new_id = (await created.json())["data"]["id"]
    # What the admin created and published belongs to that store, not the admin's own.
    assert published.status == 202
    assert (await published.json())["data"]["jobs"]["total"] == 2
    own = await api.get(f"/v2/integrations/{new_id}", headers=other_tenant.auth("view"))
    assert own.status == 200
    await envelope(await api.get(f"/v2/integrations/{new_id}", headers=tenant.auth("admin")), 404)


@pytest.mark.parametrize("role", ["view", "manage", "publish"])
async def test_a_non_admin_key_naming_another_store_is_a_403(
    api: Client, tenant: Tenant, other_tenant: Tenant, role: str
) -> None:
    headers = tenant.auth(role) | {"X-Hub-Store": other_tenant.name}
    method, path, body = (
        ("POST", "/v2/events", event_body())
        if role == "publish"
        else ("GET", "/v2/integrations", None)
    )

    resp = await api.request(method, path, json=body, headers=headers)

    errors = await envelope(resp, 403)
    assert "X-Hub-Store" in errors[0]["detail"]


@pytest.mark.parametrize("role", ROLES)
async def test_naming_the_keys_own_store_in_x_hub_store_is_allowed(
    api: Client, tenant: Tenant, role: str
) -> None:
    path = "/v2/events" if role == "publish" else "/v2/integrations"
    method = "POST" if role == "publish" else "GET"
    body = event_body() if role == "publish" else None

    resp = await api.request(
        method, path, json=body, headers=tenant.auth(role) | {"X-Hub-Store": tenant.name}
    )

    assert resp.status < 300, await resp.text()


async def test_an_admin_key_naming_an_unknown_store_is_a_404(api: Client, tenant: Tenant) -> None:
    headers = tenant.auth("admin") | {"X-Hub-Store": f"no-such-store-{secrets.token_hex(4)}"}

    for method, path, body in [
        ("GET", "/v2/integrations", None),
        ("POST", "/v2/integrations", webhook_integration()),
        ("POST", "/v2/events", event_body()),
    ]:
        errors = await envelope(await api.request(method, path, json=body, headers=headers), 404)
        assert "no-such-store" in errors[0]["detail"]


# --- limits ------------------------------------------------------------------------------------


async def test_an_idempotency_key_longer_than_an_event_id_is_a_400(
    api: Client, tenant: Tenant
) -> None:
    # Random, so that PostgreSQL cannot compress it under its index row limit.
    headers = tenant.auth("publish") | {"Idempotency-Key": secrets.token_urlsafe(3000)}

    resp = await api.post("/v2/events", json=event_body(), headers=headers)

    errors = await envelope(resp, 400)
    assert errors[0]["source"] == "Idempotency-Key"


async def test_an_idempotency_key_as_long_as_an_event_id_is_accepted(
    api: Client, tenant: Tenant
) -> None:
    key = secrets.token_urlsafe(200)[:255]
    headers = tenant.auth("publish") | {"Idempotency-Key": key}

    resp = await api.post("/v2/events", json=event_body(), headers=headers)

    assert resp.status == 202
    assert (await resp.json())["data"]["client_id"] == key


async def test_ids_in_paths_are_checked_before_the_store_is_asked(
    api: Client, tenant: Tenant
) -> None:
    # A valid UUID of the nil and max kinds: found nowhere, answered 404 rather than failing.
    for value in (UUID(int=0), UUID(int=2**128 - 1)):
        resp = await api.get(f"/v2/integrations/{value}", headers=tenant.auth("view"))
        await envelope(resp, 404)
