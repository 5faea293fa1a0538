"""The console's editor, store switch and live-log filter in Chromium (see
test_console_browser.py for the browser's set-up). Screenshots of the forms at 1280 and 390 px
land in tests/artifacts/ (not committed)."""

from __future__ import annotations

import base64
from typing import Any
from uuid import UUID

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec
from playwright.async_api import Browser, BrowserContext, Page, ViewportSize, expect

from hub.store import integrations, stores
from hub.store.records import IntegrationRecord
from tests.conftest import event_body, make_tenant, webhook_integration
from tests.integration import test_console_browser as base
from tests.integration.test_console_browser import WAIT_MS, _shot, _sign_in, _url
from tests.support.stack import Stack
from tests.support.waiting import eventually

#: The browser, and a hub with a deliverer that fails an o-fail event's first delivery.
chromium_present, browser, stack = base.chromium_present, base.browser, base.stack

WIDE: ViewportSize = {"width": 1280, "height": 800}
PHONE: ViewportSize = {"width": 390, "height": 844}


def _b64url(raw: bytes) -> str:
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def _push_keys() -> tuple[str, str]:
    public = ec.generate_private_key(ec.SECP256R1()).public_key()
    point = public.public_bytes(
        serialization.Encoding.X962, serialization.PublicFormat.UncompressedPoint
    )
    return _b64url(point), _b64url(b"0123456789abcdef")


def _per_type() -> dict[str, dict[str, str]]:
    p256dh, auth = _push_keys()
    return {
        "webhook": {"url": "https://example.com/hooks/orders", "secret_key": "hook-secret"},
        "aws_sqs": {
            "url": "https://sqs.eu-west-1.amazonaws.com/123456789012/orders",
            "region": "eu-west-1",
            "aws_access_key_id": "AKIAEXAMPLE",
            "aws_secret_access_key": "sqs-secret",
            "message_group_key": "data.id",
        },
        "stomp": {
            "addresses": "stomp://127.0.0.1:61613",
            "destination": "/queue/orders",
            "username": "guest",
            "password": "stomp-secret",
        },
        "amqp": {
            "url": "amqp://guest:amqp-secret@127.0.0.1:5672/",
            "exchange": "orders",
            "routing_key": "orders.new",
            "headers": "x-team: ops",
        },
        "web_push": {
            "endpoint": "https://push.example.net/send/abc",
            "keys.p256dh": p256dh,
            "keys.auth": auth,
            "ttl": "600",
        },
    }


async def _context(browser: Browser, viewport: ViewportSize) -> BrowserContext:
    expect.set_options(timeout=WAIT_MS)
    return await browser.new_context(viewport=viewport)


async def _stored(stack: Stack, integration_id: str) -> IntegrationRecord:
    async with stack.engine.connect() as conn:
        store = await stores.get_store_by_name(conn, stack.tenant.name)
        assert store is not None
        record = await integrations.get_integration(conn, store.id, UUID(integration_id))
    assert record is not None
    return record


def _field(page: Page, name: str) -> Any:
    """The `.field` wrapper of the control called `name`: its label, hint and problems."""
    return page.locator(".field", has=page.locator(f'[name="{name}"]'))


async def _fill_new(page: Page, stack: Stack, kind: str, name: str, values: dict[str, str]) -> None:
    await page.goto(_url(stack, "/console/integrations"))
    await page.get_by_test_id("new-integration").click()
    await page.fill("#f-name", name)
    await page.select_option("#f-type", kind)
    for path, value in values.items():
        await page.fill(f'[name="{kind}:{path}"]', value)
    await expect(page.get_by_test_id("observes-catalogue")).to_have_attribute("open", "")
    await page.check('input[name=observes][value="order.created"]')


