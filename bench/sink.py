"""The webhook sink: a loopback aiohttp server, in a process of its own, that counts deliveries.

Run as `python -m bench.sink --port-file PATH`; it binds a free loopback port and writes it to
PATH. Every POST to `/hook` answers `200 ok` at once and is filed under the `payload.data.id` of
its webhook body, an id the benchmark gives every event: `<group>:<n>`. Per group the sink keeps
how many requests arrived, when the first and the last did, and when each id first arrived
(`time.monotonic()`, which on Linux is one clock for every process, so the benchmark can
subtract its own send times from these).

- `GET /stats?group=G` → `{"count", "unique", "first", "last"}`
- `GET /times?group=G` → `{"times": {id: first arrival}}`
- `GET /sample` → the first webhook body and headers received (`{"body", "headers"}`), which the
  raw-client baseline sends again so that both measure the same requests.

The benchmark driver talks to it through `SinkProcess`.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import signal
import socket
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import aiohttp
import orjson
from aiohttp import web

HOOK_PATH = "/hook"


@dataclass
class Group:
    """The deliveries of one group of event ids."""

    count: int = 0
    first: float = 0.0
    last: float = 0.0
    times: dict[str, float] = field(default_factory=dict)


@dataclass
class Recorder:
    """The sink's state: groups by name and one sample request."""

    groups: dict[str, Group] = field(default_factory=dict)
    sample_body: bytes | None = None
    sample_headers: dict[str, str] = field(default_factory=dict)

    async def hook(self, request: web.Request) -> web.Response:
        at = time.monotonic()
        raw = await request.read()
        try:
            event_id = str(orjson.loads(raw)["payload"]["data"]["id"])
        except (orjson.JSONDecodeError, KeyError, TypeError):
            event_id = "unknown:0"
        name = event_id.partition(":")[0]
        group = self.groups.get(name)
        if group is None:
            group = self.groups[name] = Group(first=at)
        group.count += 1
        group.last = at
        group.times.setdefault(event_id, at)
        if self.sample_body is None:
            self.sample_body = raw
            self.sample_headers = {
                k: v for k, v in request.headers.items() if k.lower() not in {"host"}
            }
        return web.Response(text="ok")

    async def stats(self, request: web.Request) -> web.Response:
        group = self.groups.get(request.query.get("group", ""), Group())
        return web.json_response(
            {
                "count": group.count,
                "unique": len(group.times),
                "first": group.first,
                "last": group.last,
            }
        )

    async def times(self, request: web.Request) -> web.Response:
        group = self.groups.get(request.query.get("group", ""), Group())
        return web.Response(
            body=orjson.dumps({"times": group.times}), content_type="application/json"
        )

    async def sample(self, _request: web.Request) -> web.Response:
        if self.sample_body is None:
            return web.json_response({"errors": "nothing received yet"}, status=404)
        return web.json_response(
            {"body": self.sample_body.decode(), "headers": self.sample_headers}
        )


async def serve(port_file: Path) -> None:
    recorder = Recorder()
    app = web.Application(client_max_size=16 * 1024 * 1024)
    app.router.add_post(HOOK_PATH, recorder.hook)
    app.router.add_get("/stats", recorder.stats)
    app.router.add_get("/times", recorder.times)
    app.router.add_get("/sample", recorder.sample)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind(("127.0.0.1", 0))
    port = sock.getsockname()[1]
    await web.SockSite(runner, sock, backlog=1024).start()
    temporary = port_file.with_suffix(".tmp")
    temporary.write_text(str(port))
    temporary.rename(port_file)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    await stop.wait()
    await runner.cleanup()


def main() -> None:
    parser = argparse.ArgumentParser(description="The benchmark's webhook sink.")
    parser.add_argument("--port-file", type=Path, required=True)
    args = parser.parse_args()
    asyncio.run(serve(args.port_file))


# --- the driver's side ---------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class GroupStats:
    count: int
    unique: int
    first: float
    last: float


@dataclass(frozen=True, slots=True)
class Sample:
    body: bytes
    headers: dict[str, str]


class SinkProcess:
    """The sink as a child process, and a small HTTP client of its endpoints."""

    def __init__(self, work_dir: Path) -> None:
        self._work_dir = work_dir
        self.process: subprocess.Popen[bytes] | None = None
        self.base = ""
        self._session: aiohttp.ClientSession | None = None

    @property
    def hook_url(self) -> str:
        return f"{self.base}{HOOK_PATH}"

    @property
    def pid(self) -> int:
        assert self.process is not None
        return self.process.pid

    async def start(self, timeout: float = 15.0) -> None:
        port_file = self._work_dir / "sink.port"
        log_path = self._work_dir / "sink.log"
        with log_path.open("wb") as output:
            self.process = subprocess.Popen(  # noqa: S603 - our own interpreter and module
                [sys.executable, "-m", "bench.sink", "--port-file", str(port_file)],
                stdout=output,
                stderr=subprocess.STDOUT,
                cwd=Path(__file__).resolve().parents[1],
            )
        deadline = time.monotonic() + timeout
        while not port_file.exists():
            if self.process.poll() is not None or time.monotonic() > deadline:
                tail = log_path.read_text(errors="replace")[-2000:]
                raise RuntimeError(f"the webhook sink did not start:\n{tail}")
            await asyncio.sleep(0.05)
        self.base = f"http://127.0.0.1:{int(port_file.read_text())}"
        self._session = aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=30))

    async def stop(self) -> None:
        if self._session is not None:
            await self._session.close()
            self._session = None
        process, self.process = self.process, None
        if process is not None and process.poll() is None:
            process.terminate()
            try:
                await asyncio.wait_for(asyncio.to_thread(process.wait), 10)
            except TimeoutError:
                process.kill()
                with contextlib.suppress(subprocess.TimeoutExpired):
                    process.wait(5)

    async def _get(self, path: str, **params: str) -> Any:
        assert self._session is not None, "the sink is not started"
        async with self._session.get(f"{self.base}{path}", params=params) as response:
            response.raise_for_status()
            return orjson.loads(await response.read())

    async def stats(self, group: str) -> GroupStats:
        doc = await self._get("/stats", group=group)
        return GroupStats(int(doc["count"]), int(doc["unique"]), doc["first"], doc["last"])

    async def times(self, group: str) -> dict[str, float]:
        doc = await self._get("/times", group=group)
        return {str(k): float(v) for k, v in doc["times"].items()}

    async def sample(self) -> Sample:
        doc = await self._get("/sample")
        return Sample(doc["body"].encode(), {str(k): str(v) for k, v in doc["headers"].items()})

    async def wait_for(
        self, group: str, *, unique: int = 0, count: int = 0, timeout: float
    ) -> GroupStats:
        """Poll until `group` has `unique` distinct ids and `count` requests; bounded."""
        deadline = time.monotonic() + timeout
        while True:
            stats = await self.stats(group)
            if stats.unique >= unique and stats.count >= count:
                return stats
            if time.monotonic() > deadline:
                raise TimeoutError(
                    f"the sink got {stats.unique} of {unique} events ({stats.count} of "
                    f"{count} requests) of group {group!r} within {timeout:.0f} s"
                )
            await asyncio.sleep(0.02)


if __name__ == "__main__":
    main()
