"""Operational events end to end: the hub publishes `integration.disabled` (the circuit breaker, a
410, an operator), `integration.enabled` (an operator) and `job.failed` (a job that gave up) into
the store, and the dispatcher delivers them to the integrations observing them, real webhooks on
loopback; they never loop (`hub.operational`)."""

from __future__ import annotations

import asyncio
import contextlib
import json
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from typing import Any

import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient
from sqlalchemy import text

from deliverers.webhook import NON_2XX_DETAIL, WebhookDeliverer
from hub.events import OPERATIONAL_KEYS
from hub.ssrf import LOOPBACK
from tests.conftest import Tenant, event_body, settings_for, webhook_integration
from tests.support.queue import status_counts
from tests.support.sinks import sink_server
from tests.support.stack import Stack, hub_stack
from tests.support.waiting import eventually

Client = TestClient[Any, Any]

#: A long answer, so that the payload's excerpt of it is seen to be cut.
LONG_ANSWER = "x" * 2000
#: Enough attempts that no job runs out of them while the breaker's clock runs.
MANY_RETRIES = ",".join(["0.1s"] * 40)


@dataclass
class Endpoint:
    """A loopback webhook answering `status`, keeping every request's parsed body."""

    status: int = 200
    url: str = ""
    bodies: list[dict[str, Any]] = field(default_factory=list)
    raw: list[bytes] = field(default_factory=list)

    async def handle(self, request: web.Request) -> web.Response:
        raw = await request.read()
        self.raw.append(raw)
        self.bodies.append(json.loads(raw))
        return web.Response(status=self.status, text=f"answered {self.status} {LONG_ANSWER}")

    def received(self, key: str) -> list[dict[str, Any]]:
        """The payload `data` of each delivery of `key` (every attempt), in arrival order."""
        return [b["payload"]["data"] for b in self.bodies if b["triggered_by"] == key]


@dataclass
class Env:
    stack: Stack
    exits: contextlib.AsyncExitStack

    async def endpoint(self, status: int = 200) -> Endpoint:
        endpoint = Endpoint(status)
        endpoint.url = await self.exits.enter_async_context(sink_server(endpoint.handle))
        return endpoint

    async def integration(self, endpoint: Endpoint, observes: list[str], **extra: Any) -> str:
        return await self.stack.create_integration(
            webhook_integration(endpoint.url, observes=observes, **extra)
        )

    async def operational_events(self, key: str) -> list[dict[str, Any]]:
        """The store's events keyed `key`, oldest first, as the API shows each."""
        async with self.stack.engine.connect() as conn:
            rows = await conn.execute(
                text("SELECT id FROM events WHERE triggered_by = :key ORDER BY id"), {"key": key}
            )
            ids = [str(row[0]) for row in rows]
        return [(await self.stack.get(f"/v2/events/{i}"))["data"] for i in ids]


@contextlib.asynccontextmanager
async def environment(fresh_db: str, **settings: Any) -> AsyncIterator[Env]:
    values: dict[str, Any] = {"retry_schedule": "0.1s,0.1s", "webhook_timeout": 2}
    values.update(settings)
    async with contextlib.AsyncExitStack() as exits:
        deliverer = WebhookDeliverer(timeout=2, allowed_networks=LOOPBACK)
        stack = await exits.enter_async_context(
            hub_stack(fresh_db, settings_for(fresh_db, **values), [deliverer])
        )
        yield Env(stack, exits)


async def put(stack: Stack, integration_id: str, **attributes: Any) -> dict[str, Any]:
    response = await stack.client.put(
        f"/v2/integrations/{integration_id}",
        json={"data": {"type": "integration", **attributes}},
        headers=stack.tenant.auth("manage"),
    )
    assert response.status == 200, await response.text()
    data: dict[str, Any] = (await response.json())["data"]
    return data


async def manage_key_id(stack: Stack) -> str:
    return str(
        await stack.scalar(
            "SELECT k.id FROM api_keys AS k JOIN stores AS s ON s.id = k.store_id "
            "WHERE s.name = :store AND k.role = 'manage'",
            store=stack.tenant.name,
        )
    )


def _count(check: Callable[[], int], expected: int) -> Callable[[], bool]:
    return lambda: check() >= expected


# --- job.failed ---------------------------------------------------------------------------------


