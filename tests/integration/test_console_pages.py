"""The console's paging, event search, bulk retry and charts, through HTTP and the store:
keyset pages that cover a list once and keep the filters, bad page links and bad search input
answered with a message (never a 500), the resource-id search on its index, and the rollup
behind the charts counting every minute and reading percentiles right."""

from __future__ import annotations

import math
import re
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from typing import Any
from uuid import UUID

import pytest
from sqlalchemy import text

from deliverers.memory import MemoryDeliverer
from hub.console import charts
from hub.store import rollup
from hub.store.keyset import Window
from hub.store.models import events
from hub.store.search import EventQuery, find_events, resource_id_of_payload
from tests.conftest import event_body, settings_for, webhook_integration
from tests.integration.test_console import FailsFirst, sign_in
from tests.support.stack import Stack, hub_stack

JOB_LINK = re.compile(r'/console/integrations/[0-9a-f-]+/jobs/([0-9a-f-]{36})">')
OLDER = re.compile(r'href="([^"]+)" rel="next"')
NEWER = re.compile(r'href="([^"]+)" rel="prev"')


@pytest.fixture
async def stack(fresh_db: str) -> AsyncIterator[Stack]:
    settings = settings_for(fresh_db, retry_schedule=(), worker_grace_seconds=2)
    async with hub_stack(fresh_db, settings, [MemoryDeliverer(script=FailsFirst())]) as stack:
        yield stack


def _events(n: int, key: str = "order.created", prefix: str = "o") -> dict[str, Any]:
    return {
        "data": [
            {
                "type": "event",
                "triggered_by": key,
                "payload": {"data": {"type": "order", "id": f"{prefix}-{i}"}},
            }
            for i in range(n)
        ]
    }


async def _page(stack: Stack, path: str, status: int = 200) -> str:
    response = await stack.client.get(path.replace("&amp;", "&"))
    body = await response.text()
    assert response.status == status, body[:2000]
    return body


def _job_ids(body: str) -> list[str]:
    section = body.split('data-testid="jobs"', 1)[1].split("</table>", 1)[0]
    return JOB_LINK.findall(section)


async def test_the_job_list_pages_through_every_job_once_newest_first_keeping_the_filter(
    stack: Stack,
) -> None:
    integration_id = await stack.create_integration(
        webhook_integration(observes=["order.created", "order.paid"])
    )
    for _ in range(2):
        await stack.publish(_events(60))
    await stack.publish(_events(5, key="order.paid"))
    await sign_in(stack.client, stack.tenant.keys["view"])
    async with stack.engine.connect() as conn:
        expected = [
            str(r[0])
            for r in await conn.execute(
                text(
                    "SELECT id FROM integration_jobs WHERE integration_id = :i AND "
                    "triggered_by = 'order.created' ORDER BY created_at DESC, id DESC"
                ),
                {"i": UUID(integration_id)},
            )
        ]

    path = f"/console/integrations/{integration_id}?event=order.created"
    seen: list[str] = []
    pages: list[str] = []
    while True:
        body = await _page(stack, path)
        seen += _job_ids(body)
        pages.append(path)
        older = OLDER.findall(body.split('data-testid="jobs-pager"', 1)[1])
        if not older:
            break
        path = older[0].replace("&amp;", "&")
        assert "event=order.created" in path  # the filter is kept
    assert seen == expected
    assert len(pages) == 3
    assert "(120)" in body

    newer = NEWER.findall(body.split('data-testid="jobs-pager"', 1)[1])
    back = await _page(stack, newer[0])
    assert _job_ids(back) == expected[50:100]


@pytest.mark.parametrize(
    "path",
    [
        "/console/integrations?after=nonsense",
        "/console/integrations?after=2026-13-40T99:00:00Z_0193a4c2-7d1e-7c4e-9a51-3f0c2b1d9e88",
        "/console/integrations?after=2026-12-01T10:00:00Z_not-a-uuid",
        "/console/integrations?before=x_y&after=x_y",
        "/console/logs?before=%ff",  # (a NUL is refused before, as in every filter)
        "/console/events?after=2026-12-01T10:00:00Z",
    ],
)
async def test_a_bad_page_link_is_a_400_page_that_says_so(stack: Stack, path: str) -> None:
    await sign_in(stack.client, stack.tenant.keys["view"])

    body = await _page(stack, path, status=400)

    assert "Bad page link" in body


