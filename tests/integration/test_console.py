"""The operator console at /console: sign-in, sessions, CSRF, roles, pages and the live log."""

from __future__ import annotations

import asyncio
import json
import re
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from aiohttp.test_utils import TestClient, TestServer
from sqlalchemy.ext.asyncio import AsyncEngine

from deliverers.base import Delivery, DeliveryResult
from deliverers.memory import MemoryDeliverer
from hub.web import create_app
from tests.conftest import Tenant, event_body, settings_for, webhook_integration
from tests.support.stack import Stack, hub_stack
from tests.support.waiting import eventually

CSRF = re.compile(r'name="csrf" value="([^"]+)"')


@pytest.fixture
async def console(
    shared_db: str, shared_engine: AsyncEngine
) -> AsyncIterator[TestClient[Any, Any]]:
    """A client of its own (its own cookie jar) of an app on the shared database."""
    app = create_app(settings_for(shared_db), shared_engine)
    async with TestClient(TestServer(app, host="127.0.0.1")) as client:
        yield client


async def sign_in(client: TestClient[Any, Any], key: str) -> Any:
    page = await client.get("/console/login")
    assert page.status == 200
    token = CSRF.search(await page.text())
    assert token is not None
    return await client.post(
        "/console/login", data={"csrf": token.group(1), "key": key}, allow_redirects=False
    )


async def page_csrf(client: TestClient[Any, Any], path: str) -> str:
    page = await client.get(path)
    assert page.status == 200, await page.text()
    token = CSRF.search(await page.text())
    assert token is not None
    return token.group(1)


async def test_a_view_key_signs_in_with_an_httponly_strict_cookie_without_the_key(
    console: TestClient[Any, Any], tenant: Tenant
) -> None:
    response = await sign_in(console, tenant.keys["view"])

    assert response.status == 303
    assert response.headers["Location"] == "/console/integrations"
    cookie = response.cookies["hub_console"]
    assert cookie["httponly"] is True
    assert cookie["samesite"] == "Strict"
    assert cookie["path"] == "/console"
    assert tenant.keys["view"] not in response.headers.getall("Set-Cookie")[0]
    page = await console.get("/console/integrations")
    assert page.status == 200
    assert tenant.name in await page.text()


async def test_a_wrong_key_is_refused_and_no_session_is_made(
    console: TestClient[Any, Any], tenant: Tenant
) -> None:
    wrong = tenant.keys["view"][:-4] + "AAAA"

    response = await sign_in(console, wrong)

    assert response.status == 401
    assert "That key is not valid" in await response.text()
    assert "hub_console" not in response.cookies
    page = await console.get("/console/integrations", allow_redirects=False)
    assert page.status == 303
    assert page.headers["Location"] == "/console/login"


async def test_a_publish_key_is_refused_at_sign_in(
    console: TestClient[Any, Any], tenant: Tenant
) -> None:
    response = await sign_in(console, tenant.keys["publish"])

    assert response.status == 403
    assert "cannot read integrations" in await response.text()
    assert "hub_console" not in response.cookies


async def test_sign_in_without_the_forms_token_is_refused(
    console: TestClient[Any, Any], tenant: Tenant
) -> None:
    response = await console.post(
        "/console/login", data={"key": tenant.keys["manage"]}, allow_redirects=False
    )

    assert response.status == 403
    assert "hub_console" not in response.cookies


async def test_an_action_without_the_csrf_token_is_refused(
    console: TestClient[Any, Any], tenant: Tenant
) -> None:
    created = await console.post(
        "/v2/integrations", json=webhook_integration(), headers=tenant.auth("manage")
    )
    integration_id = (await created.json())["data"]["id"]
    await sign_in(console, tenant.keys["manage"])

    response = await console.post(
        f"/console/integrations/{integration_id}/enabled",
        data={"enabled": "false"},
        allow_redirects=False,
    )

    assert response.status == 403
    assert "security token" in await response.text()
    still = await console.get(f"/v2/integrations/{integration_id}", headers=tenant.auth("view"))
    assert (await still.json())["data"]["enabled"] is True