async def test_a_job_that_spends_its_attempts_publishes_one_job_failed_to_its_observers(
    fresh_db: str,
) -> None:
    async with environment(fresh_db) as env:
        orders = await env.endpoint(503)
        watcher = await env.endpoint()
        everything = await env.endpoint()
        failing = await env.integration(orders, ["order.created"], name="Orders to the ERP")
        watching = await env.integration(watcher, ["job.failed"], name="Ops chat")
        await env.integration(everything, ["*"], name="Catch-all")
        published = [await env.stack.publish(event_body()) for _ in range(3)]
        env.stack.start_worker()
        env.stack.start_worker()  # two workers record at once: still one event per job

        await eventually(_count(lambda: len(watcher.received("job.failed")), 3))
        await eventually(
            lambda: _settled(env.stack, watching, {"succeeded": 3}), what="the watcher's jobs"
        )

        jobs = {job["id"]: job for job in await env.stack.jobs(failing)}
        assert {job["status"] for job in jobs.values()} == {"failed"}
        received = watcher.received("job.failed")
        assert sorted(data["id"] for data in received) == sorted(jobs)
        data = received[0]
        job = jobs[data["id"]]
        assert data["type"] == "integration-job"
        assert data["status"] == "failed"
        assert data["triggered_by"] == "order.created"
        assert data["attempts"] == job["attempts"] == 3
        assert data["reason"] == "gave up after 3 attempts"
        assert data["failed_at"].endswith("Z")
        assert data["integration"] == {
            "type": "integration",
            "id": failing,
            "name": "Orders to the ERP",
            "integration_type": "webhook",
        }
        event_id = job["relationships"]["event"]["data"]["id"]
        assert event_id in {p["id"] for p in published}
        assert data["event"] == {"type": "event", "id": event_id, "triggered_by": "order.created"}
        last = data["last_attempt"]
        assert last["status_code"] == 503
        assert last["error_detail"] == NON_2XX_DETAIL
        assert last["body"].startswith("answered 503 xxx")
        assert len(last["body"]) == 256, "an excerpt of the answer, not all of it"
        assert all(b"very-secret-value" not in raw for raw in watcher.raw)
        # Delivered like any event: the envelope names the key, the integration the watcher.
        envelope = watcher.bodies[0]
        assert envelope["triggered_by"] == "job.failed"
        assert envelope["integration"]["id"] == watching

        stored = await env.operational_events("job.failed")
        assert len(stored) == 3, "one event per failed job, whatever the workers"
        assert {e["client_id"] for e in stored} == {f"hub:job.failed:{i}" for i in jobs}
        assert all(e["jobs"]["total"] == 1 for e in stored)
        # `*` selects what the services publish, not the hub's own reports.
        assert len(everything.received("order.created")) == 3
        assert everything.received("job.failed") == []


async def test_an_observer_of_job_failed_whose_deliveries_fail_does_not_loop(
    fresh_db: str,
) -> None:
    async with environment(fresh_db) as env:
        orders = await env.endpoint(500)
        watcher = await env.endpoint(500)
        failing = await env.integration(orders, ["order.created"])
        watching = await env.integration(watcher, ["job.failed", "job.*"])
        await env.stack.publish(event_body())
        env.stack.start_worker()

        await eventually(lambda: _settled(env.stack, failing, {"failed": 1}))
        await eventually(lambda: _settled(env.stack, watching, {"failed": 1}))
        await asyncio.sleep(1.0)  # ten retry periods: a loop would have published again

        assert len(await env.operational_events("job.failed")) == 1
        assert await status_counts(env.stack.engine, watching) == {"failed": 1}
        assert len(watcher.received("job.failed")) == 3, "its one job, each of its attempts"


# --- integration.disabled -----------------------------------------------------------------------


async def test_the_breaker_switching_an_integration_off_publishes_integration_disabled(
    fresh_db: str,
) -> None:
    async with environment(fresh_db, retry_schedule=MANY_RETRIES, breaker_after="1s") as env:
        down = await env.endpoint(500)
        chat = await env.endpoint()
        failing = await env.integration(down, ["order.created"], name="Down for days")
        # Ordered by the integration it is about: such events go through the ordered queues.
        await env.integration(chat, ["integration.disabled"], ordering_key="data.id")
        for _ in range(3):
            await env.stack.publish(event_body())
        env.stack.start_worker()

        await eventually(_count(lambda: len(chat.received("integration.disabled")), 1))

        integration = await env.stack.integration(failing)
        assert integration["enabled"] is False
        [data] = chat.received("integration.disabled")
        assert data == {
            "type": "integration",
            "id": failing,
            "name": "Down for days",
            "integration_type": "webhook",
            "enabled": False,
            "cause": "circuit_breaker",
            "reason": integration["disabled_reason"],
            "key_id": None,
            "disabled_at": data["disabled_at"],
        }
        assert data["reason"].startswith("Disabled by the circuit breaker")
        [event] = await env.operational_events("integration.disabled")
        assert event["jobs"]["total"] == 1
        assert event["client_id"].startswith(f"hub:integration.disabled:{failing}:")
        assert await status_counts(env.stack.engine, failing) == {"held": 3}


