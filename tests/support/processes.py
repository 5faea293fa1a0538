"""The hub as processes: real `hub worker` and `hub serve` processes, and the API in the test
process.

The processes are started from this virtualenv's console script; the test process hosts the
API (to set data up the way a client would), the sink the hub delivers to
(`tests.support.sinks`), and read-only looks at the jobs and logs tables
(`tests.support.queue`). `Publisher` publishes through several API processes as a client of a
deployment would: it fails over to the next process when one does not answer.
"""

from __future__ import annotations

import asyncio
import contextlib
import fcntl
import json
import os
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections import Counter
from collections.abc import AsyncIterator, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from uuid import UUID

import aiohttp
from aiohttp.test_utils import TestClient, TestServer
from sqlalchemy.ext.asyncio import AsyncEngine

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


FLEET_LOCK = Path(tempfile.gettempdir()) / "hub-tests-fleet.lock"


@contextlib.contextmanager
def one_fleet_at_a_time() -> Iterator[None]:
    """Hold the machine-wide lock of the tests that run fleets of hub processes (several API and
    worker processes, thousands of events): two such fleets at once on 2 cores starve each other
    past their waits. xdist's `--dist loadgroup` would say this, but does not group under pytest
    9 (it renames node ids through an attribute pytest no longer reads), hence a file lock."""
    with FLEET_LOCK.open("a") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


# --- setting data up through the API -------------------------------------------------------------


@dataclass
class Api:
    """The hub's API served in the test process (no dispatcher), with one tenant of its own."""

    client: TestClient[Any, Any]
    tenant: Tenant

    async def create_webhook(self, url: str, **attributes: Any) -> UUID:
        response = await self.client.post(
            "/v2/integrations",
            json=webhook_integration(url, **attributes),
            headers=self.tenant.auth("manage"),
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


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


@dataclass
class Fleet:
    """The API and worker processes of `Processes.start_fleet`; `apis[i]` listens on
    `ports[i]`. A test that restarts one puts the new process in its place."""

    ports: list[int]
    apis: list[subprocess.Popen[bytes]]
    workers: list[subprocess.Popen[bytes]]


@dataclass
class Processes:
    """`hub worker` and `hub serve` processes of one test; `kill_all` in a `finally` leaves none
    behind. Each process logs to `<log_dir>/<kind>-<n>.log`."""

    database_url: str
    log_dir: Path
    settings: dict[str, str]
    started: list[subprocess.Popen[bytes]] = field(default_factory=list)

    def env(self) -> dict[str, str]:
        env = {k: v for k, v in os.environ.items() if not k.startswith("HUB_")}
        return env | {
            "HUB_DATABASE_URL": self.database_url,
            "HUB_LOG_LEVEL": "warning",
            "HUB_LOG_FORMAT": "console",
            "HUB_SECRET_KEY": TEST_SECRET_KEY,
            "HUB_ALLOWED_NETWORKS": TEST_ALLOWED_NETWORKS,
            # As in tests/conftest.py: a busy test machine can keep a process's loop late for
            # a while; tests/integration/test_publisher.py tests that admission.
            "HUB_PUBLISH_MAX_LAG": "30",
            **self.settings,
        }

    def _spawn(self, kind: str, *args: str) -> subprocess.Popen[bytes]:
        log_path = self.log_dir / f"{kind}-{len(self.started) + 1}.log"
        with log_path.open("wb") as output:
            # The working directory keeps a developer's `.env` out of the picture.
            process = subprocess.Popen(
                [str(HUB), *args],
                env=self.env(),
                cwd=self.log_dir,
                stdout=output,
                stderr=subprocess.STDOUT,
            )
        self.started.append(process)
        return process

    def start_worker(self, *args: str) -> subprocess.Popen[bytes]:
        return self._spawn("worker", "worker", *args)

    def start_api(self, port: int, *args: str) -> subprocess.Popen[bytes]:
        """`hub serve --no-worker --no-migrate` on 127.0.0.1:`port` (the test's database is
        migrated already); `wait_ready` waits for it."""
        return self._spawn(
            "api", "serve", "--no-worker", "--no-migrate", "--port", str(port), *args
        )

    async def start_api_url(self) -> str:
        """`start_api` on a free port; its base URL once it is ready."""
        port = free_port()
        await self.wait_ready(self.start_api(port), port)
        return f"http://127.0.0.1:{port}"

    async def start_serve(
        self, port: int, *args: str, timeout: float = 60
    ) -> subprocess.Popen[bytes]:
        """`hub serve` (API and dispatcher) on `port` of 127.0.0.1, once `/readyz` says so."""
        process = self._spawn("serve", "serve", "--host", "127.0.0.1", "--port", str(port), *args)
        await self.wait_ready(process, port, timeout)
        return process

    async def start_fleet(self, *, apis: int, workers: int, timeout: float = 60) -> Fleet:
        """`apis` API processes (`start_api`, each on a free port) and `workers` `hub worker`
        processes, all started before any is waited for, so that they boot side by side;
        returned once every API answers `/readyz` (a worker has no readiness to wait for: the
        registry shows it, see `hub.store.processes`)."""
        ports = [free_port() for _ in range(apis)]
        fleet = Fleet(
            ports=ports,
            apis=[self.start_api(port) for port in ports],
            workers=[self.start_worker() for _ in range(workers)],
        )
        for process, port in zip(fleet.apis, fleet.ports, strict=True):
            await self.wait_ready(process, port, timeout)
        return fleet

    async def wait_ready(
        self, process: subprocess.Popen[bytes], port: int, timeout: float = 60
    ) -> None:
        """Until the API process on `port` answers `/readyz`."""
        deadline = time.monotonic() + timeout
        async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=2)) as session:
            while time.monotonic() < deadline:
                if process.poll() is not None:
                    raise AssertionError(f"hub serve exited at start:\n{self.output()}")
                with contextlib.suppress(aiohttp.ClientError, TimeoutError):
                    async with session.get(f"http://127.0.0.1:{port}/readyz") as response:
                        if response.status == 200:
                            return
                await asyncio.sleep(0.05)
        raise AssertionError(f"hub serve on {port} not ready in {timeout} s:\n{self.output()}")

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
        """Every process's output, for a failing test's report."""
        parts = []
        for path in sorted(self.log_dir.glob("*.log")):
            parts.append(f"--- {path.name}\n{path.read_text(errors='replace')[-4000:]}")
        return "\n".join(parts)


