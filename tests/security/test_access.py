"""Who may call what: every route of the app's router, for every role, in the key's own store and
another store. The routes come from the router itself, so a new route is covered (and must say
in `hub.api.openapi.operations` which permission it needs) without touching this file."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any
from uuid import uuid4

import pytest
from aiohttp.test_utils import TestClient

from hub.api.openapi.examples import BODY_EXAMPLES
from hub.api.openapi.operations import OPERATIONS, Op
from hub.auth import ROLE_PERMISSIONS
from hub.store.engine import create_engine
from hub.web import create_app
from tests.conftest import ADMIN_URL, Tenant, event_body, settings_for, webhook_integration

Client = TestClient[Any, Any]
ROLES = tuple(ROLE_PERMISSIONS)


@dataclass(frozen=True)
class Route:
    method: str
    path: str
    op: Op

    @property
    def roles(self) -> frozenset[str]:
        """The roles that may call it."""
        assert self.op.permission is not None
        return frozenset(
            r for r, granted in ROLE_PERMISSIONS.items() if self.op.permission in granted
        )

    @property
    def body(self) -> Any:
        if self.op.body is None or self.method in ("GET", "HEAD", "DELETE"):
            return None
        examples = BODY_EXAMPLES.get(self.op.body)
        return next(iter(examples.values())) if examples else {"data": {}}

    def url(self, world: World) -> str:
        values = {
            "id": world.event if self.path.startswith("/v2/events/") else world.integration,
            "job_id": world.job,
        }
        path = self.path
        for name in [part[1:-1] for part in path.split("/") if part.startswith("{")]:
            path = path.replace("{" + name + "}", values.get(name, str(uuid4())))
        return path

    def __str__(self) -> str:
        return f"{self.method} {self.path}"


def _router_routes() -> list[Route]:
    """Every /v2 route the app serves (HEAD included), with the operation that documents it."""
    # Never started: the engine is never connected.
    app = create_app(settings_for(ADMIN_URL), create_engine(ADMIN_URL, pool_size=1))
    documented = {(op.method.upper(), op.path): op for op in OPERATIONS}
    found = []
    for route in app.router.routes():
        path = route.resource.canonical if route.resource is not None else ""
        if not path.startswith("/v2"):
            continue
        method = "GET" if route.method == "HEAD" else route.method
        op = documented.get((method, path))
        assert op is not None, f"{route.method} {path} is served but not documented"
        assert op.permission is not None, f"{route.method} {path} must require a permission"
        found.append(Route(route.method, path, op))
    return found


ROUTES = _router_routes()
SCOPED = [r for r in ROUTES if "{" in r.path]


@dataclass(frozen=True)
class World:
    """A store's integration, with one event published to it and the job it made."""

    tenant: Tenant
    integration: str
    event: str
    job: str


async def seed(api: Client, tenant: Tenant) -> World:
    resp = await api.post(
        "/v2/integrations", json=webhook_integration(), headers=tenant.auth("manage")
    )
    assert resp.status == 201, await resp.text()
    integration = (await resp.json())["data"]["id"]
    resp = await api.post("/v2/events", json=event_body(), headers=tenant.auth("publish"))
    assert resp.status == 202, await resp.text()
    event = (await resp.json())["data"]["id"]
    resp = await api.get(f"/v2/integrations/{integration}/jobs", headers=tenant.auth("view"))
    (job,) = (await resp.json())["data"]
    return World(tenant, integration, event, job["id"])


async def snapshot(api: Client, world: World) -> Any:
    """What store A looks like to its own admin: its integration, jobs, logs, event, secret."""
    base = f"/v2/integrations/{world.integration}"
    out = []
    for path in (
        base,
        f"{base}/jobs",
        f"{base}/logs",
        f"{base}/secret",
        "/v2/integrations",
        f"/v2/events/{world.event}",
    ):
        resp = await api.get(path, headers=world.tenant.auth("admin"))
        document = await resp.json()
        out.append((resp.status, document))
    return out


def test_the_matrix_covers_every_route_the_router_serves() -> None:
    served = {str(r) for r in ROUTES}

    assert "POST /v2/integrations/{id}/secret/rotate" in served
    assert "HEAD /v2/integrations/{id}/jobs/{job_id}" in served
    assert len(ROUTES) >= 20


@pytest.mark.parametrize("route", ROUTES, ids=str)
async def test_in_its_own_store_a_key_is_served_exactly_when_its_role_allows(
    api: Client, tenant: Tenant, route: Route
) -> None:
    world = await seed(api, tenant)

    # Refused roles first: nothing they try may change what the allowed ones then see.
    for role in sorted(ROLES, key=lambda r: r in route.roles):
        resp = await api.request(
            route.method, route.url(world), json=route.body, headers=tenant.auth(role)
        )
        if role in route.roles:
            assert resp.status not in (401, 403), (role, resp.status, await resp.text())
            assert resp.status < 500, (role, await resp.text())
        else:
            assert resp.status == 403, (role, resp.status, await resp.text())
            if route.method != "HEAD":
                [error] = (await resp.json())["errors"]
                assert error["title"] == "Forbidden"
                assert role in error["detail"]


@pytest.mark.parametrize("route", SCOPED, ids=str)
async def test_a_key_of_another_store_reaches_nothing_of_this_one(
    api: Client, tenant: Tenant, other_tenant: Tenant, route: Route
) -> None:
    theirs = await seed(api, other_tenant)
    mine = await seed(api, tenant)
    before = await snapshot(api, theirs)
    # Their ids in my key's requests; for nested routes also my integration with their job.
    targets = [theirs]
    if "{job_id}" in route.path:
        targets.append(World(tenant, mine.integration, theirs.event, theirs.job))

    for world in targets:
        for role in ROLES:
            resp = await api.request(
                route.method, route.url(world), json=route.body, headers=tenant.auth(role)
            )
            expected = 404 if role in route.roles else 403
            assert resp.status == expected, (role, world, resp.status, await resp.text())

    assert await snapshot(api, theirs) == before


async def test_lists_and_publishing_with_another_stores_key_touch_nothing_of_this_one(
    api: Client, tenant: Tenant, other_tenant: Tenant
) -> None:
    theirs = await seed(api, other_tenant)
    before = await snapshot(api, theirs)
    seen = []

    for role in ROLES:
        for path in ("/v2/integrations", "/v2/integrations/logs"):
            resp = await api.get(path, headers=tenant.auth(role))
            seen.append(await resp.text())
    # Publishing the very event key their integration observes reaches only my store.
    published = await api.post("/v2/events", json=event_body(), headers=tenant.auth("publish"))
    created = await api.post(
        "/v2/integrations", json=webhook_integration(), headers=tenant.auth("manage")
    )

    assert published.status == 202
    assert (await published.json())["data"]["jobs"]["total"] == 0
    assert created.status == 201
    assert not any(theirs.integration in text or theirs.job in text for text in seen)
    assert await snapshot(api, theirs) == before
