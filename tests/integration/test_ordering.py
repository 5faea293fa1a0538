"""Ordered delivery (`ordering_key`): the jobs of one key value go one at a time, in publish order,
and other values do not wait; a job that ends failed or cancelled lets the next proceed; waiting
jobs show what they wait for; retries, replays, disabling, the circuit breaker, a worker that
died and publishes racing each other keep the order. The claim never reads a waiting job."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Iterator
from datetime import UTC, datetime, timedelta
from typing import Any
from uuid import UUID

import pytest
from sqlalchemy import text

from hub.events import load_catalogue
from hub.ids import uuid7
from hub.services import events as event_service
from hub.services.inputs import EventIn
from hub.store import claiming, ordered
from hub.store.engine import driver
from tests.conftest import event_body, settings_for, webhook_integration
from tests.support.queue import status_counts
from tests.support.sinks import ScriptedDeliverer
from tests.support.stack import Stack, hub_stack
from tests.support.waiting import eventually


@pytest.fixture
def deliverer() -> ScriptedDeliverer:
    return ScriptedDeliverer()


@pytest.fixture
async def stack(fresh_db: str, deliverer: ScriptedDeliverer) -> AsyncIterator[Stack]:
    settings = settings_for(fresh_db, worker_grace_seconds=1)
    async with hub_stack(fresh_db, settings, [deliverer]) as stack:
        yield stack


def keyed(key: str, n: int, event: str = "order.created") -> dict[str, Any]:
    """An event of resource `key`, the `n`th published for it."""
    data: dict[str, Any] = event_body(event, payload={"data": {"id": key, "n": n}})["data"]
    return data


async def ordered_webhook(stack: Stack, **extra: Any) -> str:
    return await stack.create_integration(webhook_integration(ordering_key="data.id", **extra))


async def publish(stack: Stack, events: list[dict[str, Any]]) -> list[str]:
    """Publish `events` as one batch; the event ids, in order."""
    response = await stack.client.post(
        "/v2/events", json={"data": events}, headers=stack.tenant.auth("publish")
    )
    assert response.status == 202, await response.text()
    return [str(event["id"]) for event in (await response.json())["data"]]


async def jobs_by_event(stack: Stack, integration_id: str) -> dict[str, dict[str, Any]]:
    """The integration's jobs, by event id (the newest job of each event)."""
    jobs = await stack.jobs(integration_id)
    found: dict[str, dict[str, Any]] = {}
    for job in reversed(jobs):  # oldest first: a newer job of an event replaces an older one
        found[job["relationships"]["event"]["data"]["id"]] = job
    return found


def blocked_by(job: dict[str, Any]) -> str | None:
    ref = job["relationships"]["blocked_by"]
    return None if ref is None else str(ref["data"]["id"])


async def settled(stack: Stack, integration_id: str, total: int) -> None:
    async def done() -> bool:
        counts = await status_counts(stack.engine, integration_id)
        return sum(counts[s] for s in ("succeeded", "failed", "cancelled")) == total

    await eventually(done, timeout=30, what=f"{total} jobs finished")


def successes(deliverer: ScriptedDeliverer, value: str) -> list[UUID]:
    """The jobs of key `value` that were delivered, in the order they were."""
    return [c.job_id for c in deliverer.finished if c.ordering_value == value and c.succeeded]


def order_of(jobs: dict[str, dict[str, Any]], events: list[str]) -> list[UUID]:
    return [UUID(jobs[event]["id"]) for event in events]


async def test_one_values_jobs_go_one_at_a_time_in_publish_order_while_other_values_proceed(
    stack: Stack, deliverer: ScriptedDeliverer
) -> None:
    deliverer.delay = 0.02
    integration = await ordered_webhook(stack)
    keys = ("a", "b", "c")
    events = await publish(stack, [keyed(key, n) for n in range(8) for key in keys])
    stack.start_worker()
    await settled(stack, integration, len(events))

    jobs = await jobs_by_event(stack, integration)
    assert {job["status"] for job in jobs.values()} == {"succeeded"}
    for index, key in enumerate(keys):
        in_publish_order = order_of(jobs, events[index :: len(keys)])
        assert successes(deliverer, key) == in_publish_order
        assert in_publish_order == sorted(in_publish_order), "job ids grow along a key"
        assert deliverer.peak_of_value[key] == 1
    assert deliverer.peak[UUID(integration)] > 1, "the values proceeded side by side"
    assert {job["ordering_key_value"] for job in jobs.values()} == set(keys)