async def test_an_operator_creates_an_integration_of_each_type(
    stack: Stack, browser: Browser
) -> None:
    context = await _context(browser, WIDE)
    page = await context.new_page()
    await _sign_in(page, stack, stack.tenant.keys["manage"])

    for kind, values in _per_type().items():
        name = f"New {kind}"
        await _fill_new(page, stack, kind, name, values)
        others = page.locator(f"fieldset[data-type-fields]:not([data-type-fields={kind}])")
        for index in range(await others.count()):
            await expect(others.nth(index)).to_be_hidden()
        if kind == "amqp":
            await page.fill("#f-conditions", '{"field": "data.status", "equals": "paid"}')
            await page.fill("#f-rate-limit", "5")
            await page.fill("#f-max-in-flight", "2")
            await page.fill("#f-ordering-key", "data.id")
            await _shot(page, "form-new-amqp-1280")
        await page.get_by_test_id("save").click()
        await expect(page.locator("h1")).to_contain_text(name)
        await expect(page.locator(".flash-ok")).to_contain_text(f"Created {name}")
        integration_id = page.url.rsplit("/", 1)[1]
        record = await _stored(stack, integration_id)
        assert record.integration_type == kind
        assert record.observes == ("order.created",)
        for path, value in values.items():
            head, _, rest = path.partition(".")
            stored = record.configuration[head][rest] if rest else record.configuration[head]
            shown = {"addresses": [value], "headers": {"x-team": "ops"}, "ttl": 600}
            assert stored == shown.get(path, value), (kind, path)
        page_text = await page.content()
        for secret in ("hook-secret", "sqs-secret", "stomp-secret", "amqp-secret"):
            assert secret not in page_text
    amqp = await stack.get("/v2/integrations?filter=eq(integration_type,amqp)")
    [made] = amqp["data"]
    assert made["conditions"] == {"field": "data.status", "equals": "paid"}
    assert (made["rate_limit"], made["max_in_flight"], made["ordering_key"]) == (5, 2, "data.id")

    await page.set_viewport_size(PHONE)
    await _fill_new(page, stack, "web_push", "Phone push", {})
    await _shot(page, "form-new-web_push-390")
    await context.close()


async def test_an_edit_with_the_secret_left_blank_keeps_the_secret(
    stack: Stack, browser: Browser
) -> None:
    integration_id = await stack.create_integration(webhook_integration())
    before = await _stored(stack, integration_id)
    context = await _context(browser, WIDE)
    page = await context.new_page()
    await _sign_in(page, stack, stack.tenant.keys["manage"])
    await page.goto(_url(stack, f"/console/integrations/{integration_id}"))

    await page.get_by_test_id("edit").click()
    secret = page.locator('[name="webhook:secret_key"]')
    await expect(secret).to_have_value("")
    await expect(secret).to_have_attribute("placeholder", "stored — leave blank to keep")
    assert "very-secret-value" not in await page.content()
    await _shot(page, "form-edit-1280")
    await page.set_viewport_size(PHONE)
    await _shot(page, "form-edit-390")
    await page.set_viewport_size(WIDE)
    await page.fill("#f-name", "Order hook v2")
    await page.fill('[name="webhook:url"]', "https://example.com/hooks/v2")
    catalogue = page.get_by_test_id("observes-catalogue")
    await expect(catalogue).not_to_have_attribute("open", "")  # picked already: folded
    await expect(catalogue.locator("summary")).to_contain_text("1 picked")
    await expect(page.locator('input[name=observes][value="order.updated"]')).to_be_hidden()
    await catalogue.locator("summary").click()
    await page.check('input[name=observes][value="order.updated"]')
    await page.get_by_test_id("save").click()

    await expect(page.locator(".flash-ok")).to_contain_text("Saved Order hook v2")
    after = await _stored(stack, integration_id)
    assert after.configuration == {
        "url": "https://example.com/hooks/v2",
        "secret_key": before.configuration["secret_key"],
    }
    assert after.observes == ("order.created", "order.updated")
    api = await stack.integration(integration_id)
    assert api["configuration"]["secret_key"].endswith("alue")  # EP's mask of the same secret
    await context.close()


async def test_an_operator_deletes_an_integration_after_confirming(
    stack: Stack, browser: Browser
) -> None:
    integration_id = await stack.create_integration(webhook_integration(name="Doomed hook"))
    context = await _context(browser, WIDE)
    page = await context.new_page()
    await _sign_in(page, stack, stack.tenant.keys["manage"])
    await page.goto(_url(stack, f"/console/integrations/{integration_id}"))

    await page.get_by_test_id("delete").click()
    await expect(page.get_by_test_id("confirm-delete")).to_contain_text("Delete Doomed hook?")
    await _shot(page, "delete-confirm")
    await page.get_by_test_id("confirm-delete-button").click()

    await expect(page.locator(".flash-ok")).to_contain_text("Deleted Doomed hook")
    await expect(page.get_by_test_id("empty")).to_contain_text("No integrations yet")
    gone = await stack.client.get(
        f"/v2/integrations/{integration_id}", headers=stack.tenant.auth("view")
    )
    assert gone.status == 404
    await context.close()


