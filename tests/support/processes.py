"""The hub as processes: real `hub worker` (and `hub serve --no-worker`) processes, and the API
in the test process.

The processes are started from this virtualenv's console script; the test process hosts the API
(to set data up the way a client would), the sink the hub delivers to (`tests.support.sinks`),
and read-only looks at the jobs and logs tables (`tests.support.queue`).
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import AsyncIterator
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
from tests.support.waiting import eventually

HUB = Path(sys.executable).with_name("hub")


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


@dataclass
class Processes:
    """`hub worker` processes of one test; `kill_all` in a `finally` leaves none behind."""

    database_url: str
    log_dir: Path
    settings: dict[str, str]
    started: list[subprocess.Popen[bytes]] = field(default_factory=list)

    def start_worker(self) -> subprocess.Popen[bytes]:
        return self._start("worker", "worker")

    async def start_api(self) -> str:
        """A `hub serve --no-worker` process on a free loopback port; its base URL once it
        answers `/healthz`."""
        with socket.socket() as probe:
            probe.bind(("127.0.0.1", 0))
            port = probe.getsockname()[1]
        process = self._start(
            "api",
            "serve",
            "--no-worker",
            "--no-migrate",
            "--host",
            "127.0.0.1",
            "--port",
            str(port),
        )
        base = f"http://127.0.0.1:{port}"

        async def up() -> bool:
            if process.poll() is not None:
                raise AssertionError(f"hub serve exited:\n{self.output()}")
            try:
                async with (
                    aiohttp.ClientSession() as session,
                    session.get(f"{base}/healthz") as response,
                ):
                    return response.status == 200
            except aiohttp.ClientError:
                return False

        await eventually(up, timeout=30, what="hub serve answering", interval=0.1)
        return base

    def _start(self, name: str, *args: str) -> subprocess.Popen[bytes]:
        env = {k: v for k, v in os.environ.items() if not k.startswith("HUB_")}
        env |= {
            "HUB_DATABASE_URL": self.database_url,
            "HUB_LOG_LEVEL": "warning",
            "HUB_LOG_FORMAT": "console",
            "HUB_SECRET_KEY": TEST_SECRET_KEY,
            "HUB_ALLOWED_NETWORKS": TEST_ALLOWED_NETWORKS,
            "HUB_API_RATE_LIMIT": "0",
            **self.settings,
        }
        log_path = self.log_dir / f"{name}-{len(self.started) + 1}.log"
        with log_path.open("wb") as output:
            # The working directory keeps a developer's `.env` out of the picture.
            process = subprocess.Popen(
                [str(HUB), *args],
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
        """Every process's output, for a failing test's report."""
        parts = []
        for path in sorted([*self.log_dir.glob("worker-*.log"), *self.log_dir.glob("api-*.log")]):
            parts.append(f"--- {path.name}\n{path.read_text(errors='replace')[-4000:]}")
        return "\n".join(parts)