async def test_a_waiting_job_is_pending_with_no_next_attempt_and_names_the_job_before_it(
    stack: Stack, deliverer: ScriptedDeliverer
) -> None:
    deliverer.held_values.add("a")
    integration = await ordered_webhook(stack)
    events = await publish(stack, [keyed("a", 1), keyed("a", 2), keyed("b", 1), keyed("a", 3)])
    stack.start_worker()

    async def head_in_flight_and_b_delivered() -> bool:
        counts = await status_counts(stack.engine, integration)
        return counts["delivering"] == 1 and counts["succeeded"] == 1

    await eventually(head_in_flight_and_b_delivered)
    jobs = await jobs_by_event(stack, integration)
    a1, a2, b1, a3 = (jobs[event] for event in events)
    assert (a1["status"], blocked_by(a1)) == ("delivering", None)
    assert (a2["status"], a2["next_attempt_at"], blocked_by(a2)) == ("pending", None, a1["id"])
    assert (a3["status"], a3["next_attempt_at"], blocked_by(a3)) == ("pending", None, a2["id"])
    assert (b1["status"], blocked_by(b1)) == ("succeeded", None)
    one = await stack.get(f"/v2/integrations/{integration}/jobs/{a3['id']}")
    assert one["data"]["relationships"]["blocked_by"]["data"] == {
        "type": "integration-job",
        "id": a2["id"],
    }
    assert one["data"]["ordering_key_value"] == "a"

    deliverer.release.set()
    await settled(stack, integration, 4)
    assert successes(deliverer, "a") == [UUID(j["id"]) for j in (a1, a2, a3)]
    assert all(
        blocked_by(job) is None for job in (await jobs_by_event(stack, integration)).values()
    )


async def test_a_job_that_fails_for_good_lets_the_next_of_its_value_proceed_and_delays_no_other(
    stack: Stack, deliverer: ScriptedDeliverer
) -> None:
    deliverer.status_of_value["a"] = 500
    integration = await ordered_webhook(stack)
    events = await publish(stack, [keyed("a", 1), keyed("a", 2), keyed("b", 1), keyed("b", 2)])
    stack.start_worker()
    await settled(stack, integration, 4)

    jobs = await jobs_by_event(stack, integration)
    a1, a2, b1, b2 = (jobs[event] for event in events)
    assert [a1["status"], a2["status"], b1["status"], b2["status"]] == [
        "failed",
        "failed",
        "succeeded",
        "succeeded",
    ]
    calls = deliverer.finished
    a1_calls = [c for c in calls if c.job_id == UUID(a1["id"])]
    a2_calls = [c for c in calls if c.job_id == UUID(a2["id"])]
    assert len(a1_calls) == len(a2_calls) == 3  # every attempt of the schedule
    # the next one waited for the last retry of the one before it, and only it waited
    assert a2_calls[0].at >= a1_calls[-1].at
    b2_done = next(c for c in calls if c.job_id == UUID(b2["id"]))
    assert b2_done.at < a1_calls[-1].at


async def test_an_event_whose_payload_lacks_the_path_is_delivered_unordered(
    stack: Stack, deliverer: ScriptedDeliverer
) -> None:
    deliverer.held_values.add("a")
    integration = await ordered_webhook(stack)
    plain = event_body(payload={"data": {"type": "order"}})["data"]
    nulled = event_body(payload={"data": {"id": None}})["data"]
    events = await publish(stack, [keyed("a", 1), keyed("a", 2), plain, nulled])
    stack.start_worker()

    async def unkeyed_delivered() -> bool:
        jobs = await jobs_by_event(stack, integration)
        return all(jobs[event]["status"] == "succeeded" for event in events[2:])

    await eventually(unkeyed_delivered)
    jobs = await jobs_by_event(stack, integration)
    assert [jobs[e]["ordering_key_value"] for e in events] == ["a", "a", None, None]
    assert jobs[events[1]]["status"] == "pending"
    deliverer.release.set()
    await settled(stack, integration, 4)