async def test_a_410_publishes_job_failed_and_integration_disabled(fresh_db: str) -> None:
    async with environment(fresh_db) as env:
        gone = await env.endpoint(410)
        chat = await env.endpoint()
        unsubscribed = await env.integration(gone, ["order.created"])
        await env.integration(chat, ["integration.*", "job.*"])
        await env.stack.publish(event_body())
        env.stack.start_worker()

        await eventually(_count(lambda: len(chat.bodies), 2))

        integration = await env.stack.integration(unsubscribed)
        [failed] = chat.received("job.failed")
        assert failed["attempts"] == 1
        assert failed["reason"] == "the endpoint answered 410 Gone"
        assert failed["last_attempt"]["status_code"] == 410
        assert failed["integration"]["id"] == unsubscribed
        [disabled] = chat.received("integration.disabled")
        assert disabled["id"] == unsubscribed
        assert disabled["cause"] == "gone"
        assert disabled["reason"] == integration["disabled_reason"]
        assert disabled["reason"].startswith("Disabled after the endpoint answered 410 Gone")
        assert len(await env.operational_events("integration.disabled")) == 1


async def test_a_breaker_disabling_an_observer_of_integration_disabled_publishes_once_and_stops(
    fresh_db: str,
) -> None:
    async with environment(fresh_db, retry_schedule=MANY_RETRIES, breaker_after="1s") as env:
        down = await env.endpoint(500)
        lonely = await env.integration(down, ["order.created", "integration.disabled"])
        await env.stack.publish(event_body())
        env.stack.start_worker()

        await eventually(lambda: _settled(env.stack, lonely, {"held": 1}), timeout=20)
        await asyncio.sleep(0.5)

        [event] = await env.operational_events("integration.disabled")
        assert event["jobs"]["total"] == 0, "it is disabled: not told of its own switch-off"
        assert down.received("integration.disabled") == []


async def test_a_chain_of_failing_observers_of_integration_disabled_ends_with_one_event_each(
    fresh_db: str,
) -> None:
    async with environment(fresh_db, retry_schedule=MANY_RETRIES, breaker_after="1s") as env:
        orders_down = await env.endpoint(500)
        chat_down = await env.endpoint(500)
        orders = await env.integration(orders_down, ["order.created", "integration.disabled"])
        chat = await env.integration(chat_down, ["integration.disabled"])
        await env.stack.publish(event_body())
        env.stack.start_worker()

        # `orders` trips and tells `chat`, whose endpoint fails that news until it trips too,
        # telling no one: `orders` is off by then.
        async def both_off() -> bool:
            return not any([(await env.stack.integration(i))["enabled"] for i in (orders, chat)])

        await eventually(both_off, timeout=20)
        await asyncio.sleep(0.5)

        events = await env.operational_events("integration.disabled")
        assert [(e["payload"]["data"]["id"], e["jobs"]["total"]) for e in events] == [
            (orders, 1),
            (chat, 0),
        ]
        assert await status_counts(env.stack.engine, chat) == {"held": 1}
        assert await env.operational_events("job.failed") == []


# --- an operator's switch -----------------------------------------------------------------------


async def test_disabling_and_enabling_through_the_api_publish_one_event_each_in_order(
    fresh_db: str,
) -> None:
    async with environment(fresh_db) as env:
        chat = await env.endpoint()
        target = await env.endpoint()
        switched = await env.integration(target, ["order.created"], name="Switched")
        await env.integration(
            chat, ["integration.disabled", "integration.enabled"], ordering_key="data.id"
        )
        await put(env.stack, switched, enabled=False)
        await put(env.stack, switched, enabled=False)  # no change: no event
        await put(env.stack, switched, enabled=True)
        await put(env.stack, switched, name="Switched, renamed")  # not a switch
        env.stack.start_worker()

        await eventually(_count(lambda: len(chat.bodies), 2))
        await asyncio.sleep(0.3)

        key_id = await manage_key_id(env.stack)
        assert [b["triggered_by"] for b in chat.bodies] == [
            "integration.disabled",
            "integration.enabled",
        ]
        disabled, enabled = (b["payload"]["data"] for b in chat.bodies)
        assert disabled["id"] == enabled["id"] == switched
        assert disabled["cause"] == enabled["cause"] == "operator"
        assert disabled["key_id"] == enabled["key_id"] == key_id
        assert disabled["reason"] == f"Disabled by an operator through the API (key {key_id})"
        assert enabled["reason"] == f"Enabled by an operator through the API (key {key_id})"
        assert enabled["resumed_jobs"] == 0
        assert enabled["enabled"] is True
        assert disabled["enabled"] is False
        assert len(await env.operational_events("integration.disabled")) == 1
        assert len(await env.operational_events("integration.enabled")) == 1


