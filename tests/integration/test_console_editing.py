"""The console's integration editor, store switch and live-log filter over HTTP: roles, CSRF,
what bad form input gets (a page with the problem, never a 500) and what reaches the store."""

from __future__ import annotations

import re
from collections.abc import AsyncIterator
from typing import Any
from uuid import UUID

import pytest
from aiohttp.test_utils import TestClient, TestServer
from sqlalchemy.ext.asyncio import AsyncEngine

from hub.store import integrations, stores
from hub.store.models import INTEGRATION_TYPES
from hub.store.records import IntegrationRecord
from hub.web import create_app
from tests.conftest import Tenant, settings_for, webhook_integration
from tests.integration.test_console import page_csrf, sign_in

NEW = "/console/integrations/new"


@pytest.fixture
async def console(
    shared_db: str, shared_engine: AsyncEngine
) -> AsyncIterator[TestClient[Any, Any]]:
    app = create_app(settings_for(shared_db), shared_engine)
    async with TestClient(TestServer(app, host="127.0.0.1")) as client:
        yield client


async def _create_by_api(client: TestClient[Any, Any], tenant: Tenant, **extra: Any) -> str:
    created = await client.post(
        "/v2/integrations", json=webhook_integration(**extra), headers=tenant.auth("manage")
    )
    assert created.status == 201, await created.text()
    integration_id: str = (await created.json())["data"]["id"]
    return integration_id


async def _count(client: TestClient[Any, Any], tenant: Tenant) -> int:
    listed = await client.get("/v2/integrations", headers=tenant.auth("view"))
    return int((await listed.json())["meta"]["results"]["total"])


async def _stored(engine: AsyncEngine, tenant: Tenant, integration_id: str) -> IntegrationRecord:
    async with engine.connect() as conn:
        store = await stores.get_store_by_name(conn, tenant.name)
        assert store is not None
        record = await integrations.get_integration(conn, store.id, UUID(integration_id))
    assert record is not None
    return record


def webhook_form(csrf: str, **values: str) -> dict[str, str]:
    form = {
        "csrf": csrf,
        "name": "Form hook",
        "integration_type": "webhook",
        "webhook:url": "https://example.com/hook",
        "webhook:secret_key": "s3cret-key",
        "observes": "order.created",
        "enabled": "true",
    }
    form.update(values)
    return form


async def test_a_view_key_gets_no_editor_and_is_refused_when_it_posts_anyway(
    console: TestClient[Any, Any], tenant: Tenant
) -> None:
    integration_id = await _create_by_api(console, tenant)
    await sign_in(console, tenant.keys["view"])
    base = f"/console/integrations/{integration_id}"
    token = await page_csrf(console, base)

    listing = await (await console.get("/console/integrations")).text()
    detail = await (await console.get(base)).text()
    new_page = await console.get(NEW)
    edit_page = await console.get(f"{base}/edit")
    created = await console.post(NEW, data=webhook_form(token))
    edited = await console.post(f"{base}/edit", data=webhook_form(token, name="Renamed"))
    deleted = await console.post(f"{base}/delete", data={"csrf": token, "confirm": "yes"})

    assert 'data-testid="new-integration"' not in listing
    assert 'data-testid="edit"' not in detail
    assert 'data-testid="delete"' not in detail
    for response in (new_page, edit_page, created, edited, deleted):
        assert response.status == 403
        assert "can look but not act" in await response.text()
    assert await _count(console, tenant) == 1
    still = await console.get(f"/v2/integrations/{integration_id}", headers=tenant.auth("view"))
    assert (await still.json())["data"]["name"] == "Order hook"


async def test_editor_posts_without_the_csrf_token_are_refused(
    console: TestClient[Any, Any], tenant: Tenant
) -> None:
    integration_id = await _create_by_api(console, tenant)
    await sign_in(console, tenant.keys["manage"])
    base = f"/console/integrations/{integration_id}"

    created = await console.post(NEW, data=webhook_form("forged"))
    edited = await console.post(f"{base}/edit", data=webhook_form("", name="Renamed"))
    form = webhook_form("x")
    del form["csrf"]
    no_token = await console.post(NEW, data=form)
    deleted = await console.post(f"{base}/delete", data={"confirm": "yes"})

    for response in (created, edited, no_token, deleted):
        assert response.status == 403
        assert "security token" in await response.text()
    assert await _count(console, tenant) == 1
    still = await console.get(f"/v2/integrations/{integration_id}", headers=tenant.auth("view"))
    assert (await still.json())["data"]["name"] == "Order hook"


