"""Backpressure: per-integration `max_in_flight` and `rate_limit`, set through the API and
enforced by the dispatcher; and a stopping worker that gives back the jobs it had not started."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Any
from uuid import UUID

import pytest
from aiohttp.test_utils import TestClient

from tests.conftest import Tenant, event_body, settings_for, webhook_integration
from tests.support.queue import status_counts
from tests.support.sinks import ScriptedDeliverer
from tests.support.stack import Stack, hub_stack
from tests.support.waiting import eventually

Client = TestClient[Any, Any]


@pytest.fixture
def deliverer() -> ScriptedDeliverer:
    return ScriptedDeliverer()


@pytest.fixture
async def stack(fresh_db: str, deliverer: ScriptedDeliverer) -> AsyncIterator[Stack]:
    settings = settings_for(fresh_db, retry_schedule="0.05s,0.05s", worker_grace_seconds=1)
    async with hub_stack(fresh_db, settings, [deliverer]) as stack:
        yield stack


async def publish(stack: Stack, key: str, count: int) -> None:
    await stack.publish({"data": [event_body(key)["data"] for _ in range(count)]})


# --- the API ---------------------------------------------------------------------------------


async def test_limits_are_optional_attributes_that_an_update_changes_or_removes(
    api: Client, tenant: Tenant
) -> None:
    response = await api.post(
        "/v2/integrations",
        json=webhook_integration(max_in_flight=4, rate_limit=0.5),
        headers=tenant.auth(),
    )
    assert response.status == 201, await response.text()
    created = (await response.json())["data"]
    assert (created["max_in_flight"], created["rate_limit"]) == (4, 0.5)
    assert created["failing_since"] is None
    path = f"/v2/integrations/{created['id']}"

    response = await api.put(
        path, json={"data": {"type": "integration", "rate_limit": 20}}, headers=tenant.auth()
    )
    assert response.status == 200, await response.text()
    assert ((await response.json())["data"]["max_in_flight"]) == 4, "untouched when not given"
    assert ((await response.json())["data"]["rate_limit"]) == 20

    response = await api.put(
        path,
        json={"data": {"type": "integration", "max_in_flight": None, "rate_limit": None}},
        headers=tenant.auth(),
    )
    data = (await response.json())["data"]
    assert (data["max_in_flight"], data["rate_limit"]) == (None, None)

    # A GET echoed back as a PUT body is accepted, read-only attributes included.
    echoed = {k: v for k, v in data.items() if k != "configuration"}
    response = await api.put(path, json={"data": echoed}, headers=tenant.auth())
    assert response.status == 200, await response.text()

    plain = await api.post("/v2/integrations", json=webhook_integration(), headers=tenant.auth())
    data = (await plain.json())["data"]
    assert (data["max_in_flight"], data["rate_limit"]) == (None, None)


@pytest.mark.parametrize(
    ("attribute", "value"),
    [
        ("max_in_flight", 0),
        ("max_in_flight", -1),
        ("max_in_flight", 10_001),
        ("max_in_flight", 1.5),
        ("max_in_flight", "many"),
        ("rate_limit", 0),
        ("rate_limit", -2),
        ("rate_limit", 10_001),
        ("rate_limit", "fast"),
    ],
)
async def test_a_limit_out_of_range_is_a_422_naming_the_attribute(
    api: Client, tenant: Tenant, attribute: str, value: Any
) -> None:
    response = await api.post(
        "/v2/integrations", json=webhook_integration(**{attribute: value}), headers=tenant.auth()
    )
    assert response.status == 422
    errors = (await response.json())["errors"]
    assert {error["source"] for error in errors} == {f"data.{attribute}"}


# --- the dispatcher --------------------------------------------------------------------------


async def test_max_in_flight_caps_one_integration_and_no_other(
    stack: Stack, deliverer: ScriptedDeliverer
) -> None:
    limited = await stack.create_integration(
        webhook_integration(observes=["order.created"], max_in_flight=2)
    )
    free = await stack.create_integration(webhook_integration(observes=["order.paid"]))
    deliverer.delay = 0.1
    await publish(stack, "order.created", 12)
    await publish(stack, "order.paid", 12)
    stack.start_worker(worker_concurrency=16)

    async def all_done() -> bool:
        return (await status_counts(stack.engine, limited)) == {"succeeded": 12} and (
            await status_counts(stack.engine, free)
        ) == {"succeeded": 12}

    await eventually(all_done, timeout=30)
    assert deliverer.peak[UUID(limited)] == 2
    assert deliverer.peak[UUID(free)] > 2


async def test_max_in_flight_holds_across_two_workers(
    stack: Stack, deliverer: ScriptedDeliverer
) -> None:
    limited = await stack.create_integration(webhook_integration(max_in_flight=3))
    deliverer.delay = 0.05
    await publish(stack, "order.created", 40)
    stack.start_worker(worker_concurrency=8)
    stack.start_worker(worker_concurrency=8)

    async def all_done() -> bool:
        return (await status_counts(stack.engine, limited)) == {"succeeded": 40}

    await eventually(all_done, timeout=30)
    # Two claims at the same instant may each see room for 3 (see hub.store).
    assert 3 <= deliverer.peak[UUID(limited)] <= 6


async def test_a_rate_limit_paces_attempts_and_leaves_other_integrations_alone(
    stack: Stack, deliverer: ScriptedDeliverer
) -> None:
    limited = await stack.create_integration(
        webhook_integration(observes=["order.created"], rate_limit=5)
    )
    free = await stack.create_integration(webhook_integration(observes=["order.paid"]))
    await publish(stack, "order.created", 15)
    await publish(stack, "order.paid", 15)
    stack.start_worker()

    async def all_done() -> bool:
        return (await status_counts(stack.engine, limited)) == {"succeeded": 15}

    await eventually(all_done, timeout=30)
    paced = [call.at for call in deliverer.calls_of(UUID(limited))]
    unpaced = [call.at for call in deliverer.calls_of(UUID(free))]
    # A burst of 5, then 5 a second: the other 10 need at least 2 s.
    assert paced[-1] - paced[0] >= 1.8
    for start in paced:
        assert sum(start <= at < start + 1.0 for at in paced) <= 10
    assert len(unpaced) == 15
    assert max(unpaced) < paced[-1], "the unlimited integration did not wait for the paced one"


async def test_a_stopping_worker_releases_the_jobs_it_had_not_started_at_once(
    stack: Stack, deliverer: ScriptedDeliverer
) -> None:
    # 1.5 a second: each claim takes 2 jobs, and the second waits for the limiter a while.
    limited = await stack.create_integration(webhook_integration(rate_limit=1.5))
    await publish(stack, "order.created", 4)
    worker = stack.start_worker()
    task = stack.workers[-1][1]

    async def a_job_waits() -> bool:
        return worker.waiting_for_limiter > 0

    await eventually(a_job_waits, interval=0.005)
    worker.stop()
    await asyncio.wait_for(task, 10)
    stack.workers.clear()

    leased = await stack.scalar("SELECT count(*) FROM integration_jobs WHERE status = 'delivering'")
    assert leased == 0, "no lease left behind to expire"
    delivered_by_first = len(deliverer.calls)
    expected = {"succeeded": delivered_by_first, "pending": 4 - delivered_by_first}
    assert (await status_counts(stack.engine, limited)) == {k: n for k, n in expected.items() if n}
    assert delivered_by_first < 4
    assert await stack.scalar("SELECT count(*) FROM integration_logs") == delivered_by_first

    stack.start_worker()

    async def all_done() -> bool:
        return (await status_counts(stack.engine, limited)) == {"succeeded": 4}

    await eventually(all_done, timeout=30)
    delivered = [call.job_id for call in deliverer.calls]
    assert len(delivered) == len(set(delivered)) == 4, "each job delivered exactly once"
