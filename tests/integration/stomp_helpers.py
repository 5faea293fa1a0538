"""What the STOMP tests share: a stomp.py subscriber on the real RabbitMQ STOMP plugin, broker
users of a test's own (rabbitmqctl), a tiny fake STOMP server for what RabbitMQ will not do, and
deliveries to send.

Every test works on destinations and users with unique names, so the tests run in parallel
against one broker without seeing each other.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import queue
import secrets
import shutil
import socket
import ssl
import subprocess
import threading
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any
from uuid import UUID, uuid4

import aio_pika
import pytest
import stomp

from deliverers.base import Delivery, Target
from deliverers.config import StompConfig

BROKER_HOST = os.environ.get("RABBITMQ_HOST", "127.0.0.1")
STOMP_PORT = int(os.environ.get("STOMP_PORT", "61613"))
AMQP_URL = f"amqp://guest:guest@{BROKER_HOST}:{os.environ.get('RABBITMQ_PORT', '5672')}/"
BROKER = f"stomp://{BROKER_HOST}:{STOMP_PORT}"

PAYLOAD: dict[str, Any] = {
    "data": {"type": "order", "id": "1d67160d-0000-4000-8000-000000000001", "status": "paid"},
    "included": {"items": [{"type": "order_item", "id": "395763ee", "name": "Caf\u00e9"}]},
}


# --- deliveries ------------------------------------------------------------------------------


def unique(prefix: str = "hub-test") -> str:
    return f"{prefix}-{secrets.token_hex(6)}"


def stomp_config(
    destination: str,
    *,
    addresses: list[str] | None = None,
    username: str | None = "guest",
    password: str | None = "guest",  # noqa: S107 - RabbitMQ's default test user
) -> StompConfig:
    return StompConfig(
        addresses=addresses or [BROKER],
        destination=destination,
        username=username,
        password=password,
    )


def make_delivery(
    config: StompConfig,
    *,
    triggered_by: str = "order.paid",
    attempt: int = 1,
    payload: dict[str, Any] | None = None,
    job_id: UUID | None = None,
) -> Delivery:
    target = Target(
        id=uuid4(),
        store_id=uuid4(),
        name="Order paid to the ERP",
        description=None,
        integration_type="stomp",
        configuration=config,
        signing_secrets=(),
    )
    return Delivery(
        job_id=job_id or uuid4(),
        attempt=attempt,
        event_id=uuid4(),
        triggered_by=triggered_by,
        payload=PAYLOAD if payload is None else payload,
        event_time=datetime.now(UTC),
        target=target,
    )


def closed_port() -> int:
    """A loopback port nothing listens on (bound, then released)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
    return port


# --- a subscriber on the real broker --------------------------------------------------------


@dataclass(frozen=True)
class Message:
    headers: dict[str, str]
    body: str


class Subscriber(stomp.ConnectionListener):  # type: ignore[misc]
    """A stomp.py consumer of one destination; what arrives lands in a thread-safe queue."""

    def __init__(self, destination: str) -> None:
        self.destination = destination
        self.messages: queue.Queue[Message] = queue.Queue()
        self._subscribed = threading.Event()
        self._receipt = uuid4().hex
        self._conn = stomp.Connection12(
            [(BROKER_HOST, STOMP_PORT)], vhost="/", prefer_localhost=False
        )
        self._conn.set_listener("test", self)

    def on_message(self, frame: Any) -> None:
        self.messages.put(Message(dict(frame.headers), frame.body))

    def on_receipt(self, frame: Any) -> None:
        if frame.headers.get("receipt-id") == self._receipt:
            self._subscribed.set()

    def start(self) -> None:
        self._conn.connect("guest", "guest", wait=True)
        self._conn.subscribe(self.destination, id="1", ack="auto", receipt=self._receipt)
        if not self._subscribed.wait(5):
            raise AssertionError(
                f"the broker did not confirm the subscription to {self.destination}"
            )

    def stop(self) -> None:
        with contextlib.suppress(Exception):
            self._conn.disconnect()

    async def next(self, timeout: float = 5.0) -> Message:
        try:
            return await asyncio.to_thread(self.messages.get, True, timeout)
        except queue.Empty:
            raise AssertionError(f"nothing arrived on {self.destination} in {timeout} s") from None

    async def assert_no_more(self, wait: float = 0.3) -> None:
        await asyncio.sleep(wait)
        assert self.messages.empty(), f"unexpected message: {self.messages.get_nowait()}"