async def test_a_manage_key_creates_edits_and_deletes_through_the_forms(
    console: TestClient[Any, Any], tenant: Tenant, shared_engine: AsyncEngine
) -> None:
    await sign_in(console, tenant.keys["manage"])
    token = await page_csrf(console, NEW)

    created = await console.post(NEW, data=webhook_form(token), allow_redirects=False)
    assert created.status == 303, await created.text()
    base = created.headers["Location"]
    integration_id = base.rsplit("/", 1)[1]
    edit = await (await console.get(f"{base}/edit")).text()
    edited = await console.post(
        f"{base}/edit",
        data=webhook_form(
            token,
            name="Renamed",
            **{"webhook:secret_key": "", "conditions": '{"field": "data.id", "exists": true}'},
            rate_limit="2.5",
            max_in_flight="3",
        ),
        allow_redirects=False,
    )
    after_edit = await _stored(shared_engine, tenant, integration_id)
    confirm = await console.get(f"{base}/delete")
    unconfirmed = await console.post(f"{base}/delete", data={"csrf": token}, allow_redirects=False)
    deleted = await console.post(
        f"{base}/delete", data={"csrf": token, "confirm": "yes"}, allow_redirects=False
    )
    gone = await console.get(f"/v2/integrations/{integration_id}", headers=tenant.auth("view"))

    assert "s3cret-key" not in edit  # a stored secret is never written into the page
    assert "stored — leave blank to keep" in edit
    assert edited.status == 303, await edited.text()
    assert after_edit.name == "Renamed"
    assert after_edit.configuration["secret_key"] == "s3cret-key"
    assert after_edit.conditions == {"field": "data.id", "exists": True}
    assert (after_edit.rate_limit, after_edit.max_in_flight) == (2.5, 3)
    assert confirm.status == 200
    assert "Delete Renamed?" in await confirm.text()
    assert unconfirmed.status == 303  # back to the question, nothing deleted
    assert deleted.status == 303
    assert deleted.headers["Location"] == "/console/integrations"
    assert gone.status == 404


async def test_problems_are_shown_next_to_their_fields_and_nothing_is_saved(
    console: TestClient[Any, Any], tenant: Tenant
) -> None:
    await sign_in(console, tenant.keys["manage"])
    token = await page_csrf(console, NEW)

    response = await console.post(
        NEW,
        data=webhook_form(
            token,
            **{"webhook:url": "ftp://example.com/x"},
            observes="order.created",
            observes_other="not a key",
            conditions='{"field": "data.total", "gte": }',
        ),
    )
    first = await response.text()
    response2 = await console.post(
        NEW,
        data=webhook_form(
            token,
            **{"webhook:url": "ftp://example.com/x"},
            conditions='{"field": "data.total", "between": 1}',
        ),
    )
    second = await response2.text()
    third = await (await console.post(NEW, data=webhook_form(token, rate_limit="0"))).text()

    assert response.status == 422
    assert 'data-error-for="conditions"' in first
    assert "not valid JSON" in first
    assert response2.status == 422
    assert 'data-error-for="webhook:url"' in second
    assert "must be an absolute http or https URL" in second
    assert 'data-error-for="conditions"' in second
    assert 'data-error-for="rate_limit"' in third
    assert "s3cret-key" not in second  # a typed secret is not shown back either
    assert "Type it again" in second
    assert await _count(console, tenant) == 0


BAD_FORMS: list[dict[str, str]] = [
    {"integration_type": "nope"},
    {"name": ""},
    {"name": "x" * 10_000},
    {"description": "d" * 5000},
    {"rate_limit": "nan"},
    {"rate_limit": "inf"},
    {"rate_limit": "-1"},
    {"rate_limit": "1" * 400},
    {"max_in_flight": "1e99"},
    {"max_in_flight": "9" * 50},
    {"max_in_flight": "0"},
    {"ordering_key": "data..id"},
    {"ordering_key": "x" * 1000},
    {"conditions": "[" * 100_000},
    {"conditions": "[" * 70 + "]" * 70},
    {"conditions": '{"all": ' * 40 + "{}" + "}" * 40},
    {"conditions": "[]"},
    {"conditions": '"text"'},
    {"conditions": "1e999999"},
    {"conditions": "\x00"},
    {"observes": ""},
    {"observes": "*.*"},
    {"observes": "", "observes_other": "," * 500},
    {"observes_other": "a." * 300},
    {"webhook:url": "http://[::1"},
    {"webhook:url": "http://169.254.169.254/latest"},
    {"webhook:url": "https://u:p@example.com"},
    {"webhook:secret_key": "k" * 5000},
    {"integration_type": "aws_sqs", "aws_sqs:region": "Not A Region"},
    {"integration_type": "stomp", "stomp:addresses": "nonsense\n" * 20},
    {"integration_type": "stomp", "stomp:addresses": "stomp://u:p@h:1", "stomp:destination": "q"},
    {"integration_type": "amqp", "amqp:url": "amqp://h?x=1", "amqp:exchange": "e e"},
    {"integration_type": "amqp", "amqp:url": "amqp://u:p@h/", "amqp:headers": "no colon"},
    {"integration_type": "amqp", "amqp:url": "amqp://u:p@h/", "amqp:headers": "hub-x: 1"},
    {
        "integration_type": "amqp",
        "amqp:url": "amqp://u:p@h:0/",
        "amqp:exchange": "amq.x",
        "amqp:declare": "true",
        "amqp:exchange_type": "bogus",
    },
    {"integration_type": "web_push", "web_push:endpoint": "http://x", "web_push:ttl": "abc"},
    {"integration_type": "web_push", "web_push:keys.p256dh": "!!", "web_push:keys.auth": "a"},
    {
        "integration_type": "web_push",
        "web_push:expirationTime": "-5",
        "web_push:topic": "t" * 99,
        "web_push:urgency": "asap",
    },
]


