"""Replay: `POST /v2/integrations/{id}/replay` re-queues a window's failed (or finished) jobs as
new jobs and answers a resource to poll; `GET …/replays/{replay_id}` counts its progress."""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from typing import Any
from uuid import UUID

import pytest
from sqlalchemy import text

from hub.store import replays
from tests.conftest import event_body, make_tenant, settings_for, webhook_integration
from tests.support.queue import status_counts
from tests.support.sinks import ScriptedDeliverer
from tests.support.stack import Stack, hub_stack
from tests.support.waiting import eventually


@pytest.fixture
def deliverer() -> ScriptedDeliverer:
    return ScriptedDeliverer()


@pytest.fixture
async def stack(fresh_db: str, deliverer: ScriptedDeliverer) -> AsyncIterator[Stack]:
    settings = settings_for(fresh_db, retry_schedule="0.05s", worker_grace_seconds=1)
    async with hub_stack(fresh_db, settings, [deliverer]) as stack:
        yield stack


def iso(value: datetime) -> str:
    return value.astimezone(UTC).isoformat().replace("+00:00", "Z")


def body(since: datetime, **extra: Any) -> dict[str, Any]:
    return {"data": {"type": "integration-replay", "since": iso(since), **extra}}


async def replay(stack: Stack, integration_id: str, document: dict[str, Any]) -> Any:
    return await stack.client.post(
        f"/v2/integrations/{integration_id}/replay",
        json=document,
        headers=stack.tenant.auth("manage"),
    )


async def failed_jobs(stack: Stack, deliverer: ScriptedDeliverer, count: int) -> str:
    """An integration whose `count` jobs all failed; its endpoint works again afterwards."""
    integration_id = await stack.create_integration(webhook_integration())
    deliverer.status[UUID(integration_id)] = 500
    await stack.publish({"data": [event_body()["data"] for _ in range(count)]})
    stack.start_worker()

    async def all_failed() -> bool:
        return (await status_counts(stack.engine, integration_id)) == {"failed": count}

    await eventually(all_failed)
    deliverer.status.pop(UUID(integration_id))
    return integration_id


async def test_a_replay_requeues_the_windows_failed_jobs_and_counts_them_until_completed(
    stack: Stack, deliverer: ScriptedDeliverer
) -> None:
    since = datetime.now(UTC) - timedelta(minutes=1)
    integration_id = await failed_jobs(stack, deliverer, 6)
    originals = {job["id"]: job for job in await stack.jobs(integration_id)}

    response = await replay(stack, integration_id, body(since))

    assert response.status == 202, await response.text()
    data = (await response.json())["data"]
    assert data["type"] == "integration-replay"
    assert data["jobs"]["total"] == 6
    assert data["job_statuses"] == ["failed"]
    assert data["relationships"]["integration"]["data"]["id"] == integration_id
    assert data["links"]["self"] == (
        f"http://hub.test/v2/integrations/{integration_id}/replays/{data['id']}"
    )
    assert data["since"] == iso(since)[:23] + "Z"

    async def completed() -> bool:
        polled = await stack.get(data["links"]["self"].removeprefix("http://hub.test"))
        return bool(polled["data"]["status"] == "completed")

    await eventually(completed)
    polled = (await stack.get(f"/v2/integrations/{integration_id}/replays/{data['id']}"))["data"]
    assert polled["jobs"] == {
        "total": 6,
        "pending": 0,
        "succeeded": 6,
        "failed": 0,
        "cancelled": 0,
    }
    jobs = await stack.jobs(integration_id)
    new = [job for job in jobs if job["id"] not in originals]
    assert len(new) == 6
    assert {job["relationships"]["retry_of"]["data"]["id"] for job in new} == set(originals)
    assert {job["relationships"]["event"]["data"]["id"] for job in new} == {
        job["relationships"]["event"]["data"]["id"] for job in originals.values()
    }
    assert all(job["status"] == "succeeded" and job["attempts"] == 1 for job in new)


async def test_replaying_again_replays_only_what_failed_again_and_status_widens_the_choice(
    stack: Stack, deliverer: ScriptedDeliverer
) -> None:
    since = datetime.now(UTC) - timedelta(minutes=1)
    integration_id = await failed_jobs(stack, deliverer, 3)
    first = (await (await replay(stack, integration_id, body(since))).json())["data"]

    async def first_done() -> bool:
        return (await status_counts(stack.engine, integration_id)) == {"failed": 3, "succeeded": 3}

    await eventually(first_done)

    again = await replay(stack, integration_id, body(since))
    assert again.status == 202
    data = (await again.json())["data"]
    assert (data["jobs"]["total"], data["status"]) == (0, "completed")
    assert data["id"] != first["id"]

    everything = await replay(
        stack, integration_id, body(since, status=["succeeded", "failed", "cancelled"])
    )
    data = (await everything.json())["data"]
    assert data["jobs"]["total"] == 3, "one per event: the latest job of each"
    assert data["job_statuses"] == ["cancelled", "failed", "succeeded"]


async def test_a_window_without_matching_jobs_is_an_empty_completed_replay(
    stack: Stack, deliverer: ScriptedDeliverer
) -> None:
    integration_id = await failed_jobs(stack, deliverer, 2)
    later = datetime.now(UTC) + timedelta(seconds=1)

    response = await replay(stack, integration_id, body(later, until=iso(later + timedelta(1))))

    data = (await response.json())["data"]
    assert response.status == 202
    assert data["status"] == "completed"
    assert data["jobs"]["total"] == 0