@pytest.mark.parametrize(
    ("query", "message"),
    [
        ("id=o-1", "Event id must be an event"),
        ("since=yesterday", "From must be a date and time"),
        ("until=2026-02-30T10:00", "To must be a date and time"),
        ("since=2026-12-02T10:00&until=2026-12-01T10:00", "To must not be before From"),
        ("resource=" + "x" * 600, "at most 500 characters"),
    ],
)
async def test_bad_search_input_is_said_above_the_form(
    stack: Stack, query: str, message: str
) -> None:
    await sign_in(stack.client, stack.tenant.keys["view"])

    body = await _page(stack, f"/console/events?{query}", status=400)

    assert message in body
    assert 'data-testid="event-search"' in body


async def test_bad_filters_of_a_job_list_and_a_bulk_retry_are_400_pages(stack: Stack) -> None:
    integration_id = await stack.create_integration(webhook_integration())
    await sign_in(stack.client, stack.tenant.keys["manage"])
    base = f"/console/integrations/{integration_id}"

    assert "must be a date and time" in await _page(stack, f"{base}?since=soon", status=400)
    assert "must be a date and time" in await _page(
        stack, f"{base}/retry-failed?until=later", status=400
    )
    assert "To must be after From" in await _page(
        stack, f"{base}/retry-failed?since=2026-12-02T10:00&until=2026-12-01T10:00", status=400
    )
    assert "Bad page link" in await _page(stack, f"{base}?logs_after=1_2", status=400)


async def test_an_event_is_found_by_its_resource_id_id_key_and_time(stack: Stack) -> None:
    integration_id = await stack.create_integration(webhook_integration())
    published = await stack.publish(
        event_body(payload={"data": {"type": "order", "id": "o-needle"}})
    )
    deleted = await stack.publish(
        event_body("order.deleted", payload={"type": "order", "id": "o-gone"})
    )
    await stack.publish(_events(3))
    await sign_in(stack.client, stack.tenant.keys["view"])

    by_resource = await _page(stack, "/console/events?resource=o-needle")
    assert published["id"] in by_resource
    assert by_resource.count('href="/console/events/') == 2  # its time link and its id link
    assert deleted["id"] in await _page(stack, "/console/events?resource=o-gone")
    assert published["id"] in await _page(stack, f"/console/events?id={published['id']}")
    by_key = await _page(stack, "/console/events?key=order.deleted")
    assert deleted["id"] in by_key
    assert published["id"] not in by_key
    future = await _page(stack, "/console/events?since=2999-01-01T00:00")
    assert "No event matches" in future

    event_page = await _page(stack, f"/console/events/{published['id']}")
    assert integration_id in event_page
    assert "o-needle" in event_page
    assert 'data-testid="event-job"' in event_page


async def test_the_resource_id_search_is_served_by_its_expression_index(stack: Stack) -> None:
    async with stack.engine.connect() as conn:
        await conn.execute(text("SET enable_seqscan = off"))
        store_id = (
            await conn.execute(
                text("SELECT id FROM stores WHERE name = :n"), {"n": stack.tenant.name}
            )
        ).scalar_one()
        statement = (
            events.select()
            .where(events.c.store_id == store_id, resource_id_of_payload == "o-1")
            .order_by(events.c.created_at.desc(), events.c.id.desc())
            .limit(51)
        )
        compiled = statement.compile(compile_kwargs={"literal_binds": True})
        plan = "\n".join(r[0] for r in await conn.execute(text(f"EXPLAIN {compiled}")))
        page = await find_events(
            conn, store_id, EventQuery(resource_id="o-1"), window=Window(), limit=5
        )
    assert "ix_events_store_resource" in plan
    assert page.items == []


# --- the rollup --------------------------------------------------------------------------------

NOW = datetime(2026, 12, 3, 12, 0, 30, tzinfo=UTC)


