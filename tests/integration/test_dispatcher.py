"""The dispatcher's logic with the in-memory deliverer, on a real PostgreSQL queue."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from typing import Any
from uuid import UUID

import asyncpg
import pytest

from deliverers.base import Delivery, DeliveryResult
from deliverers.memory import MemoryDeliverer
from hub.dispatch.worker import INTERRUPTED, RECORD_BATCH
from tests.conftest import event_body, settings_for, webhook_integration
from tests.support.stack import Stack, hub_stack
from tests.support.waiting import eventually

NON_2XX = "Received a status code outside of 2xx range - treating webhook as a fail"


def failing(status: int, times: int) -> Any:
    """A script answering `status` to the first `times` attempts of each job, then 200."""

    def script(delivery: Delivery) -> DeliveryResult:
        if delivery.attempt <= times:
            return DeliveryResult(False, 0.001, status_code=status, error_detail=NON_2XX)
        return DeliveryResult(True, 0.001, status_code=200, body="ok")

    return script


@pytest.fixture
def memory() -> MemoryDeliverer:
    return MemoryDeliverer()


@pytest.fixture
async def stack(fresh_db: str, memory: MemoryDeliverer) -> AsyncIterator[Stack]:
    settings = settings_for(fresh_db, retry_schedule="0.1s,0.1s", worker_grace_seconds=2)
    async with hub_stack(fresh_db, settings, [memory]) as stack:
        yield stack


async def _job_status(stack: Stack, integration_id: str, status: str, count: int = 1) -> bool:
    jobs = await stack.jobs(integration_id)
    return len(jobs) == count and all(job["status"] == status for job in jobs)


async def test_a_published_event_is_delivered_once_and_logged(
    stack: Stack, memory: MemoryDeliverer
) -> None:
    integration_id = await stack.create_integration(webhook_integration())
    event = await stack.publish(event_body())
    stack.start_worker()

    await eventually(lambda: _job_status(stack, integration_id, "succeeded"))

    [job] = await stack.jobs(integration_id)
    assert job["attempts"] == 1
    assert job["meta"]["timestamps"]["completed_at"] is not None
    assert job["relationships"]["event"]["data"]["id"] == event["id"]
    [log] = await stack.job_logs(integration_id, job["id"])
    assert log["succeeded"] is True
    assert log["attempt"] == 1
    assert log["status_code"] == 200
    assert log["relationships"]["job"]["data"]["id"] == job["id"]
    [delivery] = memory.delivered
    assert str(delivery.job_id) == job["id"]
    assert delivery.payload == event_body()["data"]["payload"]


async def test_failed_attempts_are_retried_until_one_succeeds(
    stack: Stack, memory: MemoryDeliverer
) -> None:
    memory.script = failing(503, times=2)
    integration_id = await stack.create_integration(webhook_integration())
    await stack.publish(event_body())
    stack.start_worker()

    await eventually(lambda: _job_status(stack, integration_id, "succeeded"))

    [job] = await stack.jobs(integration_id)
    assert job["attempts"] == 3
    logs = await stack.job_logs(integration_id, job["id"])
    assert [(log["attempt"], log["succeeded"]) for log in logs] == [
        (1, False),
        (2, False),
        (3, True),
    ]
    assert logs[0]["error_detail"] == NON_2XX
    assert {str(d.job_id) for d in memory.delivered} == {job["id"]}


async def test_a_job_fails_once_its_attempts_are_spent(
    stack: Stack, memory: MemoryDeliverer
) -> None:
    memory.script = failing(500, times=99)
    integration_id = await stack.create_integration(webhook_integration())
    await stack.publish(event_body())
    stack.start_worker()

    await eventually(lambda: _job_status(stack, integration_id, "failed"))

    [job] = await stack.jobs(integration_id)
    assert job["attempts"] == 3  # the first attempt and one per entry of the schedule
    assert job["last_error"] == NON_2XX
    assert job["next_attempt_at"] is None
    assert job["meta"]["timestamps"]["completed_at"] is not None
    assert len(await stack.job_logs(integration_id, job["id"])) == 3


async def test_a_410_fails_the_job_at_once_and_disables_the_integration(
    stack: Stack, memory: MemoryDeliverer
) -> None:
    memory.script = failing(410, times=99)
    integration_id = await stack.create_integration(webhook_integration())
    await stack.publish(event_body())
    stack.start_worker()

    await eventually(lambda: _job_status(stack, integration_id, "failed"))

    [job] = await stack.jobs(integration_id)
    assert job["attempts"] == 1
    integration = (await stack.get(f"/v2/integrations/{integration_id}"))["data"]
    assert integration["enabled"] is False
    assert "410" in integration["disabled_reason"]

    # A disabled integration gets no new jobs.
    assert (await stack.publish(event_body()))["jobs"]["total"] == 0


async def test_a_manual_retry_creates_a_new_job_that_is_delivered(
    stack: Stack, memory: MemoryDeliverer
) -> None:
    calls = 0

    def fail_three_calls(delivery: Delivery) -> DeliveryResult:
        nonlocal calls
        calls += 1
        return failing(500, times=3 if calls <= 3 else 0)(delivery)  # type: ignore[no-any-return]

    memory.script = fail_three_calls
    integration_id = await stack.create_integration(webhook_integration())
    await stack.publish(event_body())
    stack.start_worker()
    await eventually(lambda: _job_status(stack, integration_id, "failed"))
    [failed] = await stack.jobs(integration_id)

    response = await stack.client.post(
        f"/v2/integrations/{integration_id}/jobs/{failed['id']}/retry",
        headers=stack.tenant.auth("manage"),
    )
    assert response.status == 202, await response.text()
    retry = (await response.json())["data"]
    assert retry["relationships"]["retry_of"]["data"]["id"] == failed["id"]
    assert retry["status"] == "pending"

    async def retried() -> bool:
        job = (await stack.get(f"/v2/integrations/{integration_id}/jobs/{retry['id']}"))["data"]
        return bool(job["status"] == "succeeded")

    await eventually(retried)
    # The failed job stays failed; retrying it again is allowed, retrying a success is not.
    again = await stack.client.post(
        f"/v2/integrations/{integration_id}/jobs/{retry['id']}/retry",
        headers=stack.tenant.auth("manage"),
    )
    assert again.status == 409


async def test_a_worker_never_runs_more_attempts_at_once_than_its_concurrency(
    stack: Stack, memory: MemoryDeliverer
) -> None:
    memory.delay = 0.05
    integration_id = await stack.create_integration(webhook_integration())
    await stack.publish({"data": [event_body()["data"] for _ in range(40)]})
    stack.start_worker(worker_concurrency=4)

    await eventually(lambda: _job_status(stack, integration_id, "succeeded", count=40))

    assert memory.max_in_flight == 4
    assert len(memory.delivered) == 40


async def test_a_worker_whose_records_wait_stops_claiming_past_its_allowance(
    stack: Stack, memory: MemoryDeliverer, fresh_db: str
) -> None:
    # Delivered jobs keep their leases until recorded: a worker that went on claiming while its
    # records cannot be written would hold ever more leases, to run out and be delivered again.
    integration_id = await stack.create_integration(webhook_integration())
    events = RECORD_BATCH + 100
    for _ in range(events // 100):
        await stack.publish({"data": [event_body()["data"] for _ in range(100)]})
    bound = 4 + RECORD_BATCH  # the slots, and a record batch's worth waiting
    blocker = await asyncpg.connect(fresh_db)
    try:
        async with blocker.transaction():
            # Recording writes logs that reference the integration: this lock makes them wait.
            await blocker.execute(
                "SELECT 1 FROM integrations WHERE id = $1 FOR UPDATE", UUID(integration_id)
            )
            worker = stack.start_worker(worker_concurrency=4)
            assert worker.record_allowance == RECORD_BATCH
            await eventually(lambda: len(memory.delivered) >= bound, what="the allowance used")
            await asyncio.sleep(1.0)  # time enough to deliver the rest, were it not held back
            assert len(memory.delivered) == bound
            leased = await blocker.fetchval(
                "SELECT count(*) FROM integration_jobs WHERE lease_owner IS NOT NULL"
            )
            assert leased == bound
    finally:
        await blocker.close()

    async def all_succeeded() -> bool:
        done = await stack.scalar(
            "SELECT count(*) FROM integration_jobs WHERE status = 'succeeded'"
        )
        return bool(done == events)

    await eventually(all_succeeded, timeout=30, what="every job succeeded")
    assert len(memory.delivered) == events, "each job delivered once"


async def test_a_publish_wakes_an_idle_worker_without_waiting_for_the_poll(
    stack: Stack, memory: MemoryDeliverer
) -> None:
    integration_id = await stack.create_integration(webhook_integration())
    stack.start_worker(worker_poll_interval=30)
    await asyncio.sleep(0.3)  # the worker is idle, waiting on LISTEN
    started = time.monotonic()
    await stack.publish(event_body())

    await eventually(lambda: _job_status(stack, integration_id, "succeeded"), timeout=10)
    assert time.monotonic() - started < 10  # a poll would have taken 30 s


async def test_stopping_lets_in_flight_attempts_finish_and_records_them(
    stack: Stack, memory: MemoryDeliverer
) -> None:
    memory.delay = 0.5
    integration_id = await stack.create_integration(webhook_integration())
    await stack.publish({"data": [event_body()["data"] for _ in range(3)]})
    worker = stack.start_worker()
    await eventually(lambda: _any_delivering(stack, integration_id))

    await stack.stop_workers()

    assert worker.stopped.is_set()
    jobs = await stack.jobs(integration_id)
    assert [job["status"] for job in jobs] == ["succeeded"] * 3
    for job in jobs:
        assert len(await stack.job_logs(integration_id, job["id"])) == 1


async def test_stopping_past_the_grace_period_records_the_interrupted_attempt(
    stack: Stack, memory: MemoryDeliverer
) -> None:
    memory.delay = 30
    integration_id = await stack.create_integration(webhook_integration())
    await stack.publish(event_body())
    stack.start_worker(worker_grace_seconds=0.2)
    await eventually(lambda: _any_delivering(stack, integration_id))

    await stack.stop_workers()

    [job] = await stack.jobs(integration_id)
    assert job["status"] == "pending"  # to be retried by whichever worker runs next
    assert job["attempts"] == 1
    [log] = await stack.job_logs(integration_id, job["id"])
    assert log["succeeded"] is False
    assert log["error_detail"] == INTERRUPTED


async def test_jobs_of_a_disabled_integration_are_cancelled_not_delivered(
    stack: Stack, memory: MemoryDeliverer
) -> None:
    integration_id = await stack.create_integration(webhook_integration())
    await stack.publish(event_body())
    response = await stack.client.put(
        f"/v2/integrations/{integration_id}",
        json={"data": {"type": "integration", "enabled": False}},
        headers=stack.tenant.auth("manage"),
    )
    assert response.status == 200
    stack.start_worker()
    await asyncio.sleep(0.5)

    [job] = await stack.jobs(integration_id)
    assert job["status"] == "cancelled"
    assert memory.delivered == []


async def test_a_crashing_deliverer_is_a_failed_attempt_not_a_dead_worker(
    stack: Stack, memory: MemoryDeliverer
) -> None:
    calls = 0

    def explode_once(delivery: Delivery) -> DeliveryResult:
        nonlocal calls
        calls += 1
        if calls == 1:
            raise RuntimeError("bug in a deliverer")
        return DeliveryResult(True, 0.001, status_code=200)

    memory.script = explode_once
    integration_id = await stack.create_integration(webhook_integration())
    await stack.publish(event_body())
    worker = stack.start_worker()

    await eventually(lambda: _job_status(stack, integration_id, "succeeded"))
    [job] = await stack.jobs(integration_id)
    logs = await stack.job_logs(integration_id, job["id"])
    assert [log["succeeded"] for log in logs] == [False, True]
    assert "unexpectedly" in logs[0]["error_detail"]
    assert not worker.stopped.is_set()


async def _any_delivering(stack: Stack, integration_id: str) -> bool:
    return any(job["status"] == "delivering" for job in await stack.jobs(integration_id))
