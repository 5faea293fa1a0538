"""Where the hub's deliveries land in a test.

* `sink_server(handler)`: a loopback HTTP server answering POST /hook with `handler`;
* `Recorder`: a handler that keeps each request's headers and body and answers 200;
* `Sink` (served by `running_sink`): an endpoint that records each request on arrival and can be
  made slow or failing, for the tests that run the hub as processes;
* `ScriptedDeliverer`: no endpoint at all, a webhook deliverer answering per integration, for the
  reliability tests that drive the dispatcher in the test process.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import random
import time
from collections import Counter, defaultdict
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any, ClassVar
from uuid import UUID

from aiohttp import web
from aiohttp.test_utils import TestServer

from deliverers.base import Delivery, DeliveryResult
from deliverers.webhook import NON_2XX_DETAIL

# --- webhook endpoints ---------------------------------------------------------------------------


@contextlib.asynccontextmanager
async def sink_server(
    handler: Callable[[web.Request], Awaitable[web.StreamResponse]],
) -> AsyncIterator[str]:
    """A loopback HTTP server answering POST /hook with `handler`; yields the hook's URL."""
    app = web.Application()
    app.router.add_post("/hook", handler)
    server = TestServer(app, host="127.0.0.1")
    await server.start_server()
    try:
        yield str(server.make_url("/hook"))
    finally:
        await server.close()


@dataclass
class Recorder:
    """A `sink_server` handler that keeps each request's headers and body and answers 200."""

    requests: list[tuple[dict[str, str], bytes]] = field(default_factory=list)

    async def handle(self, request: web.Request) -> web.Response:
        self.requests.append((dict(request.headers), await request.read()))
        return web.Response(text="ok")


@dataclass(frozen=True, slots=True)
class Hit:
    """One request the sink received: the job (`webhook-id`), its attempt, and when."""

    job_id: UUID
    attempt: int
    at: float
    """`time.monotonic()` on arrival."""
    data: dict[str, Any] = field(default_factory=dict)
    """The event payload's `data`."""


@dataclass(frozen=True, slots=True)
class Answer:
    """A request the sink has answered: its `Hit`, the status it got, and when."""

    hit: Hit
    status: int
    at: float
    """`time.monotonic()` when it was answered."""

    @property
    def succeeded(self) -> bool:
        return self.status == 200


@dataclass
class Sink:
    """A loopback webhook endpoint that records every request on arrival, and its answer.

    `delay` keeps each request open that long (so that a kill lands mid-flight);
    `fail_first_attempt` answers 500 to every attempt numbered 1 and 200 to the rest;
    `fail_ratio` answers 500 to that share of all requests, at random (seeded by `rng`);
    `fail_when` answers 500 to the requests whose payload `data` it holds for.
    """

    delay: float = 0.0
    fail_first_attempt: bool = False
    fail_ratio: float = 0.0
    fail_when: Callable[[dict[str, Any]], bool] | None = None
    rng: random.Random = field(default_factory=lambda: random.Random(20261123))
    hits: list[Hit] = field(default_factory=list)
    answers: list[Answer] = field(default_factory=list)
    open_requests: int = 0
    url: str = ""

    async def handle(self, request: web.Request) -> web.Response:
        body = await request.json()
        hit = Hit(
            UUID(request.headers["webhook-id"]),
            int(body["attempt"]),
            time.monotonic(),
            body["payload"].get("data") or {},
        )
        assert str(hit.job_id) == body["id"]
        self.hits.append(hit)
        self.open_requests += 1
        try:
            if self.delay:
                await asyncio.sleep(self.delay)
        finally:
            self.open_requests -= 1
        status = 500 if self._fails(hit) else 200
        self.answers.append(Answer(hit, status, time.monotonic()))
        return web.Response(status=status, text="ok" if status == 200 else "unlucky")

    def _fails(self, hit: Hit) -> bool:
        if self.fail_first_attempt and hit.attempt == 1:
            return True
        if self.fail_ratio and self.rng.random() < self.fail_ratio:
            return True
        return self.fail_when is not None and self.fail_when(hit.data)

    def received_at_least(self, count: int) -> bool:
        return len(self.hits) >= count

    def per_job(self) -> Counter[UUID]:
        """How many requests each job id reached the sink with."""
        return Counter(hit.job_id for hit in self.hits)