async def test_pages_say_what_to_do_for_an_empty_store(
    console: TestClient[Any, Any], tenant: Tenant
) -> None:
    await sign_in(console, tenant.keys["view"])

    integrations = await (await console.get("/console/integrations")).text()
    logs = await (await console.get("/console/logs")).text()

    assert "No integrations yet" in integrations
    assert "POST /v2/integrations" in integrations
    assert "No attempts yet" in logs


async def test_a_view_key_sees_no_action_buttons_and_cannot_act(
    console: TestClient[Any, Any], tenant: Tenant
) -> None:
    created = await console.post(
        "/v2/integrations", json=webhook_integration(), headers=tenant.auth("manage")
    )
    integration_id = (await created.json())["data"]["id"]
    await sign_in(console, tenant.keys["view"])

    page = await console.get(f"/console/integrations/{integration_id}")
    text = await page.text()
    assert page.status == 200
    assert "Order hook" in text
    assert 'data-testid="actions"' not in text
    assert "Reveal signing secret" not in text
    assert "very-secret-value" not in text
    token = CSRF.search(text)
    assert token is not None
    for action in ("enabled", "test", "secret", "replay"):
        response = await console.post(
            f"/console/integrations/{integration_id}/{action}",
            data={"csrf": token.group(1), "enabled": "false", "since": "2026-01-01T00:00"},
            allow_redirects=False,
        )
        assert response.status == 403, action
        assert "can look but not act" in await response.text()


async def test_another_stores_integration_is_not_found(
    console: TestClient[Any, Any], tenant: Tenant, other_tenant: Tenant
) -> None:
    created = await console.post(
        "/v2/integrations", json=webhook_integration(), headers=other_tenant.auth("manage")
    )
    integration_id = (await created.json())["data"]["id"]
    await sign_in(console, tenant.keys["manage"])

    page = await console.get(f"/console/integrations/{integration_id}")
    job = await console.get(
        f"/console/integrations/{integration_id}/jobs/00000000-0000-0000-0000-000000000001"
    )
    token = await page_csrf(console, "/console/integrations")
    act = await console.post(
        f"/console/integrations/{integration_id}/enabled",
        data={"csrf": token, "enabled": "false"},
        allow_redirects=False,
    )

    assert page.status == 404
    assert job.status == 404
    assert act.status == 404
    assert "Not found" in await page.text()


async def test_a_manage_key_reveals_the_secret_and_disables_and_enables(
    console: TestClient[Any, Any], tenant: Tenant
) -> None:
    created = await console.post(
        "/v2/integrations", json=webhook_integration(), headers=tenant.auth("manage")
    )
    integration_id = (await created.json())["data"]["id"]
    await sign_in(console, tenant.keys["manage"])
    path = f"/console/integrations/{integration_id}"
    token = await page_csrf(console, path)

    revealed = await console.post(f"{path}/secret", data={"csrf": token})
    disabled = await console.post(f"{path}/enabled", data={"csrf": token, "enabled": "false"})
    disabled_state = await console.get(f"/v2/integrations/{integration_id}", headers=tenant.auth())
    enabled = await console.post(f"{path}/enabled", data={"csrf": token, "enabled": "true"})
    enabled_state = await console.get(f"/v2/integrations/{integration_id}", headers=tenant.auth())

    assert re.search(r'data-testid="secret">whsec_', await revealed.text())
    assert "Disabled: its pending jobs were cancelled" in await disabled.text()
    assert (await disabled_state.json())["data"]["enabled"] is False
    assert "Enabled: new events will be delivered" in await enabled.text()
    assert (await enabled_state.json())["data"]["enabled"] is True


async def test_signing_out_ends_the_session(console: TestClient[Any, Any], tenant: Tenant) -> None:
    await sign_in(console, tenant.keys["view"])
    token = await page_csrf(console, "/console/integrations")

    await console.post("/console/logout", data={"csrf": token})
    after = await console.get("/console/integrations", allow_redirects=False)

    assert after.status == 303


# --- with a worker -------------------------------------------------------------------------------