async def test_problems_show_next_to_their_fields(stack: Stack, browser: Browser) -> None:
    for viewport, label in ((WIDE, "1280"), (PHONE, "390")):
        context = await _context(browser, viewport)
        page = await context.new_page()
        await _sign_in(page, stack, stack.tenant.keys["manage"])
        await _fill_new(page, stack, "webhook", "Broken", {"url": "ftp://example.com/x"})
        await page.fill("#f-conditions", '{"field": "data.total", "between": [1, 2]}')
        await page.fill("#f-max-in-flight", "lots")
        await page.get_by_test_id("save").click()
        await expect(page.get_by_test_id("form-errors")).to_contain_text("Nothing was saved")
        await expect(page.get_by_test_id("form-errors")).to_contain_text("1 problem")
        await expect(_field(page, "max_in_flight").locator(".field-error")).to_contain_text(
            "valid integer"
        )
        await page.fill("#f-max-in-flight", "")
        await page.get_by_test_id("save").click()
        await expect(_field(page, "webhook:url").locator(".field-error")).to_contain_text(
            "must be an absolute http or https URL"
        )
        await expect(_field(page, "conditions").locator(".field-error")).to_contain_text(
            "conditions: "
        )
        await expect(page.locator("#f-name")).to_have_value("Broken")  # what was typed stays
        await expect(page.locator('[name="webhook:url"]')).to_have_value("ftp://example.com/x")
        await _shot(page, f"form-errors-{label}")
        await page.fill("#f-conditions", '{"field": "data.total", "gte": ')
        await page.get_by_test_id("save").click()
        await expect(_field(page, "conditions").locator(".field-error")).to_contain_text(
            "not valid JSON"
        )
        await context.close()
    assert (await stack.get("/v2/integrations"))["data"] == []


async def test_an_admin_switches_store_and_sees_its_integrations(
    stack: Stack, browser: Browser
) -> None:
    other = await make_tenant(stack.engine)
    created = await stack.client.post(
        "/v2/integrations",
        json=webhook_integration(name="Other store hook"),
        headers=other.auth("manage"),
    )
    assert created.status == 201
    context = await _context(browser, WIDE)
    page = await context.new_page()
    await _sign_in(page, stack, stack.tenant.keys["admin"])
    await expect(page.get_by_test_id("store")).to_have_text(stack.tenant.name)

    await page.get_by_test_id("switch-store").click()
    await page.fill("input[name=q]", other.name)
    await page.click("text=Find")
    await _shot(page, "store-switch")
    await page.click(f'button[data-store="{other.name}"]')

    await expect(page.get_by_test_id("store")).to_have_text(other.name)
    await expect(page.get_by_test_id("integrations")).to_contain_text("Other store hook")
    await context.close()


async def test_the_live_log_filters_by_integration_and_outcome_as_it_streams(
    stack: Stack, browser: Browser
) -> None:
    alpha = await stack.create_integration(webhook_integration(name="Alpha hook"))
    beta = await stack.create_integration(webhook_integration(name="Beta hook"))
    stack.start_worker()
    context = await _context(browser, WIDE)
    page = await context.new_page()
    await _sign_in(page, stack, stack.tenant.keys["view"])
    await page.goto(_url(stack, "/console/logs"))
    await page.select_option("select[name=integration]", label="Alpha hook")
    await page.get_by_test_id("log-filter").locator("button").click()
    await expect(page.get_by_test_id("live-state")).to_have_text("live")
    rows = page.locator("#log-rows tr")

    await stack.publish(event_body())

    async def delivered(integration_id: str, count: int) -> bool:
        jobs = await stack.jobs(integration_id)
        return len(jobs) == count and all(j["status"] in ("succeeded", "failed") for j in jobs)

    await eventually(lambda: delivered(beta, 1))
    await stack.publish(event_body())  # its Alpha row comes after Beta's first in the stream
    await expect(rows).to_have_count(2)
    for index in range(2):
        await expect(rows.nth(index)).to_contain_text("Alpha hook")

    await page.select_option("select[name=integration]", "")
    await page.select_option("select[name=outcome]", "failed")
    await page.get_by_test_id("log-filter").locator("button").click()
    await expect(page.get_by_test_id("live-state")).to_have_text("live")
    await expect(rows).to_have_count(0)
    failing = event_body()
    failing["data"]["payload"] = {"data": {"type": "order", "id": "o-fail"}}
    await stack.publish(failing)  # one integration's attempt fails, the other's succeeds
    await eventually(lambda: delivered(alpha, 3))
    await eventually(lambda: delivered(beta, 3))
    await stack.publish(failing)  # a new event: the same again, after those in the stream
    await expect(rows).to_have_count(2)
    for index in range(2):
        await expect(rows.nth(index)).to_contain_text("failed")
    await page.set_viewport_size(PHONE)
    await _shot(page, "live-log-filtered-390")
    await context.close()