@contextlib.asynccontextmanager
async def running_sink(sink: Sink) -> AsyncIterator[Sink]:
    """Serve `sink` on a free loopback port; `sink.url` is its hook's address."""
    async with sink_server(sink.handle) as url:
        sink.url = url
        yield sink


# --- a deliverer in place of an endpoint ---------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Call:
    integration_id: UUID
    job_id: UUID
    attempt: int
    at: float
    """`time.monotonic()` when the attempt started."""
    ordering_value: str | None = None
    """The job's key value, for an ordered integration."""
    succeeded: bool | None = None
    """Set in `finished` once the attempt has been answered."""


@dataclass
class ScriptedDeliverer:
    """A webhook deliverer answering per integration: `status` (default 200) for each attempt,
    or per ordering key value (`status_of_value`, first), and attempts of integrations in
    `held_open` (retries only, if `hold_retries_only`) or of key values in `held_values` wait
    until `release` is set. It records every call (`finished`: those answered, in the order
    they were) and the peak of attempts in flight at once per integration and per key value."""

    integration_type: ClassVar[str] = "webhook"

    status: dict[UUID, int] = field(default_factory=dict)
    status_of_value: dict[str, int] = field(default_factory=dict)
    held_open: set[UUID] = field(default_factory=set)
    held_values: set[str] = field(default_factory=set)
    hold_retries_only: bool = True
    delay: float = 0.0
    release: asyncio.Event = field(default_factory=asyncio.Event)
    calls: list[Call] = field(default_factory=list)
    finished: list[Call] = field(default_factory=list)
    open_now: defaultdict[UUID, int] = field(default_factory=lambda: defaultdict(int))
    peak: defaultdict[UUID, int] = field(default_factory=lambda: defaultdict(int))
    open_values: defaultdict[str, int] = field(default_factory=lambda: defaultdict(int))
    peak_of_value: defaultdict[str, int] = field(default_factory=lambda: defaultdict(int))

    async def open(self) -> None:
        pass

    async def aclose(self) -> None:
        self.release.set()

    async def deliver(self, delivery: Delivery) -> DeliveryResult:
        integration_id = delivery.target.id
        value = delivery.ordering_value
        call = Call(integration_id, delivery.job_id, delivery.attempt, time.monotonic(), value)
        self.calls.append(call)
        self.open_now[integration_id] += 1
        self.peak[integration_id] = max(self.peak[integration_id], self.open_now[integration_id])
        if value is not None:
            self.open_values[value] += 1
            self.peak_of_value[value] = max(self.peak_of_value[value], self.open_values[value])
        succeeded = False
        try:
            held = integration_id in self.held_open
            if held and (delivery.attempt > 1 or not self.hold_retries_only):
                await self.release.wait()
            if value in self.held_values:
                await self.release.wait()
            if self.delay:
                await asyncio.sleep(self.delay)
            status = self.status.get(integration_id, 200)
            if value is not None:
                status = self.status_of_value.get(value, status)
            succeeded = 200 <= status < 300
            if succeeded:
                return DeliveryResult(True, 0.001, status_code=status, body="ok")
            return DeliveryResult(False, 0.001, status_code=status, error_detail=NON_2XX_DETAIL)
        finally:
            self.open_now[integration_id] -= 1
            if value is not None:
                self.open_values[value] -= 1
            self.finished.append(dataclasses.replace(call, succeeded=succeeded))

    def calls_of(self, integration_id: UUID) -> list[Call]:
        return [call for call in self.calls if call.integration_id == integration_id]