class FailsFirst:
    """Fails the first delivery of each event whose order id is o-fail, then succeeds."""

    def __init__(self) -> None:
        self.seen: set[Any] = set()

    def __call__(self, delivery: Delivery) -> DeliveryResult:
        if delivery.payload.get("data", {}).get("id") == "o-fail" and (
            delivery.event_id not in self.seen
        ):
            self.seen.add(delivery.event_id)
            return DeliveryResult(
                False, 0.002, status_code=500, body="upstream exploded", error_detail="HTTP 500"
            )
        return DeliveryResult(True, 0.002, status_code=200, body="thanks")


@pytest.fixture
async def stack(fresh_db: str) -> AsyncIterator[Stack]:
    settings = settings_for(fresh_db, retry_schedule=(), worker_grace_seconds=2)
    async with hub_stack(fresh_db, settings, [MemoryDeliverer(script=FailsFirst())]) as stack:
        yield stack


async def _only_job(stack: Stack, integration_id: str, status: str) -> dict[str, Any] | None:
    jobs = await stack.jobs(integration_id)
    return jobs[0] if len(jobs) == 1 and jobs[0]["status"] == status else None


async def test_a_manage_key_test_sends_and_retries_a_failed_job_and_pages_show_attempts(
    stack: Stack,
) -> None:
    client = stack.client
    integration_id = await stack.create_integration(webhook_integration())
    payload = {"data": {"type": "order", "id": "o-fail"}}
    await stack.publish(
        {"data": {"type": "event", "triggered_by": "order.created", "payload": payload}}
    )
    stack.start_worker()
    await eventually(lambda: _found(_only_job(stack, integration_id, "failed")))
    [failed] = await stack.jobs(integration_id)
    await sign_in(client, stack.tenant.keys["manage"])
    base = f"/console/integrations/{integration_id}"

    listing = await (await client.get("/console/integrations")).text()
    job_page = await client.get(f"{base}/jobs/{failed['id']}")
    job_text = await job_page.text()
    token = CSRF.search(job_text)
    assert token is not None
    retried = await client.post(
        f"{base}/jobs/{failed['id']}/retry", data={"csrf": token.group(1)}, allow_redirects=False
    )
    tested = await client.post(f"{base}/test", data={"csrf": token.group(1)}, allow_redirects=False)

    assert "Order hook" in listing
    assert "0.0 %" in listing
    assert job_page.status == 200
    assert "&#34;o-fail&#34;" in job_text or '"o-fail"' in job_text
    assert "HTTP 500" in job_text
    assert "upstream exploded" in job_text
    assert 'data-testid="retry"' in job_text
    assert retried.status == 303
    assert tested.status == 303
    new_job = retried.headers["Location"]
    assert new_job != f"{base}/jobs/{failed['id']}"

    async def delivered() -> bool:
        text = await (await client.get(new_job)).text()
        return "badge-succeeded" in text and "thanks" in text

    await eventually(delivered)
    test_job = await (await client.get(tested.headers["Location"])).text()
    assert "integration.test" in test_job


async def test_the_pages_show_the_last_success_and_filter_the_attempts_by_outcome(
    stack: Stack,
) -> None:
    client = stack.client
    integration_id = await stack.create_integration(webhook_integration())
    for order in ("o-ok", "o-fail"):  # the failure after the success
        payload = {"data": {"type": "order", "id": order}}
        await stack.publish(
            {"data": {"type": "event", "triggered_by": "order.created", "payload": payload}}
        )
        stack.start_worker()
        await eventually(lambda: _found(_settled(stack, integration_id)))
        await stack.stop_workers()
    logs = (await stack.get(f"/v2/integrations/{integration_id}/logs"))["data"]
    [succeeded_at] = [log["meta"]["timestamps"]["created_at"] for log in logs if log["succeeded"]]
    await sign_in(client, stack.tenant.keys["view"])
    base = f"/console/integrations/{integration_id}"

    listing = await (await client.get("/console/integrations")).text()
    page = await (await client.get(base)).text()
    failed = await (await client.get(f"{base}?logs=failed")).text()
    ok = await (await client.get(f"{base}?logs=ok")).text()

    shown = re.compile(r'data-label="Last success"><time datetime="([^"]+)"')
    assert [s[:19] for s in shown.findall(listing)] == [succeeded_at[:19]]
    assert f'<dt>Last success</dt><dd><time datetime="{succeeded_at[:19]}' in page
    assert "HTTP 500" in failed
    assert 'badge-succeeded">ok' not in failed.split("<h2>Attempts", 1)[1]
    assert "HTTP 500" not in ok.split("<h2>Attempts", 1)[1]
    assert 'badge-succeeded">ok' in ok.split("<h2>Attempts", 1)[1]