async def test_a_retried_job_goes_to_the_end_of_its_values_queue(
    stack: Stack, deliverer: ScriptedDeliverer
) -> None:
    deliverer.status_of_value["a"] = 500
    integration = await ordered_webhook(stack)
    [first] = await publish(stack, [keyed("a", 1)])
    stack.start_worker()
    await settled(stack, integration, 1)
    failed = (await jobs_by_event(stack, integration))[first]
    assert failed["status"] == "failed"

    del deliverer.status_of_value["a"]
    deliverer.held_values.add("a")
    [second] = await publish(stack, [keyed("a", 2)])
    await eventually(lambda: deliverer.open_values["a"] == 1)
    response = await stack.client.post(
        f"/v2/integrations/{integration}/jobs/{failed['id']}/retry",
        headers=stack.tenant.auth("manage"),
    )
    assert response.status == 202, await response.text()
    retried = (await response.json())["data"]
    head = (await jobs_by_event(stack, integration))[second]
    assert retried["status"] == "pending"
    assert blocked_by(retried) == head["id"], "behind the job published after the failed one"
    assert retried["ordering_key_value"] == "a"
    assert retried["relationships"]["retry_of"]["data"]["id"] == failed["id"]

    deliverer.release.set()
    await settled(stack, integration, 3)
    assert successes(deliverer, "a") == [UUID(head["id"]), UUID(retried["id"])]


async def test_a_replay_queues_its_jobs_at_the_end_of_their_values_in_their_original_order(
    stack: Stack, deliverer: ScriptedDeliverer
) -> None:
    deliverer.status_of_value["a"] = 500
    integration = await ordered_webhook(stack)
    since = datetime.now(UTC) - timedelta(seconds=1)
    failing = await publish(stack, [keyed("a", 1), keyed("a", 2)])
    stack.start_worker()
    await settled(stack, integration, 2)

    del deliverer.status_of_value["a"]
    deliverer.held_values.add("a")
    [later] = await publish(stack, [keyed("a", 3)])
    await eventually(lambda: deliverer.open_values["a"] == 1)
    response = await stack.client.post(
        f"/v2/integrations/{integration}/replay",
        json={"data": {"type": "integration-replay", "since": since.isoformat()}},
        headers=stack.tenant.auth("manage"),
    )
    assert response.status == 202, await response.text()
    assert (await response.json())["data"]["jobs"]["total"] == 2
    jobs = await jobs_by_event(stack, integration)
    head, r1, r2 = jobs[later], jobs[failing[0]], jobs[failing[1]]
    assert (blocked_by(r1), blocked_by(r2)) == (head["id"], r1["id"])

    deliverer.release.set()
    await settled(stack, integration, 5)
    assert successes(deliverer, "a") == [UUID(j["id"]) for j in (head, r1, r2)]


async def test_disabling_cancels_the_waiting_jobs_and_a_job_published_after_re_enabling_waits_for_the_one_in_flight(  # noqa: E501
    stack: Stack, deliverer: ScriptedDeliverer
) -> None:
    deliverer.held_values.add("a")
    integration = await ordered_webhook(stack)
    events = await publish(stack, [keyed("a", 1), keyed("a", 2), keyed("a", 3)])
    stack.start_worker()
    await eventually(lambda: deliverer.open_values["a"] == 1)
    for enabled in (False, True):
        response = await stack.client.put(
            f"/v2/integrations/{integration}",
            json={"data": {"type": "integration", "enabled": enabled}},
            headers=stack.tenant.auth("manage"),
        )
        assert response.status == 200, await response.text()
    [later] = await publish(stack, [keyed("a", 4)])
    jobs = await jobs_by_event(stack, integration)
    head = jobs[events[0]]
    assert [jobs[e]["status"] for e in events[1:]] == ["cancelled", "cancelled"]
    assert [blocked_by(jobs[e]) for e in events[1:]] == [None, None]
    assert (jobs[later]["status"], blocked_by(jobs[later])) == ("pending", head["id"])

    deliverer.release.set()
    await settled(stack, integration, 4)
    assert successes(deliverer, "a") == [UUID(head["id"]), UUID(jobs[later]["id"])]


async def test_a_job_whose_worker_died_comes_back_after_its_lease_and_the_next_still_waits(
    stack: Stack, deliverer: ScriptedDeliverer
) -> None:
    integration = await ordered_webhook(stack)
    events = await publish(stack, [keyed("a", 1), keyed("a", 2)])
    claimed_at = time.monotonic()
    async with driver(stack.engine) as db:  # a worker that claims the head, then dies
        [claimed] = await claiming.claim(db, owner="dead:1:x", limit=10, lease=timedelta(seconds=1))
    jobs = await jobs_by_event(stack, integration)
    assert str(claimed.id) == jobs[events[0]]["id"]
    assert claimed.ordering_value == "a"

    stack.start_worker()
    await settled(stack, integration, 2)
    first, second = (c for c in deliverer.finished if c.ordering_value == "a")
    assert [first.job_id, second.job_id] == order_of(jobs, events)
    assert first.at - claimed_at >= 0.9, "the head came back once its lease expired"
    assert second.at >= first.at


