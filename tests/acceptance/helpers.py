"""Acceptance-test helpers: `hub` processes, a recording webhook sink, and the queue's state.

The hub runs as real `hub worker` processes started from this virtualenv's console script; the
test process hosts the API (to set data up the way a client would), the sink the hub delivers
to, and read-only looks at the jobs and logs tables.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import random
import signal
import subprocess
import sys
import time
from collections import Counter
from collections.abc import AsyncIterator, Awaitable, Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from uuid import UUID

from aiohttp import web
from aiohttp.test_utils import TestClient, TestServer
from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncEngine

from hub.store.models import jobs, logs
from hub.web import create_app
from tests.conftest import (
    TEST_ALLOWED_NETWORKS,
    TEST_SECRET_KEY,
    Tenant,
    event_body,
    make_tenant,
    settings_for,
    webhook_integration,
)

HUB = Path(sys.executable).with_name("hub")


# --- the webhook sink ----------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Hit:
    """One request the sink received: the job (`webhook-id`), its attempt, and when."""

    job_id: UUID
    attempt: int
    at: float
    """`time.monotonic()` on arrival."""


@dataclass
class Sink:
    """A loopback webhook endpoint that records every request on arrival.

    `delay` keeps each request open that long (so that a kill lands mid-flight);
    `fail_first_attempt` answers 500 to every attempt numbered 1 and 200 to the rest;
    `fail_ratio` answers 500 to that share of all requests, at random (seeded by `rng`).
    """

    delay: float = 0.0
    fail_first_attempt: bool = False
    fail_ratio: float = 0.0
    rng: random.Random = field(default_factory=lambda: random.Random(20261123))
    hits: list[Hit] = field(default_factory=list)
    open_requests: int = 0
    url: str = ""

    async def _handle(self, request: web.Request) -> web.Response:
        body = await request.json()
        hit = Hit(UUID(request.headers["webhook-id"]), int(body["attempt"]), time.monotonic())
        assert str(hit.job_id) == body["id"]
        self.hits.append(hit)
        self.open_requests += 1
        try:
            if self.delay:
                await asyncio.sleep(self.delay)
        finally:
            self.open_requests -= 1
        if self.fail_first_attempt and hit.attempt == 1:
            return web.Response(status=500, text="not yet")
        if self.fail_ratio and self.rng.random() < self.fail_ratio:
            return web.Response(status=500, text="unlucky")
        return web.Response(text="ok")

    def received_at_least(self, count: int) -> bool:
        return len(self.hits) >= count

    def per_job(self) -> Counter[UUID]:
        """How many requests each job id reached the sink with."""
        return Counter(hit.job_id for hit in self.hits)


@contextlib.asynccontextmanager
async def running_sink(sink: Sink) -> AsyncIterator[Sink]:
    """Serve `sink` on a free loopback port; `sink.url` is its hook's address."""
    app = web.Application()
    app.router.add_post("/hook", sink._handle)
    server = TestServer(app, host="127.0.0.1")
    await server.start_server()
    sink.url = str(server.make_url("/hook"))
    try:
        yield sink
    finally:
        await server.close()


# --- setting data up through the API -------------------------------------------------------------


@dataclass
class Api:
    """The hub's API served in the test process (no dispatcher), with one tenant of its own."""

    client: TestClient[Any, Any]
    tenant: Tenant

    async def create_webhook(self, url: str) -> UUID:
        response = await self.client.post(
            "/v2/integrations", json=webhook_integration(url), headers=self.tenant.auth("manage")
        )
        assert response.status == 201, await response.text()
        return UUID((await response.json())["data"]["id"])

    async def publish(self, count: int) -> None:
        """Publish `count` `order.created` events, in batches of at most 100."""
        while count > 0:
            size = min(count, 100)
            batch = {"data": [event_body()["data"] for _ in range(size)]}
            response = await self.client.post(
                "/v2/events", json=batch, headers=self.tenant.auth("publish")
            )
            assert response.status == 202, await response.text()
            count -= size


@contextlib.asynccontextmanager
async def api_on(database_url: str, engine: AsyncEngine) -> AsyncIterator[Api]:
    app = create_app(settings_for(database_url), engine)
    async with TestClient(TestServer(app, host="127.0.0.1")) as client:
        yield Api(client, await make_tenant(engine))


# --- hub processes -------------------------------------------------------------------------------


