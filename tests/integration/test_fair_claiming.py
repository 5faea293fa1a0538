"""Fair claiming: a failing endpoint's retries never starve the first attempts of healthy
integrations, and an integration at its limits blocks no one queued behind it.

The claim statement is exercised directly on a real queue, then the worker end to end with a
deliverer that holds a failing endpoint's retries open until the test lets them go.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import timedelta
from typing import Any
from uuid import UUID

import pytest
from sqlalchemy import text

from hub.dispatch.limits import retry_slots
from hub.store import attempts, claiming
from hub.store.engine import driver
from tests.conftest import event_body, settings_for, webhook_integration
from tests.support.queue import status_counts
from tests.support.sinks import ScriptedDeliverer
from tests.support.stack import Stack, hub_stack
from tests.support.waiting import eventually

LEASE = timedelta(seconds=30)


@pytest.fixture
def deliverer() -> ScriptedDeliverer:
    return ScriptedDeliverer()


@pytest.fixture
async def stack(fresh_db: str, deliverer: ScriptedDeliverer) -> AsyncIterator[Stack]:
    settings = settings_for(
        fresh_db, retry_schedule="0.05s,0.05s,0.05s,0.05s,0.05s,0.05s", worker_grace_seconds=1
    )
    async with hub_stack(fresh_db, settings, [deliverer]) as stack:
        yield stack


async def publish(stack: Stack, key: str, count: int) -> None:
    while count > 0:
        size = min(count, 100)
        await stack.publish({"data": [event_body(key)["data"] for _ in range(size)]})
        count -= size


async def make_retries(stack: Stack, integration_id: str) -> None:
    """Turn the integration's pending jobs into retries that have been due for an hour."""
    async with stack.engine.begin() as conn:
        await conn.execute(
            text(
                "UPDATE integration_jobs SET attempts = 3, "
                "next_attempt_at = now() - interval '1 hour' WHERE integration_id = :id"
            ),
            {"id": integration_id},
        )


async def claim(stack: Stack, limit: int, **options: Any) -> list[claiming.ClaimedJob]:
    async with driver(stack.engine, transaction=True) as db:
        return await claiming.claim(db, owner="test:1:claims", limit=limit, lease=LEASE, **options)


def of(jobs: list[claiming.ClaimedJob], integration_id: str) -> list[claiming.ClaimedJob]:
    return [job for job in jobs if job.integration_id == UUID(integration_id)]


# --- the claim statement ---------------------------------------------------------------------


async def test_first_attempts_are_claimed_alongside_an_older_backlog_of_retries(
    stack: Stack,
) -> None:
    failing = await stack.create_integration(webhook_integration(observes=["order.created"]))
    healthy = await stack.create_integration(webhook_integration(observes=["order.paid"]))
    await publish(stack, "order.created", 150)
    await make_retries(stack, failing)
    await publish(stack, "order.paid", 5)

    first = await claim(stack, 20)

    assert len(of(first, healthy)) == 5, "every first attempt made it into the batch"
    assert len(of(first, failing)) == 15
    assert {job.attempt for job in of(first, failing)} == {4}

    capped = await claim(stack, 20, retry_limit=4)

    assert len(capped) == 4, "no first attempt is left; retries get no more than their share"
    assert {job.attempt for job in capped} == {4}


async def test_first_attempts_and_retries_take_turns_when_both_lanes_are_full(
    stack: Stack,
) -> None:
    failing = await stack.create_integration(webhook_integration(observes=["order.created"]))
    healthy = await stack.create_integration(webhook_integration(observes=["order.paid"]))
    await publish(stack, "order.created", 50)
    await make_retries(stack, failing)
    await publish(stack, "order.paid", 50)

    jobs = await claim(stack, 10)

    assert len(of(jobs, healthy)) == 5
    assert len(of(jobs, failing)) == 5


async def test_an_integration_at_its_max_in_flight_is_skipped_and_blocks_no_one_behind_it(
    stack: Stack,
) -> None:
    limited = await stack.create_integration(
        webhook_integration(observes=["order.created"], max_in_flight=2)
    )
    other = await stack.create_integration(webhook_integration(observes=["order.paid"]))
    await publish(stack, "order.created", 60)  # queued first: the head of the line
    await publish(stack, "order.paid", 5)

    first = await claim(stack, 10)
    second = await claim(stack, 10)
    third = await claim(stack, 10)

    assert len(of(first, limited)) == 2
    assert len(of(second, limited)) == 0, "two in flight: the limit is reached"
    assert len(of(first, other)) + len(of(second, other)) == 5, "the backlog blocked no one"
    assert third == []

    # One attempt finishes: one more may go.
    done = of(first, limited)[0]
    async with driver(stack.engine, transaction=True) as db:
        await attempts.record_attempts(
            db,
            "test:1:claims",
            [
                attempts.AttemptRecord(
                    job_id=done.id,
                    store_id=done.store_id,
                    integration_id=done.integration_id,
                    attempt=1,
                    succeeded=True,
                    processing_time=0.01,
                    status_code=200,
                    body="ok",
                    error_detail=None,
                    status="succeeded",
                    next_attempt_at=None,
                )
            ],
        )
    assert len(of(await claim(stack, 10), limited)) == 1


async def test_a_rate_limited_integration_gets_one_seconds_worth_per_claim_unless_excluded(
    stack: Stack,
) -> None:
    limited = await stack.create_integration(
        webhook_integration(observes=["order.created"], rate_limit=2.5)
    )
    await publish(stack, "order.created", 20)

    assert await claim(stack, 10, excluded=[UUID(limited)]) == []
    jobs = await claim(stack, 10)
    assert len(jobs) == 3
    assert {job.rate_limit for job in jobs} == {2.5}


# --- the worker ------------------------------------------------------------------------------


def test_retries_may_hold_three_quarters_of_the_slots() -> None:
    assert [retry_slots(n) for n in (1, 2, 3, 4, 8, 64)] == [1, 2, 3, 3, 6, 48]


async def test_a_failing_endpoints_retries_cannot_take_the_slots_kept_for_first_attempts(
    stack: Stack, deliverer: ScriptedDeliverer
) -> None:
    failing = await stack.create_integration(webhook_integration(observes=["order.created"]))
    healthy = await stack.create_integration(webhook_integration(observes=["order.paid"]))
    # The failing endpoint answers 500 at once to first attempts and hangs on every retry.
    deliverer.status[UUID(failing)] = 500
    deliverer.held_open.add(UUID(failing))
    await publish(stack, "order.created", 20)
    stack.start_worker(worker_concurrency=4)
    slots = retry_slots(4)

    async def retries_hang_and_more_are_due() -> bool:
        counts = await status_counts(stack.engine, failing)
        return deliverer.open_now[UUID(failing)] == slots and counts.get("pending", 0) > 0

    await eventually(retries_hang_and_more_are_due)
    await publish(stack, "order.paid", 3)

    async def healthy_delivered() -> bool:
        return (await status_counts(stack.engine, healthy)) == {"succeeded": 3}

    await eventually(healthy_delivered)
    assert deliverer.open_now[UUID(failing)] == slots, "the retries are still hanging"
    assert deliverer.peak[UUID(failing)] == slots, "retries never held more than their share"

    deliverer.status.pop(UUID(failing))
    deliverer.release.set()

    async def all_done() -> bool:
        return (await status_counts(stack.engine, failing)) == {"succeeded": 20}

    await eventually(all_done, timeout=30)