async def test_the_catalogue_is_folded_once_something_is_picked_unless_the_pick_is_wrong(
    console: TestClient[Any, Any], tenant: Tenant
) -> None:
    integration_id = await _create_by_api(console, tenant)
    await sign_in(console, tenant.keys["manage"])
    catalogue = re.compile(
        r'<details class="catalogue" data-testid="observes-catalogue"\s*(open)?>'
    )

    new = await (await console.get(NEW)).text()
    edit = await (await console.get(f"/console/integrations/{integration_id}/edit")).text()
    token = await page_csrf(console, NEW)
    unpicked = await (await console.post(NEW, data=webhook_form(token, observes=""))).text()
    retyped = await (await console.post(NEW, data=webhook_form(token, name=""))).text()

    assert [m.group(1) for m in catalogue.finditer(new)] == ["open"]
    assert [m.group(1) for m in catalogue.finditer(edit)] == [None]
    assert "1 picked" in edit
    assert [m.group(1) for m in catalogue.finditer(unpicked)] == ["open"], "nothing picked"
    assert 'data-error-for="observes"' in unpicked
    assert [m.group(1) for m in catalogue.finditer(retyped)] == [None], "picked, wrong elsewhere"
    assert 'value="order.created" checked' in retyped


@pytest.mark.parametrize("bad", BAD_FORMS, ids=range(len(BAD_FORMS)))
async def test_bad_form_input_is_a_page_with_the_problem_never_a_500(
    console: TestClient[Any, Any], tenant: Tenant, bad: dict[str, str]
) -> None:
    integration_id = await _create_by_api(console, tenant)
    await sign_in(console, tenant.keys["manage"])
    token = await page_csrf(console, NEW)

    created = await console.post(NEW, data=webhook_form(token, **bad))
    edited = await console.post(
        f"/console/integrations/{integration_id}/edit", data=webhook_form(token, **bad)
    )

    for response in (created, edited):
        text = await response.text()
        assert "Traceback" not in text
        if any("\x00" in value for value in bad.values()):
            # Refused with every console form before it is read (`sessions.checked_form`).
            assert response.status == 400, text[:2000]
            assert "NUL character" in text
            continue
        assert response.status == 422, text[:2000]
        assert "Nothing was saved" in text
    assert await _count(console, tenant) == 1


async def test_odd_requests_to_the_editor_are_pages_not_errors(
    console: TestClient[Any, Any], tenant: Tenant
) -> None:
    await sign_in(console, tenant.keys["manage"])
    token = await page_csrf(console, NEW)
    missing = "/console/integrations/00000000-0000-7000-8000-000000000000"

    answers = [
        await console.get("/console/integrations/not-a-uuid/edit"),
        await console.get(f"{missing}/edit"),
        await console.get(f"{missing}/delete"),
        await console.post(f"{missing}/edit", data=webhook_form(token)),
        await console.post(f"{missing}/delete", data={"csrf": token, "confirm": "yes"}),
        await console.post(NEW, data=b"\xff\xfe", headers={"Content-Type": "text/plain"}),
        await console.get(NEW + "?type=nope"),
    ]

    assert [a.status for a in answers] == [404, 404, 404, 404, 404, 403, 200]


