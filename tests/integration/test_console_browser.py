"""The console end to end in Debian's Chromium (driven by Playwright), against an in-process hub.

Playwright's own browser download does not work on these machines: the tests use
/usr/bin/chromium (`apt-get install chromium`; `.ci/run` installs it). Without it they are skipped,
except under CI=true, where a missing browser fails them. Screenshots of the main pages land in
tests/artifacts/ (not committed) for a person to look at.
"""

from __future__ import annotations

import os
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
from playwright.async_api import Browser, Page, async_playwright, expect

from deliverers.memory import MemoryDeliverer
from tests.conftest import event_body, settings_for, webhook_integration
from tests.integration.test_console import FailsFirst
from tests.support.stack import Stack, hub_stack

CHROMIUM = Path("/usr/bin/chromium")
ARTIFACTS = Path(__file__).resolve().parents[1] / "artifacts"
ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
WAIT_MS = 15_000


@pytest.fixture(scope="session")
def chromium_present() -> bool:
    return CHROMIUM.exists()


@pytest.fixture
async def browser(chromium_present: bool) -> AsyncIterator[Browser]:
    if not chromium_present:
        if os.environ.get("CI") == "true":
            pytest.fail(f"{CHROMIUM} is missing; CI installs it with apt-get (see .ci/run)")
        pytest.skip(f"{CHROMIUM} is missing: `apt-get install -y chromium` to run browser tests")
    async with async_playwright() as playwright:
        launched = await playwright.chromium.launch(executable_path=str(CHROMIUM), args=ARGS)
        try:
            yield launched
        finally:
            await launched.close()


@pytest.fixture
async def stack(fresh_db: str) -> AsyncIterator[Stack]:
    settings = settings_for(fresh_db, retry_schedule=(), worker_grace_seconds=2)
    async with hub_stack(fresh_db, settings, [MemoryDeliverer(script=FailsFirst())]) as stack:
        yield stack


def _url(stack: Stack, path: str) -> str:
    return str(stack.client.make_url(path))


async def _shot(page: Page, name: str) -> None:
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    await page.screenshot(path=str(ARTIFACTS / f"console-{name}.png"), full_page=True)


async def _sign_in(page: Page, stack: Stack, key: str) -> None:
    await page.goto(_url(stack, "/console/login"))
    await page.fill("#key", key)
    await page.click("button[type=submit]")


async def test_an_operator_follows_an_event_from_failure_to_successful_retry(
    stack: Stack, browser: Browser
) -> None:
    expect.set_options(timeout=WAIT_MS)
    context = await browser.new_context(
        viewport={"width": 1280, "height": 800}, timezone_id="America/New_York"
    )
    page = await context.new_page()

    await _sign_in(page, stack, stack.tenant.keys["manage"][:-3] + "xyz")
    await expect(page.get_by_test_id("login-error")).to_contain_text("not valid")
    await _shot(page, "login-refused")

    await _sign_in(page, stack, stack.tenant.keys["manage"])
    await expect(page.get_by_test_id("empty")).to_contain_text("No integrations yet")
    await _shot(page, "integrations-empty")

    integration_id = await stack.create_integration(webhook_integration())
    stack.start_worker()
    await page.click("text=Live log")
    await expect(page.get_by_test_id("live-state")).to_have_text("live")
    await stack.publish(event_body())
    failing = event_body()
    failing["data"]["payload"] = {"data": {"type": "order", "id": "o-fail"}}
    await stack.publish(failing)
    rows = page.locator("#log-rows tr")
    await expect(rows).to_have_count(2)
    await expect(page.locator("#log-rows")).to_contain_text("failed")
    await expect(page.locator("#log-rows")).to_contain_text("ok")
    await _shot(page, "live-log")

    await page.click("text=Integrations")
    table = page.get_by_test_id("integrations")
    await expect(table).to_contain_text("Order hook")
    await expect(table).to_contain_text("50.0 %")
    await _shot(page, "integrations")

    await page.click("text=Order hook")
    await expect(page.get_by_test_id("jobs")).to_contain_text("failed")
    await _shot(page, "integration")
    await page.select_option("select[name=status]", "failed")
    await (
        page.locator("form.filters", has=page.locator("select[name=status]"))
        .locator("button")
        .click()
    )
    await expect(page.get_by_test_id("jobs").locator("tbody tr")).to_have_count(1)
    await page.get_by_test_id("jobs").locator("tbody tr a").first.click()

    attempts = page.get_by_test_id("attempts")
    await expect(attempts).to_contain_text("HTTP 500")
    await expect(attempts).to_contain_text("upstream exploded")
    await expect(page.get_by_test_id("payload")).to_contain_text('"o-fail"')
    stamp = attempts.locator("time").first
    utc = await stamp.get_attribute("datetime")
    assert utc is not None
    assert await stamp.get_attribute("title") == f"{utc} (UTC)"
    assert (await stamp.inner_text())[:16] != utc.replace("T", " ")[:16]  # shown in local time
    await _shot(page, "job-failed")
    await page.get_by_test_id("retry").click()
    await expect(page.get_by_test_id("job-status")).to_have_text("succeeded")
    await expect(page.get_by_test_id("attempts")).to_contain_text("HTTP 200")
    await _shot(page, "job-retried")

    await page.set_viewport_size({"width": 390, "height": 844})
    await page.goto(_url(stack, f"/console/integrations/{integration_id}"))
    await expect(page.get_by_test_id("jobs")).to_be_visible()
    await _shot(page, "integration-narrow")
    await context.close()


async def test_a_view_key_sees_no_action_buttons(stack: Stack, browser: Browser) -> None:
    expect.set_options(timeout=WAIT_MS)
    integration_id = await stack.create_integration(webhook_integration())
    context = await browser.new_context(viewport={"width": 1280, "height": 800})
    page = await context.new_page()

    await _sign_in(page, stack, stack.tenant.keys["view"])
    await expect(page.get_by_test_id("role")).to_have_text("view")
    await page.goto(_url(stack, f"/console/integrations/{integration_id}"))

    await expect(page.locator("h1")).to_contain_text("Order hook")
    assert await page.get_by_test_id("actions").count() == 0
    assert await page.get_by_text("Reveal signing secret").count() == 0
    assert await page.get_by_text("Replay failed jobs").count() == 0
    await context.close()


async def test_a_publish_key_is_refused(stack: Stack, browser: Browser) -> None:
    expect.set_options(timeout=WAIT_MS)
    context = await browser.new_context()
    page: Any = await context.new_page()

    await _sign_in(page, stack, stack.tenant.keys["publish"])

    await expect(page.get_by_test_id("login-error")).to_contain_text("cannot read integrations")
    await context.close()