async def _logs_at(
    stack: Stack, integration_id: str, rows: list[tuple[datetime, bool, float]]
) -> None:
    """Attempts of one job of the integration, at the given times, outcomes and durations."""
    await stack.publish(event_body())
    job_id = (await stack.jobs(integration_id))[0]["id"]
    async with stack.engine.begin() as conn:
        for n, (at, ok, seconds) in enumerate(rows):
            await conn.execute(
                text(
                    "INSERT INTO integration_logs (id, store_id, integration_id, job_id, attempt, "
                    "succeeded, processing_time, created_at) SELECT gen_random_uuid(), store_id, "
                    "integration_id, id, :n, :ok, :s, :at FROM integration_jobs WHERE id = :job"
                ),
                {"n": n + 1, "ok": ok, "s": seconds, "at": at, "job": UUID(job_id)},
            )


async def test_the_rollup_counts_every_minute_and_reads_percentiles_within_a_bucket(
    stack: Stack,
) -> None:
    integration_id = await stack.create_integration(webhook_integration())
    rows = []
    for minute in range(0, 90, 7):  # every seventh minute of the last hour and a half
        at = NOW - timedelta(minutes=minute, seconds=5)
        for k in range(minute % 5 + 1):
            rows.append((at - timedelta(seconds=k), k % 3 != 0, 0.004 * (k + 1) * (minute + 1)))
    await _logs_at(stack, integration_id, rows)
    exact: dict[datetime, list[int]] = {}
    for at, ok, _ in rows:
        counts = exact.setdefault(at.replace(second=0, microsecond=0), [0, 0])
        counts[0 if ok else 1] += 1
    store_id = await _store_id(stack)
    since = rollup.period_of(NOW - timedelta(hours=3))

    async with stack.engine.connect() as conn:
        before = await rollup.periods(conn, store_id, since=since, now=NOW)
    for _ in range(20):  # passes of at most two hours from 25 h back; the last redone
        async with stack.engine.begin() as conn:
            done = await rollup.roll_up(conn, now=NOW)
        if done.end is None:
            break
    async with stack.engine.connect() as conn:
        after = await rollup.periods(conn, store_id, since=since, now=NOW)
        rolled = await conn.execute(text("SELECT count(*) FROM integration_log_rollups"))
        assert rolled.scalar_one() > 0

    for found in (before, after):
        assert rollup.per_minute(found) == {at: (ok, bad) for at, (ok, bad) in exact.items()}
        durations = sorted(s for _, _, s in rows)
        for q in (0.5, 0.95):
            exact_q = durations[max(0, math.ceil(q * len(durations)) - 1)]
            estimate = rollup.percentile(rollup.histogram_of(found), q)
            assert estimate is not None
            assert abs(math.log(estimate / exact_q)) <= math.log(2**0.25) + 1e-9, (
                q,
                estimate,
                exact_q,
            )


async def _store_id(stack: Stack) -> UUID:
    value = await stack.scalar("SELECT id FROM stores WHERE name = :n", n=stack.tenant.name)
    assert isinstance(value, UUID)
    return value