@contextlib.asynccontextmanager
async def subscribed(destination: str) -> AsyncIterator[Subscriber]:
    """Subscribed (the broker has confirmed it) to `destination` for the block's duration."""
    subscriber = Subscriber(destination)
    await asyncio.to_thread(subscriber.start)
    try:
        yield subscriber
    finally:
        await asyncio.to_thread(subscriber.stop)


async def delete_queue(name: str) -> None:
    """Remove a durable queue that a `/queue/<name>` destination made, so runs leave nothing."""
    connection = await aio_pika.connect(AMQP_URL)
    async with connection:
        channel = await connection.channel()
        await channel.queue_delete(name)


@contextlib.asynccontextmanager
async def broker_queue() -> AsyncIterator[str]:
    """A `/queue/<unique>` destination, deleted afterwards."""
    name = unique()
    try:
        yield f"/queue/{name}"
    finally:
        await delete_queue(name)


# --- broker administration -------------------------------------------------------------------


async def rabbitmqctl(*args: str) -> str:
    executable = shutil.which("rabbitmqctl")
    if executable is None:
        pytest.skip("needs rabbitmqctl on the broker's machine")
    process = await asyncio.create_subprocess_exec(
        executable,
        "-q",
        *args,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )
    out, err = await asyncio.wait_for(process.communicate(), 30)
    if process.returncode != 0:
        raise AssertionError(f"rabbitmqctl {args[0]} failed: {err.decode().strip()}")
    return out.decode()


@contextlib.asynccontextmanager
async def broker_user() -> AsyncIterator[tuple[str, str]]:
    """A broker user of the test's own, allowed everything on `/`; deleted afterwards."""
    user, password = unique("hub-user"), secrets.token_hex(12)
    await rabbitmqctl("add_user", user, password)
    try:
        await rabbitmqctl("set_permissions", "-p", "/", user, ".*", ".*", ".*")
        yield user, password
    finally:
        await rabbitmqctl("delete_user", user)


async def stomp_connections_of(user: str) -> list[str]:
    """The Erlang pids of `user`'s STOMP connections, as `rabbitmqctl` lists them."""
    out = await rabbitmqctl(
        "list_stomp_connections", "--no-table-headers", "auth_login", "connection"
    )
    rows = (line.split("\t") for line in out.splitlines() if line.strip())
    return [row[1] for row in rows if len(row) == 2 and row[0] == user]


async def drop_stomp_connections_of(user: str) -> list[str]:
    """Make the broker drop `user`'s STOMP connections, as a failing broker would; their pids.

    Killing the connection's process on the broker sends the client an ERROR ("AMQP connection
    died") and closes its socket from the broker's side; no other test's connection is touched.
    """
    pids = await stomp_connections_of(user)
    for pid in pids:
        await rabbitmqctl("eval", f'exit(rabbit_misc:string_to_pid("{pid}"), kill).')
    return pids


# --- a fake STOMP server ---------------------------------------------------------------------


@dataclass(frozen=True)
class Frame:
    command: str
    headers: dict[str, str]
    body: bytes


def _unescape(value: str) -> str:
    table = {"\\n": "\n", "\\r": "\r", "\\c": ":", "\\\\": "\\"}
    out, i = [], 0
    while i < len(value):
        pair = value[i : i + 2]
        if pair in table:
            out.append(table[pair])
            i += 2
        else:
            out.append(value[i])
            i += 1
    return "".join(out)


def parse_frame(raw: bytes) -> Frame:
    head, _, body = raw.partition(b"\n\n")
    lines = head.decode().replace("\r\n", "\n").split("\n")
    headers: dict[str, str] = {}
    for line in lines[1:]:
        key, _, value = line.partition(":")
        headers.setdefault(_unescape(key), _unescape(value))
    return Frame(lines[0], headers, body)


