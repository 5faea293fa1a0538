"""The console's paging, event search, bulk retry and charts in Debian's Chromium (Playwright),
against an in-process hub; screenshots of the front page, an integration page, the event search,
an event and the bulk retry at 1280 and 390 px land in tests/artifacts/ (not committed) for a
person to look at; at 390 px none of them is wider than the screen."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import pytest
from playwright.async_api import Browser, Page, expect

from deliverers.memory import MemoryDeliverer
from tests.conftest import settings_for, webhook_integration
from tests.integration.test_console import FailsFirst
from tests.integration.test_console_browser import (
    ARTIFACTS,
    WAIT_MS,
    _shot,
    _sign_in,
    _url,
    browser,
    chromium_present,
)
from tests.support.stack import Stack, hub_stack
from tests.support.waiting import eventually

__all__ = ["browser", "chromium_present"]  # the fixtures, shared with the console's other tests


@pytest.fixture
async def stack(fresh_db: str) -> AsyncIterator[Stack]:
    settings = settings_for(fresh_db, retry_schedule=(), worker_grace_seconds=2)
    async with hub_stack(fresh_db, settings, [MemoryDeliverer(script=FailsFirst())]) as stack:
        yield stack


def _events(ids: list[str], key: str = "order.created") -> dict[str, Any]:
    return {
        "data": [
            {
                "type": "event",
                "triggered_by": key,
                "payload": {"data": {"type": "order", "id": order_id}},
            }
            for order_id in ids
        ]
    }


async def _page(browser: Browser, stack: Stack, role: str, width: int = 1280) -> Page:
    context = await browser.new_context(viewport={"width": width, "height": 900})
    page = await context.new_page()
    await _sign_in(page, stack, stack.tenant.keys[role])
    await expect(page.get_by_test_id("role")).to_have_text(role)
    return page


async def _shots(page: Page, name: str) -> None:
    """The page as it is, at 1280 px and then at 390 px (left at 1280 px)."""
    for width in (1280, 390):
        await page.set_viewport_size({"width": width, "height": 900})
        await _shot(page, f"{name}-{width}")
        assert await page.evaluate("document.documentElement.scrollWidth") <= width
    await page.set_viewport_size({"width": 1280, "height": 900})


async def test_an_operator_pages_through_jobs_and_back(stack: Stack, browser: Browser) -> None:
    expect.set_options(timeout=WAIT_MS)
    integration_id = await stack.create_integration(webhook_integration())
    await stack.publish(_events([f"o-{n}" for n in range(70)]))
    page = await _page(browser, stack, "view")

    await page.goto(_url(stack, f"/console/integrations/{integration_id}"))
    rows = page.get_by_test_id("jobs").locator("tbody tr")
    await expect(rows).to_have_count(50)
    # The row's job link: its text is not stable (console.js turns UTC times into local ones
    # once it runs, which may be before or after this read).
    first = await rows.first.locator("a").first.get_attribute("href")
    await page.get_by_test_id("jobs-older").click()
    await expect(rows).to_have_count(20)
    assert "jobs_after=" in page.url
    await expect(page.get_by_test_id("jobs-older")).to_have_count(0)
    await page.get_by_test_id("jobs-newer").click()
    await expect(rows).to_have_count(50)
    assert await rows.first.locator("a").first.get_attribute("href") == first
    await page.context.close()


async def test_an_operator_finds_an_event_by_its_resource_id_and_sees_its_jobs(
    stack: Stack, browser: Browser
) -> None:
    expect.set_options(timeout=WAIT_MS)
    await stack.create_integration(webhook_integration())
    stack.start_worker()
    await stack.publish(_events(["o-1", "o-2", "o-fail", "o-3"]))
    page = await _page(browser, stack, "view")

    await page.click("text=Events")
    await page.fill("input[name=resource]", "o-fail")
    await page.get_by_test_id("event-search").locator("button").click()
    found = page.get_by_test_id("events").locator("tbody tr")
    await expect(found).to_have_count(1)
    await expect(found).to_contain_text("o-fail")
    await _shots(page, "search")
    await found.locator("a").first.click()

    await expect(page.get_by_test_id("resource-id")).to_have_text("o-fail")
    job = page.get_by_test_id("event-job")
    await expect(job).to_have_count(1)
    await expect(job).to_contain_text("Order hook")
    await expect(job).to_contain_text("HTTP 500")
    await _shots(page, "event")
    await page.context.close()


async def test_an_operator_retries_all_failed_jobs_after_confirming_how_many(
    stack: Stack, browser: Browser
) -> None:
    expect.set_options(timeout=WAIT_MS)
    integration_id = await stack.create_integration(webhook_integration())
    stack.start_worker()
    await stack.publish(_events(["o-fail", "o-fail", "o-ok", "o-fail"]))

    async def settled() -> bool:
        jobs = await stack.jobs(integration_id)
        return sorted(j["status"] for j in jobs) == ["failed"] * 3 + ["succeeded"]

    await eventually(settled)
    page = await _page(browser, stack, "manage")
    await page.goto(_url(stack, f"/console/integrations/{integration_id}?status=failed"))
    await page.get_by_test_id("bulk-retry").click()

    await expect(page.get_by_test_id("bulk-count")).to_contain_text("3 failed job(s)")
    assert len(await stack.jobs(integration_id)) == 4  # nothing happened yet
    await _shots(page, "bulk-retry")
    await page.get_by_test_id("bulk-submit").click()

    await expect(page.locator(".flash-ok")).to_contain_text("Retry queued: 3 failed job(s)")
    await _shots(page, "bulk-retry-queued")

    async def delivered() -> bool:
        jobs = await stack.jobs(integration_id)
        return sorted(j["status"] for j in jobs) == ["failed"] * 3 + ["succeeded"] * 4

    await eventually(delivered)
    await page.goto(_url(stack, f"/console/integrations/{integration_id}/retry-failed"))
    await expect(page.get_by_test_id("bulk-count")).to_contain_text("nothing to retry")
    await page.context.close()


async def test_the_charts_render_with_data_at_1280_and_390_px(
    stack: Stack, browser: Browser
) -> None:
    expect.set_options(timeout=WAIT_MS)
    integration_id = await stack.create_integration(webhook_integration())
    other = webhook_integration()
    other["data"]["name"] = "Slow customers"
    await stack.create_integration(other)
    stack.start_worker()
    await stack.publish(_events([f"o-{n}" for n in range(12)] + ["o-fail", "o-fail"]))

    async def delivered() -> bool:
        jobs = await stack.jobs(integration_id)
        return len(jobs) == 14 and all(j["status"] in ("succeeded", "failed") for j in jobs)

    await eventually(delivered)
    for width in (1280, 390):
        page = await _page(browser, stack, "view", width)
        await page.goto(_url(stack, "/console/integrations"))
        store = page.get_by_test_id("store-deliveries")
        await expect(store).to_be_visible()
        assert await store.locator("rect.bar.ok").count() >= 1
        assert await store.locator("rect.bar.failed").count() >= 1
        await expect(page.get_by_test_id("store-succeeded")).to_have_text("26")
        await expect(page.get_by_test_id("store-failed")).to_have_text("2")  # o-fail, once each
        assert await page.get_by_test_id("store-durations").locator("circle.p95").count() >= 1
        await expect(page.get_by_test_id("failing").locator("tbody tr")).not_to_have_count(0)
        box = await store.bounding_box()
        assert box is not None
        assert box["width"] <= width
        await _shot(page, f"front-{width}")
        await page.get_by_test_id("store-charts").screenshot(
            path=str(ARTIFACTS / f"console-front-charts-only-{width}.png")
        )

        await page.goto(_url(stack, f"/console/integrations/{integration_id}"))
        chart = page.get_by_test_id("integration-deliveries")
        await expect(chart).to_be_visible()
        counted = await chart.locator("rect.bar").evaluate_all(
            "bars => bars.reduce((n, b) => n + Number(b.dataset.count), 0)"
        )
        assert counted == 14
        failed = int(await page.get_by_test_id("integration-failed").inner_text())
        assert failed == await chart.locator("rect.bar.failed").evaluate_all(
            "bars => bars.reduce((n, b) => n + Number(b.dataset.count), 0)"
        )
        assert await page.get_by_test_id("integration-durations").locator("path.p50").count() == 1
        await _shot(page, f"integration-charts-{width}")
        await page.get_by_test_id("integration-charts").screenshot(
            path=str(ARTIFACTS / f"console-integration-charts-only-{width}.png")
        )
        await page.context.close()