async def test_publishes_racing_for_one_value_form_one_queue_delivered_in_id_order(
    stack: Stack, deliverer: ScriptedDeliverer
) -> None:
    deliverer.delay = 0.005
    integration = await ordered_webhook(stack)

    async def publisher(n: int) -> None:
        for i in range(15):
            await stack.publish({"data": [keyed("a", n * 100 + i), keyed("a", n * 100 + i)]})

    await asyncio.gather(*(publisher(n) for n in range(4)))
    rows = await chain(stack, integration)
    assert len(rows) == 120
    heads = [row for row in rows if row[1] is None]
    assert len(heads) == 1, "one job of the value proceeds; every other one waits"
    assert [row[1] for row in rows[1:]] == [row[0] for row in rows[:-1]], "one chain, in id order"

    stack.start_worker()
    await settled(stack, integration, 120)
    assert successes(deliverer, "a") == [row[0] for row in rows]
    assert deliverer.peak_of_value["a"] == 1


async def chain(stack: Stack, integration_id: str) -> list[tuple[UUID, UUID | None]]:
    """The integration's jobs as (id, blocked_by), in id order."""
    async with stack.engine.connect() as conn:
        result = await conn.execute(
            text(
                "SELECT id, blocked_by FROM integration_jobs WHERE integration_id = :i ORDER BY id"
            ),
            {"i": integration_id},
        )
        return [(row[0], row[1]) for row in result]


async def test_a_job_appended_behind_a_tail_with_a_greater_id_gets_an_id_after_it(
    stack: Stack,
) -> None:
    integration = UUID(await ordered_webhook(stack))
    event_id = UUID((await stack.publish(event_body(key="order.paid")))["id"])
    store_id = await stack.scalar("SELECT store_id FROM integrations WHERE id = :i", i=integration)
    tail = UUID("0fffffff-ffff-7fff-bfff-fffffffffff0")  # made "later" than anything now
    now = datetime.now(UTC)
    async with driver(stack.engine, transaction=True) as db:
        await ordered.lock_queues(db, [integration])
        await ordered.append_jobs(
            db, store_id, [ordered.QueuedJob(tail, event_id, integration, "order.paid", "k")], now
        )
        given = [ordered.QueuedJob(uuid7(), event_id, integration, "order.paid", "k") for _ in "xy"]
        placed = await ordered.append_jobs(db, store_id, given, now)
    assert placed == [
        UUID("0fffffff-ffff-7fff-bfff-fffffffffff1"),
        UUID("0fffffff-ffff-7fff-bfff-fffffffffff2"),
    ]
    assert await chain(stack, str(integration)) == [
        (tail, None),
        (placed[0], tail),
        (placed[1], placed[0]),
    ]


async def test_the_claim_reads_no_waiting_job_however_many_wait(stack: Stack) -> None:
    integration = await ordered_webhook(stack)
    await publish(stack, [keyed(f"k{k}", 0) for k in range(20)])
    async with stack.engine.begin() as conn:
        # 20,000 jobs waiting behind those 20 heads, as publishing would queue them
        await conn.execute(
            text(
                "INSERT INTO integration_jobs (id, store_id, event_id, integration_id, "
                "triggered_by, status, attempts, next_attempt_at, ordering_value, blocked_by) "
                "SELECT gen_random_uuid(), store_id, event_id, integration_id, triggered_by, "
                "'pending', 0, NULL, ordering_value, id "
                "FROM integration_jobs, generate_series(1, 1000) "
                "WHERE integration_id = :i"
            ),
            {"i": integration},
        )
        await conn.execute(text("ANALYZE integration_jobs"))
        statement = claiming.claim_statement(owner="w", limit=100, lease=timedelta(seconds=60))
        compiled = statement.compile(dialect=conn.dialect)
        values = compiled.construct_params({})
        positional = tuple(values[name] for name in compiled.positiontup or ())
        result = await conn.exec_driver_sql(
            f"EXPLAIN (ANALYZE, BUFFERS, FORMAT JSON) {compiled}", positional
        )
        plan = result.scalar_one()[0]["Plan"]
    scans = list(index_scans(plan))
    lanes = {scan["Index Name"]: scan for scan in scans if "due" in scan.get("Index Name", "")}
    assert set(lanes) == {"ix_integration_jobs_due_first", "ix_integration_jobs_due_retry"}
    first = lanes["ix_integration_jobs_due_first"]
    assert first["Actual Rows"] == 20, "the 20 heads, none of the 20,000 behind them"
    assert first["Shared Hit Blocks"] + first.get("Shared Read Blocks", 0) < 20
    assert not [
        s
        for s in scans
        if s["Node Type"] == "Seq Scan" and s.get("Relation Name") == "integration_jobs"
    ]


