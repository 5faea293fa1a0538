"""Slow and greedy clients, on real sockets against the web server as `hub serve` runs it
(`hub.runner.serving`): a client dripping its headers or its body is cut off within the
documented timeouts, and one address cannot hold more than its share of connections."""

from __future__ import annotations

import asyncio
import contextlib
import socket
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any

import pytest
from sqlalchemy.ext.asyncio import AsyncEngine

from hub.runner import serving
from hub.web import create_app
from tests.conftest import Tenant, make_tenant, settings_for

HEADER_TIMEOUT = 1.0
BODY_TIMEOUT = 1.0
#: How much later than its timeout a connection may be closed on a busy machine.
SLACK = 1.5


@dataclass
class Served:
    port: int
    tenant: Tenant

    async def connect(self, source: str = "127.0.0.1") -> tuple[Any, Any]:
        return await asyncio.open_connection("127.0.0.1", self.port, local_addr=(source, 0))


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
    return port


@contextlib.asynccontextmanager
async def served(shared_db: str, engine: AsyncEngine, **overrides: Any) -> AsyncIterator[Served]:
    values = {"header_timeout": HEADER_TIMEOUT, "body_timeout": BODY_TIMEOUT} | overrides
    settings = settings_for(shared_db, **values)
    port = _free_port()
    async with serving(create_app(settings, engine), settings, "127.0.0.1", port):
        yield Served(port, await make_tenant(engine))


@pytest.fixture
async def hub(shared_db: str, shared_engine: AsyncEngine) -> AsyncIterator[Served]:
    async with served(shared_db, shared_engine) as hub:
        yield hub


async def closed_after(reader: Any, *, within: float) -> tuple[float, bytes]:
    """Seconds until the server closes the connection, and everything it sent before."""
    started = time.monotonic()
    received = b""
    async with asyncio.timeout(within):
        while chunk := await reader.read(65536):
            received += chunk
    return time.monotonic() - started, received


async def drip(writer: Any, chunks: list[bytes], every: float) -> None:
    """Send `chunks` one at a time, `every` seconds apart, until the server hangs up."""
    with contextlib.suppress(ConnectionError):
        for chunk in chunks:
            writer.write(chunk)
            await writer.drain()
            await asyncio.sleep(every)


# --- headers -------------------------------------------------------------------------------------


async def test_a_client_dripping_its_headers_is_closed_within_the_header_timeout(
    hub: Served,
) -> None:
    # The timeout runs from each connection's opening: opening 20 may take a while on a busy
    # machine, so each close is measured from its own connection's opening.
    lorises, opened = [], []
    for _ in range(20):
        lorises.append(await hub.connect())
        opened.append(time.monotonic())
    started = time.monotonic()
    headers = [b"GET /healthz HTTP/1.1\r\nHost: hub\r\n"] + [b"X-Slow: still-coming\r\n"] * 100
    drips = [asyncio.create_task(drip(writer, headers, 0.2)) for _, writer in lorises]

    async def closed_at(reader: asyncio.StreamReader) -> tuple[float, bytes]:
        _, received = await closed_after(reader, within=HEADER_TIMEOUT + SLACK + 2)
        return time.monotonic(), received

    try:
        closes = await asyncio.gather(*(closed_at(reader) for reader, _ in lorises))
    finally:
        for task in drips:
            task.cancel()
        for _, writer in lorises:
            writer.close()

    elapsed = time.monotonic() - started
    assert all(received == b"" for _, received in closes), "no answer: the request never came"
    lived = [at - since for (at, _), since in zip(closes, opened, strict=True)]
    assert min(lived) >= HEADER_TIMEOUT * 0.9, lived
    assert elapsed <= HEADER_TIMEOUT + SLACK, f"the last one closed after {elapsed:.2f} s"


async def test_a_connection_that_sends_nothing_is_closed_within_the_header_timeout(
    hub: Served,
) -> None:
    reader, writer = await hub.connect()

    seconds, received = await closed_after(reader, within=HEADER_TIMEOUT + SLACK + 2)
    writer.close()

    assert received == b""
    assert HEADER_TIMEOUT * 0.9 <= seconds <= HEADER_TIMEOUT + SLACK


async def test_a_kept_alive_connection_is_served_then_closed_when_idle(hub: Served) -> None:
    reader, writer = await hub.connect()
    writer.write(b"GET /healthz HTTP/1.1\r\nHost: hub\r\n\r\n")
    await writer.drain()

    seconds, received = await closed_after(reader, within=HEADER_TIMEOUT + SLACK + 2)
    writer.close()

    assert received.startswith(b"HTTP/1.1 200 OK\r\n")
    assert HEADER_TIMEOUT * 0.9 <= seconds <= HEADER_TIMEOUT + SLACK