async def test_enabling_a_tripped_integration_reports_the_held_jobs_it_resumed(
    fresh_db: str,
) -> None:
    async with environment(fresh_db, retry_schedule=MANY_RETRIES, breaker_after="1s") as env:
        down = await env.endpoint(500)
        chat = await env.endpoint()
        failing = await env.integration(down, ["order.created"])
        await env.integration(chat, ["integration.enabled"])
        for _ in range(2):
            await env.stack.publish(event_body())
        env.stack.start_worker()
        await eventually(lambda: _settled(env.stack, failing, {"held": 2}), timeout=20)

        down.status = 200
        await put(env.stack, failing, enabled=True)

        await eventually(_count(lambda: len(chat.received("integration.enabled")), 1))
        [enabled] = chat.received("integration.enabled")
        assert enabled["resumed_jobs"] == 2
        await eventually(lambda: _settled(env.stack, failing, {"succeeded": 2}))


async def _settled(stack: Stack, integration_id: str, expected: dict[str, int]) -> bool:
    return await status_counts(stack.engine, integration_id) == expected


# --- what clients may and may not do ------------------------------------------------------------


async def errors_of(resp: Any, status: int) -> list[dict[str, Any]]:
    assert resp.status == status, await resp.text()
    errors: list[dict[str, Any]] = (await resp.json())["errors"]
    assert errors
    assert all(e["status"] == status for e in errors)
    return errors


async def _publish(api: Client, tenant: Tenant, body: dict[str, Any], **headers: str) -> Any:
    return await api.post("/v2/events", json=body, headers={**tenant.auth("publish"), **headers})


@pytest.mark.parametrize("key", sorted(OPERATIONAL_KEYS))
async def test_a_client_cannot_publish_an_operational_event(
    api: Client, tenant: Tenant, key: str
) -> None:
    resp = await _publish(api, tenant, event_body(key))

    errors = await errors_of(resp, 422)
    assert [(e["title"], e.get("source")) for e in errors] == [
        ("Validation Error", "data.triggered_by")
    ]
    assert "is an operational event: only the hub publishes it" in errors[0]["detail"]


async def test_a_client_id_with_the_hubs_prefix_is_refused_wherever_it_is_given(
    api: Client, tenant: Tenant
) -> None:
    single = await _publish(api, tenant, event_body(id="hub:job.failed:x"))
    assert [e.get("source") for e in await errors_of(single, 422)] == ["data.id"]

    batch = {"data": [event_body(id="mine")["data"], event_body(id="hub:x")["data"]]}
    many = await _publish(api, tenant, batch)
    assert [e.get("source") for e in await errors_of(many, 422)] == ["data[1].id"]

    header = await _publish(api, tenant, event_body(), **{"Idempotency-Key": "hub:x"})
    [error] = await errors_of(header, 422)
    assert error["source"] == "Idempotency-Key"
    assert "reserved for the client ids of the events the hub publishes" in error["detail"]


async def test_operational_keys_are_observed_by_name_or_resource_but_not_by_the_catch_all(
    api: Client, tenant: Tenant
) -> None:
    created = {}
    for name, observes in {
        "by name": ["job.failed", "integration.disabled", "integration.enabled"],
        "by resource": ["job.*"],
        "catch-all": ["*"],
    }.items():
        resp = await api.post(
            "/v2/integrations",
            json=webhook_integration(observes=observes, name=name),
            headers=tenant.auth("manage"),
        )
        assert resp.status == 201, await resp.text()
        created[(await resp.json())["data"]["id"]] = name

    resp = await api.get(
        "/v2/integrations?filter[observes]=job.failed&page[limit]=100", headers=tenant.auth("view")
    )
    assert resp.status == 200
    listed = {created[d["id"]] for d in (await resp.json())["data"] if d["id"] in created}
    assert listed == {"by name", "by resource"}
