"""The circuit breaker: an integration failing without a break for longer than `breaker_after`
is disabled with a visible reason and its jobs are held, not cancelled; enabling it again
resumes them. A success restarts the clock; a 429 neither starts nor stops it."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any
from uuid import UUID

import pytest
import structlog

from tests.conftest import event_body, settings_for, webhook_integration
from tests.support.queue import status_counts
from tests.support.sinks import ScriptedDeliverer
from tests.support.stack import Stack, hub_stack
from tests.support.waiting import eventually

#: Enough attempts that no job runs out of them while the breaker's clock runs.
SCHEDULE = ",".join(["0.1s"] * 30)


@pytest.fixture
def deliverer() -> ScriptedDeliverer:
    return ScriptedDeliverer()


@pytest.fixture
async def stack(fresh_db: str, deliverer: ScriptedDeliverer) -> AsyncIterator[Stack]:
    settings = settings_for(
        fresh_db, retry_schedule=SCHEDULE, breaker_after="1s", worker_grace_seconds=1
    )
    async with hub_stack(fresh_db, settings, [deliverer]) as stack:
        yield stack


async def publish(stack: Stack, key: str, count: int) -> None:
    await stack.publish({"data": [event_body(key)["data"] for _ in range(count)]})


async def put(stack: Stack, integration_id: str, **attributes: Any) -> dict[str, Any]:
    response = await stack.client.put(
        f"/v2/integrations/{integration_id}",
        json={"data": {"type": "integration", **attributes}},
        headers=stack.tenant.auth("manage"),
    )
    assert response.status == 200, await response.text()
    data: dict[str, Any] = (await response.json())["data"]
    return data


async def test_an_integration_failing_for_longer_than_the_stretch_is_disabled_and_its_jobs_held(
    stack: Stack, deliverer: ScriptedDeliverer
) -> None:
    failing = await stack.create_integration(webhook_integration(observes=["order.created"]))
    healthy = await stack.create_integration(webhook_integration(observes=["order.paid"]))
    deliverer.status[UUID(failing)] = 500
    await publish(stack, "order.created", 5)
    await publish(stack, "order.paid", 2)

    with structlog.testing.capture_logs() as logs:
        stack.start_worker()

        async def tripped_and_held() -> bool:
            return (await status_counts(stack.engine, failing)) == {"held": 5}

        await eventually(tripped_and_held)

    data = await stack.integration(failing)
    assert data["enabled"] is False
    assert data["disabled_reason"].startswith("Disabled by the circuit breaker: every delivery")
    assert "(more than 1 second)" in data["disabled_reason"]
    assert data["failing_since"] is not None
    [line] = [entry for entry in logs if entry["event"] == "integration_disabled_by_breaker"]
    assert line["integration_id"] == failing
    assert line["log_level"] == "warning"
    assert (await status_counts(stack.engine, healthy)) == {"succeeded": 2}
    jobs = await stack.jobs(failing)
    assert {job["status"] for job in jobs} == {"held"}
    assert all(job["next_attempt_at"] is None for job in jobs)
    attempts_before = len(deliverer.calls_of(UUID(failing)))

    # The endpoint is fixed; enabling the integration resumes the held jobs where they were.
    deliverer.status.pop(UUID(failing))
    enabled = await put(stack, failing, enabled=True)
    assert enabled["disabled_reason"] is None
    assert enabled["failing_since"] is None

    async def resumed() -> bool:
        return (await status_counts(stack.engine, failing)) == {"succeeded": 5}

    await eventually(resumed)
    assert len(deliverer.calls_of(UUID(failing))) == attempts_before + 5
    for job in await stack.jobs(failing):
        logs_of_job = await stack.job_logs(failing, job["id"])
        assert len(logs_of_job) == job["attempts"] > 1
        assert [log["succeeded"] for log in logs_of_job][-1] is True


async def test_a_success_ends_the_failing_stretch(
    stack: Stack, deliverer: ScriptedDeliverer
) -> None:
    flaky = await stack.create_integration(webhook_integration())
    deliverer.status[UUID(flaky)] = 503
    await publish(stack, "order.created", 1)
    stack.start_worker()

    async def failing_since_set() -> bool:
        return (await stack.integration(flaky))["failing_since"] is not None

    await eventually(failing_since_set)
    deliverer.status.pop(UUID(flaky))

    async def recovered() -> bool:
        return (await status_counts(stack.engine, flaky)) == {"succeeded": 1}

    await eventually(recovered)
    data = await stack.integration(flaky)
    assert data["failing_since"] is None
    assert data["enabled"] is True


async def test_429_answers_neither_start_nor_end_a_failing_stretch(
    stack: Stack, deliverer: ScriptedDeliverer
) -> None:
    throttling = await stack.create_integration(webhook_integration())
    deliverer.status[UUID(throttling)] = 429
    await publish(stack, "order.created", 2)
    stack.start_worker()

    async def throttled_for_a_while() -> bool:
        return len(deliverer.calls_of(UUID(throttling))) >= 24  # > 1.2 s of 429s

    await eventually(throttled_for_a_while)
    data = await stack.integration(throttling)
    assert data["enabled"] is True, "an endpoint that asks us to slow down is alive"
    assert data["failing_since"] is None


async def test_disabling_by_hand_cancels_and_deleting_cancels_held_jobs_too(
    stack: Stack, deliverer: ScriptedDeliverer
) -> None:
    by_hand = await stack.create_integration(webhook_integration(observes=["order.paid"]))
    tripped = await stack.create_integration(webhook_integration(observes=["order.created"]))
    deliverer.status[UUID(tripped)] = 500
    await publish(stack, "order.created", 3)
    stack.start_worker()

    async def held() -> bool:
        return (await status_counts(stack.engine, tripped)) == {"held": 3}

    await eventually(held)
    await stack.stop_workers()
    await publish(stack, "order.paid", 2)

    await put(stack, by_hand, enabled=False)
    assert (await status_counts(stack.engine, by_hand)) == {"cancelled": 2}

    # Echoing `enabled: false` on the tripped one changes nothing: its jobs stay held.
    await put(stack, tripped, enabled=False, name="renamed")
    assert (await status_counts(stack.engine, tripped)) == {"held": 3}

    response = await stack.client.delete(
        f"/v2/integrations/{tripped}", headers=stack.tenant.auth("manage")
    )
    assert response.status == 200
    assert (await status_counts(stack.engine, tripped)) == {"cancelled": 3}