# --- a client of several API processes -----------------------------------------------------------


def numbered_events(prefix: str, count: int) -> list[dict[str, Any]]:
    """`count` `order.created` events with client ids `<prefix>-<n>`: publishing one again is a
    no-op, so a batch whose answer was lost can be sent again."""
    return [event_body(id=f"{prefix}-{n}")["data"] for n in range(count)]


#: Refusals retried in all, beyond which a 503 is final (and fails the test that counts them).
MAX_REFUSALS = 1_000


def _seconds(retry_after: str | None) -> float | None:
    """A `Retry-After` of whole seconds (what the hub sends), capped to keep a test moving."""
    if retry_after is None or not retry_after.isdigit():
        return None
    return min(float(retry_after), 5.0)


def _detail(body: bytes) -> str:
    """The `detail` of an error answer (`{"errors": [{"detail": ...}]}`), else the body."""
    try:
        return str(json.loads(body)["errors"][0]["detail"])
    except (ValueError, KeyError, IndexError, TypeError):
        return body.decode(errors="replace")[:200]


@dataclass
class Publisher:
    """Publishes batches through the API processes on `ports`, batch `i` to port `i % n` first;
    a batch that gets no answer (connection refused or dropped: a process stopping or killed)
    goes to the next port, until some process answers. A 503 with `Retry-After` (a process
    refusing work it cannot take now: admission under load, or stopping) is what a client is
    told to retry, so it is, after that many seconds, through the next port, and counted in
    `refused` by the answer's detail. Any other answer is final and counted in `statuses`, so a
    5xx shows there."""

    ports: Sequence[int]
    key: str
    statuses: Counter[int] = field(default_factory=Counter)
    failovers: int = 0
    refused: Counter[str] = field(default_factory=Counter)
    accepted: set[str] = field(default_factory=set)
    """Client ids of the events some process answered 200/202 for."""

    async def publish(
        self, session: aiohttp.ClientSession, index: int, batch: list[dict[str, Any]]
    ) -> int:
        headers = {"Authorization": f"Bearer {self.key}"}
        attempt = 0
        while True:
            port = self.ports[(index + attempt) % len(self.ports)]
            try:
                async with session.post(
                    f"http://127.0.0.1:{port}/v2/events", json={"data": batch}, headers=headers
                ) as response:
                    body = await response.read()
                    status = response.status
                    retry_after = _seconds(response.headers.get("Retry-After"))
            except (aiohttp.ClientConnectionError, TimeoutError):
                attempt += 1
                self.failovers += 1
                if attempt > 200:
                    raise AssertionError("no API process answered 200 tries") from None
                await asyncio.sleep(0.02)
                continue
            if status == 503 and retry_after is not None and self.refused.total() < MAX_REFUSALS:
                self.refused[_detail(body)] += 1
                attempt += 1
                await asyncio.sleep(retry_after)
                continue
            self.statuses[status] += 1
            if status in (200, 202):
                self.accepted.update(str(event["id"]) for event in batch)
            return status

    async def publish_all(
        self,
        batches: Sequence[list[dict[str, Any]]],
        *,
        concurrency: int = 4,
        pace: float = 0.0,
    ) -> None:
        """Every batch, `concurrency` at once; each sender waits `pace` s between batches."""
        queue = list(enumerate(batches))
        queue.reverse()
        async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=30)) as session:

            async def sender() -> None:
                while queue:
                    index, batch = queue.pop()
                    await self.publish(session, index, batch)
                    if pace:
                        await asyncio.sleep(pace)

            await asyncio.gather(*(sender() for _ in range(concurrency)))