async def _settled(stack: Stack, integration_id: str) -> list[dict[str, Any]] | None:
    jobs = await stack.jobs(integration_id)
    return jobs if all(j["status"] in ("succeeded", "failed") for j in jobs) else None


async def _found(result: Any) -> bool:
    return (await result) is not None


async def test_a_waiting_job_shows_its_key_and_the_job_it_waits_for(stack: Stack) -> None:
    client = stack.client
    integration_id = await stack.create_integration(webhook_integration(ordering_key="data.id"))
    payload = {"data": {"type": "order", "id": "o-7"}}
    event = {"type": "event", "triggered_by": "order.created", "payload": payload}
    await stack.publish({"data": [event, event]})
    second, first = await stack.jobs(integration_id)  # newest first; no worker runs
    await sign_in(client, stack.tenant.keys["view"])
    base = f"/console/integrations/{integration_id}"

    waiting = await (await client.get(f"{base}/jobs/{second['id']}")).text()
    head = await (await client.get(f"{base}/jobs/{first['id']}")).text()
    listing = await (await client.get(base)).text()

    assert 'data-testid="blocked-by"' in waiting
    assert f'href="{base}/jobs/{first["id"]}"' in waiting
    assert "<code>o-7</code>" in waiting
    assert 'data-testid="blocked-by"' not in head
    assert listing.count('data-testid="waits"') == 1
    assert f'href="{base}/jobs/{first["id"]}" data-testid="waits"' in listing


async def test_the_live_log_streams_a_new_attempt(stack: Stack) -> None:
    client = stack.client
    integration_id = await stack.create_integration(webhook_integration())
    await sign_in(client, stack.tenant.keys["view"])
    page = await (await client.get("/console/logs")).text()
    assert "No attempts yet" in page

    async with client.get("/console/logs/stream") as stream:
        assert stream.status == 200
        assert stream.headers["Content-Type"].startswith("text/event-stream")
        await stack.publish(event_body())
        stack.start_worker()
        data = None
        async with asyncio.timeout(15):
            async for raw in stream.content:
                line = raw.decode().strip()
                if line.startswith("data:"):
                    data = json.loads(line.removeprefix("data:").strip())
                    break

    assert data is not None
    assert data["integration_id"] == integration_id
    assert data["integration_name"] == "Order hook"
    assert data["succeeded"] is True
    assert data["status_code"] == 200


async def test_a_manage_key_replays_the_failed_jobs_since_a_time(stack: Stack) -> None:
    client = stack.client
    integration_id = await stack.create_integration(webhook_integration())
    payload = {"data": {"type": "order", "id": "o-fail"}}
    await stack.publish(
        {"data": {"type": "event", "triggered_by": "order.created", "payload": payload}}
    )
    stack.start_worker()
    await eventually(lambda: _found(_only_job(stack, integration_id, "failed")))
    await sign_in(client, stack.tenant.keys["manage"])
    base = f"/console/integrations/{integration_id}"
    token = await page_csrf(client, base)
    since = (datetime.now(UTC) - timedelta(hours=1)).isoformat()

    replayed = await client.post(f"{base}/replay", data={"csrf": token, "since": since})

    assert "Replay queued: 1 failed job(s)" in await replayed.text()

    async def redelivered() -> bool:
        statuses = sorted(job["status"] for job in await stack.jobs(integration_id))
        return statuses == ["failed", "succeeded"]

    await eventually(redelivered)


async def test_an_unknown_console_page_is_a_page_that_says_where_to_go(
    console: TestClient[Any, Any], tenant: Tenant
) -> None:
    await sign_in(console, tenant.keys["view"])

    response = await console.get("/console/nowhere")

    assert response.status == 404
    assert "Back to the integrations" in await response.text()