@dataclass
class Processes:
    """`hub worker` processes of one test; `kill_all` in a `finally` leaves none behind."""

    database_url: str
    log_dir: Path
    settings: dict[str, str]
    started: list[subprocess.Popen[bytes]] = field(default_factory=list)

    def start_worker(self) -> subprocess.Popen[bytes]:
        env = {k: v for k, v in os.environ.items() if not k.startswith("HUB_")}
        env |= {
            "HUB_DATABASE_URL": self.database_url,
            "HUB_LOG_LEVEL": "warning",
            "HUB_LOG_FORMAT": "console",
            "HUB_SECRET_KEY": TEST_SECRET_KEY,
            "HUB_ALLOWED_NETWORKS": TEST_ALLOWED_NETWORKS,
            **self.settings,
        }
        log_path = self.log_dir / f"worker-{len(self.started) + 1}.log"
        with log_path.open("wb") as output:
            # The working directory keeps a developer's `.env` out of the picture.
            process = subprocess.Popen(
                [str(HUB), "worker"],
                env=env,
                cwd=self.log_dir,
                stdout=output,
                stderr=subprocess.STDOUT,
            )
        self.started.append(process)
        return process

    async def wait_exit(self, process: subprocess.Popen[bytes], timeout: float) -> int:
        deadline = time.monotonic() + timeout
        while process.poll() is None:
            if time.monotonic() > deadline:
                raise AssertionError(f"hub worker {process.pid} still running after {timeout} s")
            await asyncio.sleep(0.02)
        return process.returncode

    async def sigkill(self, process: subprocess.Popen[bytes]) -> None:
        process.send_signal(signal.SIGKILL)
        await self.wait_exit(process, 10)

    def kill_all(self) -> None:
        for process in self.started:
            if process.poll() is None:
                process.kill()
                with contextlib.suppress(subprocess.TimeoutExpired):
                    process.wait(10)

    def output(self) -> str:
        """Every worker's output, for a failing test's report."""
        parts = []
        for path in sorted(self.log_dir.glob("worker-*.log")):
            parts.append(f"--- {path.name}\n{path.read_text(errors='replace')[-4000:]}")
        return "\n".join(parts)


# --- the queue's state ---------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class JobRow:
    id: UUID
    status: str
    attempts: int
    lease_owner: str | None


def leased_by(row: JobRow, process: subprocess.Popen[bytes]) -> bool:
    """Is `row` in flight under a lease of `process`? (Owner ids are `host:pid:random`.)"""
    if row.status != "delivering" or row.lease_owner is None:
        return False
    return row.lease_owner.rsplit(":", 2)[-2] == str(process.pid)


@dataclass(frozen=True, slots=True)
class LogRow:
    job_id: UUID
    attempt: int
    succeeded: bool
    status_code: int | None
    error_detail: str | None


async def job_rows(engine: AsyncEngine) -> dict[UUID, JobRow]:
    async with engine.connect() as conn:
        rows = await conn.execute(
            select(jobs.c.id, jobs.c.status, jobs.c.attempts, jobs.c.lease_owner)
        )
        return {row.id: JobRow(row.id, row.status, row.attempts, row.lease_owner) for row in rows}


async def log_rows(engine: AsyncEngine) -> list[LogRow]:
    async with engine.connect() as conn:
        rows = await conn.execute(
            select(
                logs.c.job_id,
                logs.c.attempt,
                logs.c.succeeded,
                logs.c.status_code,
                logs.c.error_detail,
            ).order_by(logs.c.job_id, logs.c.attempt, logs.c.created_at)
        )
        return [LogRow(*row) for row in rows]


async def status_counts(engine: AsyncEngine) -> Counter[str]:
    async with engine.connect() as conn:
        rows = await conn.execute(select(jobs.c.status, func.count()).group_by(jobs.c.status))
        return Counter({status: count for status, count in rows})


def logs_per_job(rows: Iterable[LogRow]) -> Counter[UUID]:
    return Counter(row.job_id for row in rows)


async def eventually(
    check: Callable[[], bool | Awaitable[bool]],
    *,
    timeout: float,
    what: str,
    interval: float = 0.05,
) -> float:
    """Wait until `check()` holds and return the seconds it took; fail after `timeout`."""
    started = time.monotonic()
    while True:
        result = check()
        if result if isinstance(result, bool) else await result:
            break
        if time.monotonic() - started > timeout:
            raise AssertionError(f"not within {timeout} s: {what}")
        await asyncio.sleep(interval)
    return time.monotonic() - started