@pytest.mark.parametrize(
    ("document", "source"),
    [
        ({"since": "2026-11-20T10:00:00Z", "until": "2026-11-20T09:00:00Z"}, "data.until"),
        ({"since": "2026-11-20T10:00:00Z", "until": "2026-11-20T10:00:00Z"}, "data.until"),
        ({"since": "2026-11-20T10:00:00"}, "data.since"),
        ({"since": "yesterday"}, "data.since"),
        ({}, "data.since"),
        ({"since": "2026-11-20T10:00:00Z", "status": ["pending"]}, "data.status[0]"),
        ({"since": "2026-11-20T10:00:00Z", "status": []}, "data.status"),
        ({"since": "2026-11-20T10:00:00Z", "everything": True}, "data.everything"),
    ],
)
async def test_a_malformed_replay_is_a_422_naming_the_field(
    stack: Stack, document: dict[str, Any], source: str
) -> None:
    integration_id = await stack.create_integration(webhook_integration())
    response = await replay(
        stack, integration_id, {"data": {"type": "integration-replay", **document}}
    )
    assert response.status == 422, await response.text()
    errors = (await response.json())["errors"]
    assert source in {error.get("source") for error in errors}


async def test_replaying_a_disabled_integration_is_a_conflict(stack: Stack) -> None:
    integration_id = await stack.create_integration(webhook_integration(enabled=False))
    response = await replay(stack, integration_id, body(datetime.now(UTC) - timedelta(hours=1)))
    assert response.status == 409
    assert "disabled" in (await response.json())["errors"][0]["detail"]


async def test_replays_are_confined_to_the_store_and_need_a_manage_key(stack: Stack) -> None:
    integration_id = await stack.create_integration(webhook_integration())
    since = datetime.now(UTC) - timedelta(hours=1)
    stranger = await make_tenant(stack.engine)
    path = f"/v2/integrations/{integration_id}/replay"

    other_store = await stack.client.post(path, json=body(since), headers=stranger.auth("manage"))
    viewer = await stack.client.post(path, json=body(since), headers=stack.tenant.auth("view"))
    created = await replay(stack, integration_id, body(since))
    replay_path = (
        f"/v2/integrations/{integration_id}/replays/{(await created.json())['data']['id']}"
    )
    read_by_viewer = await stack.client.get(replay_path, headers=stack.tenant.auth("view"))
    read_by_stranger = await stack.client.get(replay_path, headers=stranger.auth("view"))
    unknown = await stack.client.get(
        f"/v2/integrations/{integration_id}/replays/{UUID(int=7)}", headers=stack.tenant.auth()
    )

    assert other_store.status == 404
    assert viewer.status == 403
    assert created.status == 202
    assert read_by_viewer.status == 200
    assert read_by_stranger.status == 404
    assert unknown.status == 404


@pytest.mark.parametrize("way", ["from the window", "from the jobs in the statuses"])
async def test_the_confirmations_count_is_the_same_whichever_side_it_is_counted_from(
    stack: Stack, way: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    # `count_to_replay` picks a side from two counts; each side must give the same answer.
    monkeypatch.setattr(replays, "FROM_STATUS_BELOW", 10**9 if "statuses" in way else 0)
    integration_id = UUID(await stack.create_integration(webhook_integration()))
    await stack.publish({"data": [event_body()["data"] for _ in range(12)]})
    ids = [
        row[0]
        for row in await _rows(
            stack,
            "SELECT id FROM integration_jobs WHERE integration_id = :i ORDER BY id",
            i=integration_id,
        )
    ]
    await _execute(stack, "UPDATE integration_jobs SET status = 'succeeded'")
    # 0, 1, 2 failed; 1 then retried with success, 2 retried and failed again; 3 cancelled.
    await _execute(
        stack, "UPDATE integration_jobs SET status = 'failed' WHERE id = ANY(:ids)", ids=ids[:3]
    )
    await _execute(
        stack, "UPDATE integration_jobs SET status = 'cancelled' WHERE id = :j", j=ids[3]
    )
    for job_id, status in ((ids[1], "succeeded"), (ids[2], "failed")):
        await _execute(
            stack,
            "INSERT INTO integration_jobs (id, store_id, event_id, integration_id, triggered_by,"
            " status, retry_of, created_at, updated_at) SELECT gen_random_uuid(), store_id,"
            " event_id, integration_id, triggered_by, :s, id, created_at + interval '1 hour',"
            " now() FROM integration_jobs WHERE id = :j",
            s=status,
            j=job_id,
        )
    since = datetime.now(UTC) - timedelta(hours=1)

    async def count(
        statuses: list[str], until: datetime | None = None, key: str | None = None
    ) -> int:
        async with stack.engine.connect() as conn:
            return await replays.count_to_replay(
                conn,
                integration_id=integration_id,
                since=since,
                until=until or datetime.now(UTC) + timedelta(hours=2),
                statuses=statuses,
                triggered_by=key,
            )

    assert await count(["failed"]) == 2, "events 0 and 2: 1's latest job succeeded"
    assert await count(["failed", "cancelled"]) == 3
    assert await count(["succeeded"]) == 9, "8 never failed, and 1 retried"
    assert await count(["failed"], until=datetime.now(UTC) - timedelta(minutes=30)) == 0
    assert await count(["held"]) == 0
    # The retries lie after a window that holds the jobs they retried: still each event's latest.
    half_an_hour = datetime.now(UTC) + timedelta(minutes=30)
    assert await count(["failed"], until=half_an_hour) == 2
    assert await count(["succeeded"], until=half_an_hour) == 9
    assert await count(["failed"], key="order.created") == 2
    assert await count(["failed"], key="order.paid") == 0


async def _rows(stack: Stack, sql: str, **params: Any) -> list[Any]:
    async with stack.engine.connect() as conn:
        return list(await conn.execute(text(sql), params))


async def _execute(stack: Stack, sql: str, **params: Any) -> None:
    async with stack.engine.begin() as conn:
        await conn.execute(text(sql), params)