async def test_the_type_filter_offers_the_real_type_names_and_finds_each(
    console: TestClient[Any, Any], tenant: Tenant
) -> None:
    sqs = webhook_integration(name="Queue")
    sqs["data"].update(
        integration_type="aws_sqs",
        configuration={
            "url": "https://sqs.eu-west-1.amazonaws.com/1/q",
            "aws_access_key_id": "AKIA",
            "aws_secret_access_key": "secret",
            "region": "eu-west-1",
        },
    )
    assert (
        await console.post("/v2/integrations", json=sqs, headers=tenant.auth("manage"))
    ).status == 201
    await _create_by_api(console, tenant)
    await sign_in(console, tenant.keys["view"])

    listing = await (await console.get("/console/integrations")).text()
    only_sqs = await (await console.get("/console/integrations?type=aws_sqs")).text()

    for kind in INTEGRATION_TYPES:
        assert f'<option value="{kind}"' in listing
    assert '<option value="sqs"' not in listing
    assert "Queue" in only_sqs
    assert "Order hook" not in only_sqs


async def test_only_an_admin_key_switches_store_and_then_sees_that_stores_integrations(
    console: TestClient[Any, Any], tenant: Tenant, other_tenant: Tenant
) -> None:
    await _create_by_api(console, other_tenant, name="Other store's hook")
    await sign_in(console, tenant.keys["manage"])
    token = await page_csrf(console, "/console/integrations")
    header = await (await console.get("/console/integrations")).text()
    refused_page = await console.get("/console/store")
    refused = await console.post("/console/store", data={"csrf": token, "store": other_tenant.name})
    still_own = await (await console.get("/console/integrations")).text()
    await console.post("/console/logout", data={"csrf": token})

    await sign_in(console, tenant.keys["admin"])
    token = await page_csrf(console, "/console/store")
    unknown = await console.post("/console/store", data={"csrf": token, "store": "no-such-store"})
    forged = await console.post("/console/store", data={"csrf": "x", "store": other_tenant.name})
    switched = await console.post(
        "/console/store", data={"csrf": token, "store": other_tenant.name}
    )
    switched_text = await switched.text()

    assert 'data-testid="switch-store"' not in header
    assert refused_page.status == 403
    assert refused.status == 403
    assert "Other store's hook" not in still_own
    assert unknown.status == 200
    assert "No store is called" in await unknown.text()
    assert forged.status == 403
    assert switched.status == 200
    assert f"Now acting on the store {other_tenant.name}" in switched_text
    assert "Other store&#39;s hook" in switched_text


async def test_the_live_log_filter_refuses_what_it_cannot_read(
    console: TestClient[Any, Any], tenant: Tenant
) -> None:
    integration_id = await _create_by_api(console, tenant)
    await sign_in(console, tenant.keys["view"])

    fine = await console.get(f"/console/logs?integration={integration_id}&outcome=failed")
    bad_outcome = await console.get("/console/logs?outcome=maybe")
    bad_id = await console.get("/console/logs/stream?integration=nope")
    text = await fine.text()

    assert fine.status == 200
    assert f"integration={integration_id}" in text
    assert "outcome=failed" in text
    assert bad_outcome.status == 400
    assert "outcome must be succeeded or failed" in await bad_outcome.text()
    assert bad_id.status == 400


async def test_a_new_host_with_the_secret_left_blank_asks_for_the_secret_again(
    console: TestClient[Any, Any], tenant: Tenant, shared_engine: AsyncEngine
) -> None:
    integration_id = await _create_by_api(console, tenant)
    await sign_in(console, tenant.keys["manage"])
    base = f"/console/integrations/{integration_id}"
    token = await page_csrf(console, f"{base}/edit")

    moved = await console.post(
        f"{base}/edit",
        data=webhook_form(
            token, **{"webhook:url": "https://elsewhere.example/h"}, **{"webhook:secret_key": ""}
        ),
    )
    text = await moved.text()

    assert moved.status == 422
    assert 'data-error-for="webhook:secret_key"' in text
    assert "stored credentials are never sent to a new host" in text
    stored = await _stored(shared_engine, tenant, integration_id)
    assert stored.configuration["url"] == "https://example.com/hook"


async def test_an_edit_that_changes_the_type_replaces_the_configuration(
    console: TestClient[Any, Any], tenant: Tenant, shared_engine: AsyncEngine
) -> None:
    integration_id = await _create_by_api(console, tenant)
    await sign_in(console, tenant.keys["manage"])
    base = f"/console/integrations/{integration_id}"
    token = await page_csrf(console, f"{base}/edit")
    form = webhook_form(token, integration_type="stomp")
    form.update({"stomp:addresses": "stomp://127.0.0.1:61613\n\n", "stomp:destination": "/q/x"})

    changed = await console.post(f"{base}/edit", data=form, allow_redirects=False)

    assert changed.status == 303, await changed.text()
    stored = await _stored(shared_engine, tenant, integration_id)
    assert stored.integration_type == "stomp"
    assert stored.configuration == {"addresses": ["stomp://127.0.0.1:61613"], "destination": "/q/x"}