def render_frame(command: str, headers: dict[str, str], body: bytes = b"") -> bytes:
    lines = [command, *(f"{key}:{value}" for key, value in headers.items())]
    return ("\n".join(lines) + "\n\n").encode() + body + b"\x00"


@dataclass
class FakeBroker:
    """A loopback STOMP 1.2 server that speaks just enough: CONNECT/STOMP → CONNECTED (unless
    `answer_connect` is off), SEND → RECEIPT after `receipt_delay` (unless `confirm` is off), or
    an ERROR for a destination in `reject` (naming the receipt only if `error_names_receipt`),
    DISCONNECT → RECEIPT and close. `ssl_context` makes it a TLS server."""

    confirm: bool = True
    answer_connect: bool = True
    receipt_delay: float = 0.0
    reject: frozenset[str] = frozenset()
    error_names_receipt: bool = False
    ssl_context: ssl.SSLContext | None = None
    frames: list[Frame] = field(default_factory=list)
    accepted: int = 0
    """Connections that completed the STOMP handshake."""
    live: int = 0
    """Of those, how many are still open."""
    port: int = 0
    _server: asyncio.Server | None = None
    _writers: set[asyncio.StreamWriter] = field(default_factory=set)
    _tasks: set[asyncio.Task[None]] = field(default_factory=set)

    @property
    def address(self) -> str:
        scheme = "stomp+ssl" if self.ssl_context else "stomp"
        return f"{scheme}://127.0.0.1:{self.port}"

    def sent(self) -> list[Frame]:
        return [frame for frame in self.frames if frame.command == "SEND"]

    async def __aenter__(self) -> FakeBroker:
        self._server = await asyncio.start_server(self._serve, "127.0.0.1", 0, ssl=self.ssl_context)
        self.port = self._server.sockets[0].getsockname()[1]
        return self

    async def __aexit__(self, *_exc: object) -> None:
        assert self._server is not None
        self._server.close()
        self.drop()
        if self._tasks:
            await asyncio.wait(self._tasks, timeout=2)
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._server.wait_closed(), 2)

    def drop(self) -> None:
        """Close every client connection at once, as a crashing broker would."""
        for writer in self._writers:
            writer.transport.abort()

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        assert task is not None
        self._tasks.add(task)
        self._writers.add(writer)
        connected = False
        try:
            while True:
                raw = (await reader.readuntil(b"\x00"))[:-1].lstrip(b"\r\n")
                if not raw:
                    continue
                frame = parse_frame(raw)
                self.frames.append(frame)
                if frame.command in ("CONNECT", "STOMP"):
                    if self.answer_connect:
                        connected = True
                        self.accepted += 1
                        self.live += 1
                        headers = {"version": "1.2", "heart-beat": "0,0", "server": "fake/1"}
                        writer.write(render_frame("CONNECTED", headers))
                elif frame.command == "SEND":
                    self._answer_send(frame, writer)
                elif frame.command == "DISCONNECT":
                    receipt = frame.headers.get("receipt")
                    if receipt:
                        writer.write(render_frame("RECEIPT", {"receipt-id": receipt}))
                        await writer.drain()
                    break
                await writer.drain()
        except (asyncio.IncompleteReadError, ConnectionError, ssl.SSLError):
            pass
        finally:
            if connected:
                self.live -= 1
            writer.close()
            self._writers.discard(writer)
            self._tasks.discard(task)

    def _answer_send(self, frame: Frame, writer: asyncio.StreamWriter) -> None:
        receipt = frame.headers.get("receipt")
        destination = frame.headers.get("destination", "")
        if destination in self.reject:
            headers = {"message": "Unknown destination", "content-type": "text/plain"}
            if self.error_names_receipt and receipt:
                headers["receipt-id"] = receipt
            writer.write(render_frame("ERROR", headers, f"{destination} is not allowed".encode()))
        elif self.confirm and receipt:
            asyncio.get_running_loop().call_later(
                self.receipt_delay,
                lambda: writer.write(render_frame("RECEIPT", {"receipt-id": receipt})),
            )


# --- TLS ---------------------------------------------------------------------------------------
