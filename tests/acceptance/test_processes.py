"""`--processes N`: one `hub serve` command runs N copies on one port, each a process of the
deployment in its own right; SIGTERM stops them all gracefully, and a copy that dies takes the
command down with it (whatever supervises the hub then restarts it whole)."""

from __future__ import annotations

import contextlib
import os
import signal
from collections.abc import Iterator
from pathlib import Path

import aiohttp
import pytest
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncEngine

from hub.store.models import HubProcess
from tests.conftest import event_body
from tests.support.processes import Processes, api_on, free_port, one_fleet_at_a_time
from tests.support.sinks import Sink, running_sink
from tests.support.waiting import eventually

FLEET = {"HUB_HEARTBEAT_INTERVAL": "0.5", "HUB_HEARTBEAT_STALE_AFTER": "2"}
pytestmark = pytest.mark.timeout(240)


@pytest.fixture(autouse=True)
def _one_fleet_at_a_time() -> Iterator[None]:
    with one_fleet_at_a_time():
        yield


async def live(engine: AsyncEngine, role: str) -> dict[int, str | None]:
    """pid → address of the live processes of `role`."""
    async with engine.connect() as conn:
        rows = await conn.execute(
            select(HubProcess.pid, HubProcess.address).where(HubProcess.role == role)
        )
        return {row.pid: row.address for row in rows}


async def copies_of(engine: AsyncEngine, role: str, count: int) -> dict[int, str | None]:
    """The live processes of `role`, once there are `count` of them."""
    found: dict[int, str | None] = {}

    async def enough() -> bool:
        found.update(await live(engine, role))
        return len(found) == count

    await eventually(enough, timeout=30, what=f"{count} live {role} processes")
    return found


def listening_on(pid: int, port: int) -> bool:
    """Whether process `pid` holds a TCP socket listening on `port` (from /proc)."""
    listeners = set()
    for line in Path("/proc/net/tcp").read_text().splitlines()[1:]:
        fields = line.split()
        local, state, inode = fields[1], fields[3], fields[9]
        if state == "0A" and int(local.rpartition(":")[2], 16) == port:  # 0A: LISTEN
            listeners.add(f"socket:[{inode}]")
    held = set()
    for fd in Path(f"/proc/{pid}/fd").iterdir():
        with contextlib.suppress(OSError):
            held.add(os.readlink(fd))
    return bool(listeners & held)


def gone(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return True
    return False


async def test_serve_with_two_processes_shares_one_port_and_stops_whole_on_sigterm(
    fresh_db: str, engine: AsyncEngine, tmp_path: Path
) -> None:
    procs = Processes(fresh_db, tmp_path, FLEET)
    port = free_port()
    async with running_sink(Sink()) as sink, api_on(fresh_db, engine) as api:
        await api.create_webhook(sink.url)
        try:
            parent = await procs.start_serve(port, "--processes", "2")
            copies = await copies_of(engine, "api+worker", 2)
            assert parent.pid not in copies, "the parent only supervises"
            assert set(copies.values()) == {f"127.0.0.1:{port}"}
            # Each copy has its own listener on the one port (SO_REUSEPORT): the kernel spreads
            # new connections over them. A copy registers (its first heartbeat) just before it
            # listens, so the listeners may come a moment after the rows.
            await eventually(
                lambda: all(listening_on(pid, port) for pid in copies),
                timeout=10,
                what="each copy listening on the port",
            )
            assert not listening_on(parent.pid, port)

            headers = {"Authorization": f"Bearer {api.tenant.keys['publish']}"}
            url = f"http://127.0.0.1:{port}/v2/events"
            for number in range(40):
                connector = aiohttp.TCPConnector(force_close=True)
                async with aiohttp.ClientSession(connector=connector) as session:
                    body = event_body(id=f"order-{number}")
                    async with session.post(url, json=body, headers=headers) as response:
                        assert response.status == 202, await response.text()
            await eventually(lambda: len(sink.hits) == 40, what="40 deliveries")

            parent.send_signal(signal.SIGTERM)
            assert await procs.wait_exit(parent, 30) == 0, procs.output()
            assert await live(engine, "api+worker") == {}, "each copy stopped gracefully"
            assert all(gone(pid) for pid in copies)
        finally:
            procs.kill_all()


async def test_a_copy_that_dies_stops_the_others_and_the_command_fails(
    fresh_db: str, engine: AsyncEngine, tmp_path: Path
) -> None:
    procs = Processes(fresh_db, tmp_path, FLEET)
    try:
        parent = procs.start_worker("--processes", "2")
        copies = await copies_of(engine, "worker", 2)
        victim, survivor = sorted(copies)
        os.kill(victim, signal.SIGKILL)
        assert await procs.wait_exit(parent, 30) != 0, "a dead copy fails the command"
        await eventually(lambda: gone(survivor), what="the other copy stopped")
    finally:
        procs.kill_all()


async def test_copies_stop_gracefully_when_their_parent_is_killed(
    fresh_db: str, engine: AsyncEngine, tmp_path: Path
) -> None:
    procs = Processes(fresh_db, tmp_path, FLEET)
    try:
        parent = procs.start_worker("--processes", "2")
        copies = await copies_of(engine, "worker", 2)
        await procs.sigkill(parent)
        await eventually(lambda: all(map(gone, copies)), what="both copies stopped")
        # Gracefully: each left the registry on its way out.
        assert await live(engine, "worker") == {}
    finally:
        procs.kill_all()


async def test_processes_needs_a_fixed_port_and_a_sane_count(fresh_db: str, tmp_path: Path) -> None:
    procs = Processes(fresh_db, tmp_path, FLEET)
    try:
        serve = procs.start_api(0, "--processes", "2")
        assert await procs.wait_exit(serve, 30) == 2
        assert "--processes needs a fixed port" in procs.output()
        assert await procs.wait_exit(procs.start_worker("--processes", "0"), 30) == 2
        assert "processes" in procs.output()
    finally:
        procs.kill_all()