async def test_the_front_page_reads_the_same_from_the_rollups_sums_as_from_the_logs(
    stack: Stack,
) -> None:
    # Two integrations' attempts over the day, the newest in the last minutes: before the
    # rollup everything is read from the logs; after it, PostgreSQL sums the day's rolled-up
    # periods (`rollup.store_summary`) and only the newest hour is read period by period.
    fast = await stack.create_integration(webhook_integration(name="fast"))
    slow = await stack.create_integration(webhook_integration(name="slow"))
    rows: dict[str, list[tuple[datetime, bool, float]]] = {fast: [], slow: []}
    for minute in range(1, 24 * 60, 7):
        at = NOW - timedelta(minutes=minute, seconds=3)
        rows[fast].append((at, minute % 5 != 0, 0.002 * (1 + minute % 9)))
        rows[slow].append((at, minute % 3 != 0, 0.3 + 0.01 * (minute % 7)))
        rows[slow].append((at - timedelta(seconds=1), True, 0.25))
    for integration_id, attempts in rows.items():
        await _logs_at(stack, integration_id, attempts)
    store_id = await _store_id(stack)

    async with stack.engine.connect() as conn:
        from_logs = await charts.store_overview(conn, store_id, now=NOW)
    for _ in range(20):
        async with stack.engine.begin() as conn:
            done = await rollup.roll_up(conn, now=NOW)
        if done.end is None:
            break
    async with stack.engine.connect() as conn:
        assert await stack.scalar("SELECT count(*) FROM integration_log_rollups") > 30
        from_sums = await charts.store_overview(conn, store_id, now=NOW)

    shown = rollup.period_of(NOW) + timedelta(minutes=10) - timedelta(hours=24)
    outcomes = [ok for attempts in rows.values() for at, ok, _ in attempts if at >= shown]
    succeeded, total = sum(outcomes), len(outcomes)
    for overview in (from_logs, from_sums):
        assert (overview.charts.succeeded, overview.charts.failed) == (
            succeeded,
            total - succeeded,
        )
        assert [r.name for r in overview.slowest] == ["slow", "fast"]
    assert from_sums.charts.buckets == from_logs.charts.buckets
    assert (from_sums.charts.p50, from_sums.charts.p95) == (
        from_logs.charts.p50,
        from_logs.charts.p95,
    )
    assert from_sums.slowest == from_logs.slowest
    assert from_sums.failing == from_logs.failing
    assert from_sums.last_hour == from_logs.last_hour
    assert from_sums.last_hour[UUID(slow)][0] > 0

    # The settled sums are kept by the process; a view ten minutes on, with new attempts
    # rolled up meanwhile, reads what a process that kept nothing reads.
    later = NOW + timedelta(minutes=10)
    await _logs_at(stack, fast, [(NOW + timedelta(minutes=m), m != 4, 0.003) for m in (2, 4)])
    async with stack.engine.begin() as conn:
        await rollup.roll_up(conn, now=later)
    async with stack.engine.connect() as conn:
        kept = await charts.store_overview(conn, store_id, now=later)
        rollup._SETTLED.clear()
        fresh = await charts.store_overview(conn, store_id, now=later)
    assert kept == fresh
    assert (kept.charts.succeeded, kept.charts.failed) != (succeeded, total - succeeded)


def test_percentiles_of_a_histogram_interpolate_within_the_bucket() -> None:
    one_bucket = {20: 100}  # [BOUNDS[19], BOUNDS[20])
    low, high = rollup.BOUNDS[19], rollup.BOUNDS[20]
    p50 = rollup.percentile(one_bucket, 0.5)
    assert p50 is not None
    assert low < p50 < high
    assert rollup.percentile({}, 0.5) is None
    assert rollup.percentile({0: 3}, 0.95) == rollup.BOUNDS[0]
    assert rollup.percentile({5: 1, 40: 99}, 0.5) == pytest.approx(
        math.exp((math.log(rollup.BOUNDS[39]) + math.log(rollup.BOUNDS[40])) / 2), rel=0.02
    )


async def test_the_charts_draw_a_bar_for_each_period_with_attempts(stack: Stack) -> None:
    integration_id = await stack.create_integration(webhook_integration())
    rows = [(NOW - timedelta(minutes=m), m not in (2, 26), 0.05) for m in (1, 2, 25, 26, 27, 300)]
    await _logs_at(stack, integration_id, rows)
    store_id = await _store_id(stack)

    async with stack.engine.connect() as conn:
        drawn = await charts.integration_charts(conn, store_id, UUID(integration_id), now=NOW)
        front = await charts.store_overview(conn, store_id, now=NOW)

    with_attempts = [b for b in drawn.buckets if b.succeeded or b.failed]
    assert len(with_attempts) == 3
    assert (drawn.succeeded, drawn.failed) == (4, 2)
    svg = str(drawn.deliveries)
    assert svg.count('class="bar ok"') == 3
    assert svg.count('class="bar failed"') == 2
    assert sum(int(n) for n in re.findall(r'class="bar [a-z]+".*?data-count="(\d+)"', svg)) == 6
    assert str(drawn.durations).count('class="point p95"') == 3
    assert "<script" not in svg
    assert "style=" not in svg
    assert (front.charts.succeeded, front.charts.failed) == (4, 2)
    assert [r.integration_id for r in front.failing] == [UUID(integration_id)]
