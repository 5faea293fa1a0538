"""A lean HTTP/1.1 client for the benchmark's publishes: kept-alive connections, one request
at a time on each, nothing parsed but what the figures need.

The driver shares the machine with the hub it measures: every microsecond it spends on a
request is one the API, PostgreSQL or the sink does not get. aiohttp's client costs about
145 µs of CPU per publish here; this one, which writes a prepared request and reads the status
line, `Content-Length`, `Retry-After` and `Connection` of the answer, a fraction of that. It
speaks only what the hub answers: a body of `Content-Length` bytes (never chunked), no 1xx,
no upgrades. Anything else is a `WireError`, as is a connection closed before the answer.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import socket
from collections import deque
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import cast

#: Bytes of an answer's head at most (the hub's are a few hundred).
MAX_HEAD = 64 * 1024


class WireError(ConnectionError):
    """No (usable) answer: the connection failed or closed, or the answer was not one this
    client reads."""


@dataclass(frozen=True, slots=True)
class Answer:
    status: int
    retry_after: str | None
    body: bytes


class _Connection(asyncio.Protocol):
    """One kept-alive connection; `send` one request at a time."""

    def __init__(self) -> None:
        self.transport: asyncio.Transport | None = None
        self._buffer = bytearray()
        self._waiter: asyncio.Future[Answer] | None = None
        self._head: tuple[int, str | None, int, bool] | None = None
        self.closed = False
        self.reusable = True
        self.on_close: Callable[[], None] | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        # uvloop's transports are not subclasses of asyncio's, but have their methods.
        self.transport = cast(asyncio.Transport, transport)
        sock = transport.get_extra_info("socket")
        if sock is not None:  # a request is one write: send it without waiting for ACKs
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)

    def connection_lost(self, exc: Exception | None) -> None:
        self.closed = True
        if self.on_close is not None:
            self.on_close()
        self._fail(WireError(f"connection closed: {exc}" if exc else "connection closed"))

    def send(self, request: bytes) -> asyncio.Future[Answer]:
        assert self.transport is not None
        assert self._waiter is None
        self._waiter = asyncio.get_running_loop().create_future()
        self._buffer.clear()
        self._head = None
        self.transport.write(request)
        return self._waiter

    def data_received(self, data: bytes) -> None:
        self._buffer += data
        if self._head is None:
            end = self._buffer.find(b"\r\n\r\n")
            if end < 0:
                if len(self._buffer) > MAX_HEAD:
                    self._fail(WireError("answer head too long"))
                return
            try:
                self._head = _parse_head(bytes(self._buffer[:end]))
            except ValueError as exc:
                self._fail(WireError(str(exc)))
                return
            del self._buffer[: end + 4]
        status, retry_after, length, keep_alive = self._head
        if len(self._buffer) < length:
            return
        body = bytes(self._buffer[:length])
        self._buffer.clear()
        self._head = None
        self.reusable = keep_alive
        waiter, self._waiter = self._waiter, None
        if waiter is not None and not waiter.done():
            waiter.set_result(Answer(status, retry_after, body))

    def _fail(self, exc: Exception) -> None:
        self.reusable = False
        waiter, self._waiter = self._waiter, None
        if waiter is not None and not waiter.done():
            waiter.set_exception(exc)
        if self.transport is not None and not self.closed:
            self.transport.close()


def _parse_head(head: bytes) -> tuple[int, str | None, int, bool]:
    """(status, Retry-After, Content-Length, keep-alive) of an answer's head."""
    lines = head.split(b"\r\n")
    parts = lines[0].split(b" ", 2)
    if len(parts) < 2 or not parts[0].startswith(b"HTTP/1."):
        raise ValueError(f"not an HTTP/1 status line: {lines[0][:80]!r}")
    status = int(parts[1])
    length: int | None = None
    retry_after: str | None = None
    keep_alive = parts[0] == b"HTTP/1.1"
    for line in lines[1:]:
        name, _, value = line.partition(b":")
        name = name.strip().lower()
        if name == b"content-length":
            length = int(value)
        elif name == b"retry-after":
            retry_after = value.strip().decode("latin-1")
        elif name == b"connection":
            keep_alive = value.strip().lower() != b"close"
        elif name == b"transfer-encoding":
            raise ValueError("chunked answers are not read by this client")
    if length is None:
        raise ValueError("an answer without Content-Length")
    return status, retry_after, length, keep_alive


class Connections:
    """Kept-alive connections to `host:port`: at most `per_address` from each of the local
    `addresses` (default: one, the system's choice), so that a server's per-client cap sees as
    many clients; a request waits for a free connection."""

    def __init__(
        self, host: str, port: int, *, per_address: int, addresses: Sequence[str] = ("",)
    ) -> None:
        self.host = host
        self.port = port
        self._free: deque[_Connection] = deque()
        self._open = dict.fromkeys(addresses, 0)
        self._limit = per_address * len(self._open)
        self._slots = asyncio.Semaphore(self._limit)

    def request(self, method: str, path: str, headers: dict[str, str], body: bytes) -> bytes:
        """The bytes of a request (to `send` as many times as wanted)."""
        lines = [f"{method} {path} HTTP/1.1", f"Host: {self.host}:{self.port}"]
        lines += [f"{name}: {value}" for name, value in headers.items()]
        lines.append(f"Content-Length: {len(body)}")
        return ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1") + body

    async def send(self, request: bytes, *, timeout: float) -> Answer:
        """Send `request` on a free connection (a new one if none is); its answer, or a
        `WireError` (`TimeoutError` after `timeout` s)."""
        async with self._slots:
            connection = self._take()
            try:
                async with asyncio.timeout(timeout):
                    if connection is None:
                        connection = await self._connect()
                    answer = await connection.send(request)
            except BaseException:
                if connection is not None and connection.transport is not None:
                    connection.transport.close()
                raise
            if connection.reusable and not connection.closed:
                self._free.append(connection)
            elif connection.transport is not None:
                connection.transport.close()
            return answer

    async def open_all(self) -> None:
        """Open as many connections as this client may hold, kept alive for its requests."""
        wanted = self._limit - len(self._free)
        self._free.extend(await asyncio.gather(*(self._connect() for _ in range(wanted))))

    def _take(self) -> _Connection | None:
        while self._free:
            connection = self._free.pop()
            if not connection.closed:
                return connection
        return None

    async def _connect(self) -> _Connection:
        loop = asyncio.get_running_loop()
        address = min(self._open, key=self._open.__getitem__)  # the least used
        self._open[address] += 1  # counted at once: connections opened together spread out
        try:
            _transport, connection = await loop.create_connection(
                _Connection,
                self.host,
                self.port,
                local_addr=(address, 0) if address else None,
            )
        except BaseException as exc:
            self._open[address] -= 1
            if isinstance(exc, OSError):
                raise WireError(f"connect: {exc}") from exc
            raise
        connection.on_close = functools.partial(self._closed, address)
        return connection

    def _closed(self, address: str) -> None:
        self._open[address] -= 1

    def close(self) -> None:
        while self._free:
            connection = self._free.pop()
            if connection.transport is not None:
                with contextlib.suppress(Exception):
                    connection.transport.close()