# --- bodies --------------------------------------------------------------------------------------


def _post(key: str, length: int) -> bytes:
    return (
        f"POST /v2/events HTTP/1.1\r\nHost: hub\r\nAuthorization: Bearer {key}\r\n"
        f"Content-Type: application/json\r\nContent-Length: {length}\r\n\r\n"
    ).encode()


@pytest.mark.parametrize("role", ["publish", "unknown"])
async def test_a_client_dripping_its_body_is_cut_off_within_the_body_timeout(
    hub: Served, role: str
) -> None:
    key = hub.tenant.keys.get(role, "hub_000000000000_" + "A" * 43)
    reader, writer = await hub.connect()
    body = b'{"data": {"type": "event", "triggered_by": "order.created", "payload": {}}}'
    started = time.monotonic()
    dripping = asyncio.create_task(
        drip(writer, [_post(key, len(body)), *(body[i : i + 1] for i in range(len(body)))], 0.1)
    )

    try:
        _, received = await closed_after(reader, within=BODY_TIMEOUT + SLACK + 3)
    finally:
        dripping.cancel()
        writer.close()

    elapsed = time.monotonic() - started
    assert elapsed <= BODY_TIMEOUT + SLACK, f"closed after {elapsed:.2f} s"
    if role == "publish":
        # Its key is good: the hub waits for the body, then answers 408 and hangs up.
        assert received.startswith(b"HTTP/1.1 408 Request Timeout\r\n"), received[:200]
        assert b"The request body did not arrive within 1 s (HUB_BODY_TIMEOUT)" in received
        assert b"Connection: close" in received
    else:
        # Refused before its body is read: the answer is at once, the hang-up at the deadline.
        assert received.startswith(b"HTTP/1.1 401 Unauthorized\r\n"), received[:200]


async def test_a_body_that_arrives_in_time_is_served(hub: Served) -> None:
    reader, writer = await hub.connect()
    body = b'{"data": {"type": "event", "triggered_by": "order.created", "payload": {}}}'
    writer.write(_post(hub.tenant.keys["publish"], len(body)) + body[:10])
    await writer.drain()
    await asyncio.sleep(BODY_TIMEOUT / 2)
    writer.write(body[10:])
    await writer.drain()

    status = await asyncio.wait_for(reader.readline(), 5)
    writer.close()

    assert status == b"HTTP/1.1 202 Accepted\r\n"


# --- connections per address ---------------------------------------------------------------------


async def test_one_address_holds_at_most_its_share_of_connections(
    shared_db: str, shared_engine: AsyncEngine
) -> None:
    async with served(
        shared_db, shared_engine, max_connections_per_client=5, header_timeout=10
    ) as hub:
        held = [await hub.connect() for _ in range(5)]
        extra = [await hub.connect() for _ in range(3)]
        other_address = await hub.connect("127.0.0.2")

        for reader, _ in extra:  # closed on arrival, before a byte is read
            seconds, received = await closed_after(reader, within=2)
            assert received == b""
            assert seconds < 1
        # The held ones and another address's are served.
        for reader, writer in [*held, other_address]:
            writer.write(b"GET /healthz HTTP/1.1\r\nHost: hub\r\n\r\n")
            await writer.drain()
            assert await asyncio.wait_for(reader.readline(), 5) == b"HTTP/1.1 200 OK\r\n"
        # Once one of them goes, the address may connect again.
        held[0][1].close()
        await held[0][1].wait_closed()

        async def admitted() -> bool:
            reader, writer = await hub.connect()
            writer.write(b"GET /healthz HTTP/1.1\r\nHost: hub\r\nConnection: close\r\n\r\n")
            with contextlib.suppress(ConnectionError):
                await writer.drain()
            line = await asyncio.wait_for(reader.readline(), 5)
            writer.close()
            return bool(line == b"HTTP/1.1 200 OK\r\n")

        deadline = time.monotonic() + 5
        while not await admitted():
            assert time.monotonic() < deadline, "a freed slot was never given back"
            await asyncio.sleep(0.05)
        for _, writer in [*held[1:], *extra, other_address]:
            writer.close()


def test_the_defaults_are_documented_ones() -> None:
    from hub.settings import Settings

    settings = Settings(_env_file=None)

    assert settings.header_timeout == 10
    assert settings.body_timeout == 30
    assert settings.max_connections_per_client == 256