def index_scans(node: dict[str, Any]) -> Iterator[dict[str, Any]]:
    if "Index Name" in node or node.get("Node Type") == "Seq Scan":
        yield node
    for child in node.get("Plans", []):
        yield from index_scans(child)


async def test_the_breaker_holds_waiting_jobs_as_waiting_and_enabling_resumes_the_head_only(
    fresh_db: str, deliverer: ScriptedDeliverer
) -> None:
    schedule = ",".join(["0.1s"] * 30)
    settings = settings_for(fresh_db, retry_schedule=schedule, breaker_after="1s")
    async with hub_stack(fresh_db, settings, [deliverer]) as stack:
        deliverer.status_of_value["a"] = 500
        integration = await ordered_webhook(stack)
        events = await publish(stack, [keyed("a", 1), keyed("a", 2), keyed("a", 3)])
        stack.start_worker()

        async def held() -> bool:
            return (await status_counts(stack.engine, integration)) == {"held": 3}

        await eventually(held)
        jobs = await jobs_by_event(stack, integration)
        a1, a2, a3 = (jobs[e] for e in events)
        assert [blocked_by(a1), blocked_by(a2), blocked_by(a3)] == [None, a1["id"], a2["id"]]

        del deliverer.status_of_value["a"]
        response = await stack.client.put(
            f"/v2/integrations/{integration}",
            json={"data": {"type": "integration", "enabled": True}},
            headers=stack.tenant.auth("manage"),
        )
        assert response.status == 200, await response.text()
        await settled(stack, integration, 3)
        assert successes(deliverer, "a") == order_of(jobs, events)
        assert deliverer.peak_of_value["a"] == 1


@pytest.mark.parametrize(
    ("value", "problem"),
    [
        ("", "must be a dotted path of non-empty names"),
        ("data..id", "must be a dotted path of non-empty names"),
        (".id", "must be a dotted path of non-empty names"),
        ("x" * 256, "at most 255 characters"),
        (".".join("x" * 17), "has 17 segments; at most 16"),
    ],
)
async def test_an_ordering_key_that_is_not_a_dotted_path_is_a_422_naming_it(
    stack: Stack, value: str, problem: str
) -> None:
    existing = await stack.create_integration(webhook_integration())
    for method, path, body in (
        ("post", "/v2/integrations", webhook_integration(ordering_key=value)),
        (
            "put",
            f"/v2/integrations/{existing}",
            {"data": {"type": "integration", "ordering_key": value}},
        ),
    ):
        response = await getattr(stack.client, method)(
            path, json=body, headers=stack.tenant.auth("manage")
        )
        assert response.status == 422, await response.text()
        [error] = (await response.json())["errors"]
        assert error["source"] == "data.ordering_key"
        assert problem in error["detail"]


async def test_an_ordering_key_is_shown_changed_and_removed(stack: Stack) -> None:
    integration = await ordered_webhook(stack)
    assert (await stack.integration(integration))["ordering_key"] == "data.id"
    for value in ("data.customer.id", None):
        response = await stack.client.put(
            f"/v2/integrations/{integration}",
            json={"data": {"type": "integration", "ordering_key": value}},
            headers=stack.tenant.auth("manage"),
        )
        assert response.status == 200, await response.text()
        assert (await response.json())["data"]["ordering_key"] == value
    [event] = await publish(stack, [keyed("a", 1)])
    assert (await jobs_by_event(stack, integration))[event]["ordering_key_value"] is None


async def test_ordered_jobs_published_inside_a_callers_transaction_join_it(stack: Stack) -> None:
    """As the AMQP consumer publishes: several publishes in one transaction, committed together."""
    integration = await ordered_webhook(stack)
    store_id = await stack.scalar("SELECT store_id FROM integrations WHERE id = :i", i=integration)
    items = [EventIn.model_validate(keyed("a", n)) for n in range(3)]
    async with stack.engine.begin() as conn:
        for item in items:
            await event_service.publish(
                conn,
                load_catalogue(),
                store_id,
                [item],
                batch=False,
                idempotency_key=None,
                max_event_bytes=2**20,
            )
        assert await chain(stack, integration) == [], "nothing visible before the commit"
    rows = await chain(stack, integration)
    assert [waits for _, waits in rows] == [None, rows[0][0], rows[1][0]]
