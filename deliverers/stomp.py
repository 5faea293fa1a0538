"""The STOMP deliverer: send each job, as a CloudEvent, to a destination on a STOMP 1.2 broker.

Built on stomp.py, which is blocking and reads each connection on a receiver thread of its own.
The event loop never blocks: connecting, sending and closing run in worker threads
(`asyncio.to_thread`), and the receiver thread hands RECEIPT, ERROR and disconnect events back to
the loop with `loop.call_soon_threadsafe`, where they settle asyncio futures.

**Connections.** One long-lived connection per (addresses, username, password), opened by the
first delivery that needs it and shared by every integration with those settings; an
`asyncio.Lock` per connection makes concurrent deliveries wait for one connect instead of
opening several. The addresses are tried in the configured order and the first that completes
the STOMP handshake wins (`stomp+ssl://` ones over TLS, the certificate checked against the
system's CAs). A login refused (an ERROR frame answering CONNECT) ends the search: the other
brokers would see the same credentials. When the connection drops (the broker closes it, or
heart-beats, 10 s each way, stop arriving) the next delivery reconnects, trying the addresses in
order again. A connection unused for `idle_timeout` seconds is closed.

**Frames.** CONNECT carries `login`/`passcode`, `heart-beat` and `host` (the virtual host, `/`
by default, which RabbitMQ requires). Each attempt is one SEND to the integration's destination:

| header | value |
|---|---|
| `content-type` | `application/json` |
| `persistent` | `true` |
| `receipt` | a fresh id per attempt |
| `hub-event-type` | the event key, e.g. `order.paid` |
| `hub-job-id` | the job id: the CloudEvent's `id`, the same on every attempt |
| `hub-event-id` | the id of the published event |
| `hub-attempt` | the attempt number, from 1 |

The body is the CloudEvent of `deliverers.cloudevent`. An attempt succeeds only when the broker
answers its SEND with a RECEIPT within `timeout`, which bounds the whole attempt, connecting
included; `DeliveryResult.body` is then `receipt <id>`. Anything else (no connection, a refused
login, a TLS failure, an ERROR frame, the connection lost before the RECEIPT, no RECEIPT in time)
fails the attempt with a specific `error_detail`, and the job is retried.

**Which SEND an ERROR is about.** An ERROR naming a receipt fails that SEND. RabbitMQ's name
none (and it keeps the connection open after, say, an unknown destination), while it sends a
SEND's RECEIPT only once the message is confirmed, so an ERROR may overtake the receipts of
SENDs before it. An ERROR is therefore pinned on the one SEND still unconfirmed among those that
were awaiting an answer when it came: at once if there was one, else once the others' receipts
have cleared them (or on whichever of them times out first).
"""

from __future__ import annotations

import asyncio
import contextlib
import errno
import selectors
import socket
import ssl
import threading
import time
import uuid
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, ClassVar
from urllib.parse import urlsplit

import stomp
import stomp.connect
import stomp.exception
import stomp.protocol
import stomp.transport
import stomp.utils
import structlog

from deliverers.base import Delivery, DeliveryResult
from deliverers.cloudevent import build_cloudevent, encode
from deliverers.config import StompConfig
from hub.errors import TargetRefused
from hub.ssrf import Network, SsrfGuard

logger = structlog.get_logger(__name__)

CONTENT_TYPE = "application/json"
_CLOSE_GRACE = 2.0
"""Seconds a closing connection waits for the broker's RECEIPT of DISCONNECT."""
_REASON_LIMIT = 300
_RECV_BYTES = 16384
_BACKSTOP = 0.25
"""Seconds past its deadline a delivery waits for a connect, which ends by the deadline itself
(and says why better than a bare timeout)."""


@dataclass(frozen=True, slots=True)
class _Address:
    url: str
    host: str
    port: int
    tls: bool

    @classmethod
    def parse(cls, url: str) -> _Address:
        parts = urlsplit(url)
        if parts.hostname is None or parts.port is None:  # StompConfig has checked already
            raise ValueError(f"{url!r} is not a stomp://host:port address")
        return cls(url, parts.hostname, parts.port, parts.scheme == "stomp+ssl")


@dataclass(frozen=True, slots=True)
class _Key:
    """What one shared connection is for."""

    addresses: tuple[str, ...]
    username: str | None
    password: str | None = field(repr=False)


class _ConnectFailed(Exception):
    """No address completed the handshake; `detail` says why, address by address."""

    def __init__(self, detail: str) -> None:
        super().__init__(detail)
        self.detail = detail


class _Transport(stomp.transport.Transport):  # type: ignore[misc]
    """stomp.py's socket transport for exactly one address, keeping why it could not connect.

    stomp.py's own `attempt_connection` reorders its addresses (local ones first), logs why each
    failed and raises a bare `ConnectFailedException`; the hub tries its addresses in the
    configured order and needs each reason for `error_detail`. This one connects once, within
    `timeout`, and keeps the failure in `failure`; a TLS socket is then driven without blocking
    by the receiver thread, exactly as stomp.py does after its own handshake.

    On a TLS socket stomp.py takes the end of the stream for "no data yet" and never notices the
    broker closing; `receive` stops the receiver loop there, so the drop is reported at once.
    """

    def __init__(
        self,
        address: _Address,
        *,
        timeout: float,
        virtual_host: str | None,
        ssl_context: ssl.SSLContext,
        targets: tuple[str, ...] = (),
    ) -> None:
        host_and_port = (address.host, address.port)
        super().__init__(
            [host_and_port],
            prefer_localhost=False,
            try_loopback_connect=False,
            reconnect_attempts_max=1,
            timeout=timeout,
            vhost=virtual_host,
        )
        self.failure: OSError | None = None
        self._address = address
        self._connect_timeout = timeout
        self._ssl_context = ssl_context
        # The SSRF guard's vetted addresses of the host: connected to as they are, in order.
        self._targets = targets or (address.host,)
        if address.tls:
            # Tells stomp.py's `disconnect_socket` to end the TLS session properly.
            self.set_ssl(for_hosts=[host_and_port])

    def attempt_connection(self) -> None:
        self.connection_error = False
        address = self._address
        sock: socket.socket | None = None
        try:
            for index, target in enumerate(self._targets):
                try:
                    sock = socket.create_connection((target, address.port), self._connect_timeout)
                    break
                except OSError:
                    if index == len(self._targets) - 1:
                        raise
            assert sock is not None
            if address.tls:
                sock = self._ssl_context.wrap_socket(sock, server_hostname=address.host)
        except OSError as error:
            if sock is not None:
                sock.close()
            self.failure = error
            raise stomp.exception.ConnectFailedException(str(error)) from error
        if address.tls:
            self.send_queue = stomp.utils.PollableQueue()
            self.sel = selectors.DefaultSelector()
            self.sel.register(self.send_queue, selectors.EVENT_READ)
            self.sel.register(sock, selectors.EVENT_READ)
            self.blocking = False
        sock.setblocking(self.blocking)
        self.socket = sock
        self.current_host_and_port = (address.host, address.port)

    def receive(self) -> bytes | None:
        if not self._address.tls:
            data: bytes | None = super().receive()
            return data
        try:
            data = self.socket.recv(_RECV_BYTES)
        except (ssl.SSLWantReadError, ssl.SSLWantWriteError):
            raise  # no whole TLS record yet: stomp.py waits for the socket
        except OSError:
            self.running = False
            raise
        if not data:  # the end of the stream: close_notify or EOF
            self.running = False
        return data


class _Connection(stomp.connect.StompConnection12):  # type: ignore[misc]
    """A stomp.py STOMP 1.2 connection over a `_Transport`."""

    def __init__(self, transport: _Transport, heartbeats: tuple[int, int]) -> None:
        # What `StompConnection12.__init__` does, with our transport instead of a new one.
        stomp.connect.BaseConnection.__init__(self, transport)
        stomp.protocol.Protocol12.__init__(self, transport, heartbeats)


@dataclass(eq=False, slots=True)
class _Suspicion:
    """An ERROR frame naming no receipt, and the SENDs it may be about."""

    text: str
    receipts: set[str]

    @property
    def detail(self) -> str:
        return f"The STOMP broker answered with an ERROR frame: {self.text}"


class _Session(stomp.ConnectionListener):  # type: ignore[misc]
    """One connection to one broker address and the SENDs awaiting its answer.

    stomp.py calls the `on_*` methods on its receiver thread. Until CONNECTED they only record
    the handshake's outcome (`handshake`, `login_error`); after it they post each event to the
    loop, where `pending` (receipt id → future) and `suspicions` are only ever touched. A future's
    result is None when the RECEIPT came, else the text of why the message is not confirmed.
    """

    def __init__(self, loop: asyncio.AbstractEventLoop, address: _Address) -> None:
        self.loop = loop
        self.address = address
        self.conn: _Connection | None = None
        self.handshake = threading.Event()
        self.connected = False
        self.login_error: str | None = None
        self.dropped = threading.Event()
        """Set once, when stomp.py reports the connection closed."""
        self.broken = False
        """A SEND could not be written: the connection is not to be used again."""
        self.closing = False
        """The hub is closing it: its end is no news."""
        self.pending: dict[str, asyncio.Future[str | None]] = {}
        self.suspicions: list[_Suspicion] = []

    # --- the receiver thread ---------------------------------------------------------------

    def on_connected(self, frame: Any) -> None:
        self.connected = True
        self.handshake.set()

    def on_error(self, frame: Any) -> None:
        text = describe_error(frame)
        if not self.connected:
            self.login_error = text
            self.handshake.set()
            return
        self._post(self._error, frame.headers.get("receipt-id"), text)

    def on_receipt(self, frame: Any) -> None:
        self._post(self._receipt, frame.headers.get("receipt-id"))

    def on_disconnected(self) -> None:
        if self.dropped.is_set():  # stomp.py may report it twice
            return
        self.dropped.set()
        self.handshake.set()
        if self.connected:
            self._post(self._lost)

    def _post(self, callback: Any, *args: Any) -> None:
        with contextlib.suppress(RuntimeError):  # the loop is closed: nobody is waiting
            self.loop.call_soon_threadsafe(callback, *args)

    # --- the loop ------------------------------------------------------------------------------

    @property
    def usable(self) -> bool:
        if self.conn is None or self.broken or self.dropped.is_set():
            return False
        try:
            return bool(self.conn.is_connected())
        except Exception:  # the receiver thread is tearing the socket down right now
            return False

    def expect(self, receipt: str) -> asyncio.Future[str | None]:
        future: asyncio.Future[str | None] = self.loop.create_future()
        self.pending[receipt] = future
        return future

    def give_up(self, receipt: str) -> str | None:
        """Stop waiting for a SEND that left; an ERROR it is suspected of is pinned on it."""
        if self.pending.pop(receipt, None) is None:
            return None
        blamed: str | None = None
        for suspicion in self.suspicions:
            if receipt in suspicion.receipts:
                self.suspicions.remove(suspicion)
                blamed = suspicion.detail
                break
        self._pin()
        return blamed

    def withdraw(self, receipt: str) -> None:
        """Stop waiting for a SEND that never left: no ERROR can be about it."""
        self.pending.pop(receipt, None)
        self._pin()

    def _settle(self, receipt: str, outcome: str | None) -> None:
        future = self.pending.pop(receipt, None)
        if future is not None and not future.done():
            future.set_result(outcome)

    def _receipt(self, receipt: str | None) -> None:
        if receipt is not None:
            self._settle(receipt, None)
        self._pin()

    def _error(self, receipt: str | None, text: str) -> None:
        suspicion = _Suspicion(text, set(self.pending) if receipt is None else {receipt})
        self.suspicions.append(suspicion)
        self._pin()

    def _pin(self) -> None:
        """Pin each ERROR on its SEND once only one is left (see the module docstring)."""
        progress = True
        while progress:
            progress = False
            for suspicion in list(self.suspicions):
                suspicion.receipts.intersection_update(self.pending)
                if len(suspicion.receipts) > 1:
                    continue
                self.suspicions.remove(suspicion)
                if not suspicion.receipts:  # about no SEND still awaiting an answer
                    logger.warning(
                        "stomp_broker_error", address=self.address.url, error=suspicion.text
                    )
                    continue
                self._settle(suspicion.receipts.pop(), suspicion.detail)
                progress = True

    def _lost(self) -> None:
        if not self.closing:
            logger.warning("stomp_connection_lost", address=self.address.url)
        lost = (
            f"The connection to the STOMP broker at {self.address.url} closed before the "
            "broker confirmed the message"
        )
        # Which of several suspects an ERROR was about is now past knowing: each is told of it.
        errors = {r: s.text for s in self.suspicions for r in s.receipts}
        self.suspicions.clear()
        for receipt in list(self.pending):
            error = errors.get(receipt)
            self._settle(
                receipt, lost if error is None else f"{lost}, after an ERROR frame: {error}"
            )


@dataclass(eq=False)
class _Link:
    """The shared connection of one `_Key`: at most one session, opened under `lock`."""

    lock: asyncio.Lock = field(default_factory=asyncio.Lock)
    session: _Session | None = None
    connecting: asyncio.Task[_Session] | None = None
    failure: tuple[float, str] | None = None
    """When the last connect failed, and why: deliveries that were waiting for it share it."""
    last_used: float = field(default_factory=time.monotonic)


class StompDeliverer:
    """Delivers jobs to `stomp` integrations; see the module docstring.

    `source` is the CloudEvents `source` (the hub's public URL); `timeout` bounds each attempt.
    `ssl_context` checks `stomp+ssl://` brokers (default: the system's CAs, hostname checked).
    `allowed_networks` are the non-public networks brokers may be in (`HUB_ALLOWED_NETWORKS`):
    each address is resolved and judged by `hub.ssrf` and the socket goes to a vetted address.
    """

    integration_type: ClassVar[str] = "stomp"

    def __init__(
        self,
        *,
        source: str,
        timeout: float,
        heartbeats: tuple[int, int] = (10_000, 10_000),
        virtual_host: str | None = "/",
        ssl_context: ssl.SSLContext | None = None,
        idle_timeout: float = 300.0,
        allowed_networks: Sequence[Network] = (),
    ) -> None:
        self._guard = SsrfGuard(tuple(allowed_networks))
        self._source = source
        self._timeout = timeout
        self._heartbeats = heartbeats
        self._virtual_host = virtual_host
        self._ssl_context = ssl_context
        self._idle_timeout = idle_timeout
        self._links: dict[_Key, _Link] = {}
        self._closing: set[asyncio.Task[None]] = set()
        self._loop: asyncio.AbstractEventLoop | None = None

    async def open(self) -> None:
        """Nothing to connect yet: each connection opens with the first delivery needing it."""
        self._loop = asyncio.get_running_loop()
        if self._ssl_context is None:
            self._ssl_context = ssl.create_default_context()

    async def aclose(self) -> None:
        """Close every connection (DISCONNECT, then the socket); safe to call more than once."""
        links, self._links = self._links, {}
        for link in links.values():
            if link.connecting is not None:
                with contextlib.suppress(Exception, asyncio.CancelledError):
                    await asyncio.shield(link.connecting)
            if link.session is not None:
                self._close_later(link.session)
        if self._closing:
            await asyncio.gather(*self._closing, return_exceptions=True)

    def is_connected(self, config: StompConfig) -> bool:
        """Whether the connection for `config`'s addresses and credentials is open."""
        link = self._links.get(_key(config))
        return link is not None and link.session is not None and link.session.usable

    async def deliver(self, delivery: Delivery) -> DeliveryResult:
        """SEND one attempt of `delivery` and wait for its RECEIPT; never raises for a failure."""
        if self._loop is None:
            raise RuntimeError("StompDeliverer.deliver() called before open()")
        target = delivery.target
        log = logger.bind(
            job_id=str(delivery.job_id),
            integration_id=str(target.id),
            attempt=delivery.attempt,
            triggered_by=delivery.triggered_by,
        )
        started = time.perf_counter()
        deadline = time.monotonic() + self._timeout
        config = target.configuration
        if not isinstance(config, StompConfig):
            detail = (
                f"Could not deliver to STOMP: the integration is configured as "
                f"{target.integration_type!r}, not as stomp"
            )
            return self._failed(log, started, detail)
        log = log.bind(destination=config.destination)
        body = encode(build_cloudevent(delivery, source=self._source))
        headers = build_headers(delivery)

        key = _key(config)
        self._close_idle(keep=key)
        link = self._links.setdefault(key, _Link())
        link.last_used = time.monotonic()
        session: _Session | None = None
        receipt = ""
        # A second go only if the connection turned out closed before the frame left.
        for _ in range(2):
            try:
                session = await self._session(link, key, deadline)
            except _ConnectFailed as error:
                return self._failed(log, started, error.detail, config.password)
            except TimeoutError:
                detail = (
                    f"Timed out after {self._timeout:g} s connecting to the STOMP broker at "
                    f"{', '.join(config.addresses)}"
                )
                return self._failed(log, started, detail)
            log = log.bind(address=session.address.url)
            receipt = uuid.uuid4().hex
            answer = session.expect(receipt)
            try:
                await asyncio.to_thread(_send, session, config.destination, body, headers, receipt)
            except (stomp.exception.StompException, OSError) as error:
                session.withdraw(receipt)
                session.broken = True
                log.info("stomp_send_failed", error=_reason(error))
                session = None
                continue
            break
        if session is None:
            detail = "Could not send to the STOMP broker: the connection closed twice in a row"
            return self._failed(log, started, detail, config.password)

        try:
            async with asyncio.timeout(max(deadline - time.monotonic(), 0.0)):
                problem = await answer
        except TimeoutError:
            suspected = session.give_up(receipt)
            detail = (
                f"The STOMP broker at {session.address.url} did not confirm the message "
                f"(no RECEIPT) within {self._timeout:g} s"
            )
            if suspected is not None:
                detail += f"; meanwhile: {suspected}"
            return self._failed(log, started, detail, config.password)
        finally:
            session.give_up(receipt)  # cancelled, say; a no-op once answered
        if problem is not None:
            return self._failed(log, started, problem, config.password)

        duration = time.perf_counter() - started
        log.info("stomp_delivered", receipt=receipt, duration=duration)
        return DeliveryResult(succeeded=True, duration=duration, body=f"receipt {receipt}")

    # --- connections ---------------------------------------------------------------------------

    async def _session(self, link: _Link, key: _Key, deadline: float) -> _Session:
        """The open session of `link`, connecting first if there is none (one connect at a time).

        The connect runs as a task of its own, shielded: a delivery that gives up waiting does
        not abandon it half-way, and its session is adopted when it completes.
        """
        asked = time.monotonic()
        async with asyncio.timeout(max(deadline - asked, 0.0) + _BACKSTOP), link.lock:
            if link.failure is not None and link.failure[0] >= asked:
                raise _ConnectFailed(link.failure[1])
            if link.session is not None:
                if link.session.usable:
                    return link.session
                self._close_later(link.session)
                link.session = None
            if link.connecting is None:
                link.connecting = asyncio.create_task(self._connect(link, key, deadline))
                link.connecting.add_done_callback(_retrieve)
            return await asyncio.shield(link.connecting)

    async def _connect(self, link: _Link, key: _Key, deadline: float) -> _Session:
        loop = asyncio.get_running_loop()
        ssl_context = self._ssl_context or ssl.create_default_context()
        try:
            session = await asyncio.to_thread(self._open_session, key, deadline, loop, ssl_context)
        except _ConnectFailed as error:
            link.failure = (time.monotonic(), error.detail)
            logger.info("stomp_connect_failed", error_detail=_scrub(error.detail, key.password))
            raise
        finally:
            link.connecting = None
        if self._links.get(key) is not link:  # closed (or swept) meanwhile
            self._close_later(session)
            raise _ConnectFailed("The STOMP deliverer closed while connecting")
        link.session, link.failure = session, None
        logger.info("stomp_connected", address=session.address.url)
        return session

    def _open_session(
        self,
        key: _Key,
        deadline: float,
        loop: asyncio.AbstractEventLoop,
        ssl_context: ssl.SSLContext,
    ) -> _Session:
        """Try each address in order until one completes the handshake (in a worker thread)."""
        failures: list[str] = []
        for url in key.addresses:
            address = _Address.parse(url)
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                failures.append(f"{url} (not tried: out of time)")
                continue
            try:
                vetted = self._guard.resolve_sync(address.host, address.port)
            except TargetRefused as refused:
                failures.append(f"{url} ({refused.reason})")
                continue
            except OSError as error:
                failures.append(f"{url} ({_connect_reason(error, remaining)})")
                continue
            transport = _Transport(
                address,
                timeout=remaining,
                virtual_host=self._virtual_host,
                ssl_context=ssl_context,
                targets=tuple(str(ip) for ip in vetted),
            )
            conn = _Connection(transport, self._heartbeats)
            session = _Session(loop, address)
            conn.set_listener("hub", session)
            try:
                conn.connect(key.username, key.password, wait=False, with_connect_command=True)
            except stomp.exception.ConnectFailedException:
                failures.append(f"{url} ({_connect_reason(transport.failure, remaining)})")
                continue
            except (stomp.exception.StompException, OSError) as error:
                _drop(conn)
                failures.append(f"{url} ({_reason(error)})")
                continue
            answered = session.handshake.wait(max(deadline - time.monotonic(), 0.0))
            if session.connected and conn.is_connected():
                session.conn = conn
                return session
            _drop(conn)
            if session.login_error is not None:
                raise _ConnectFailed(
                    f"The STOMP broker at {url} refused the login: {session.login_error}"
                )
            if answered:
                failures.append(f"{url} (closed the connection during the STOMP handshake)")
            else:
                failures.append(f"{url} (no answer to CONNECT within {remaining:.3g} s)")
        if len(failures) == 1:
            raise _ConnectFailed(f"Could not connect to the STOMP broker at {failures[0]}")
        raise _ConnectFailed(
            "Could not connect to the STOMP broker at any address: " + ", ".join(failures)
        )

    def _close_idle(self, *, keep: _Key) -> None:
        now = time.monotonic()
        for key, link in list(self._links.items()):
            idle = now - link.last_used > self._idle_timeout
            if key == keep or not idle or link.lock.locked() or link.connecting is not None:
                continue
            if link.session is not None and link.session.pending:
                continue
            del self._links[key]
            if link.session is not None:
                logger.info("stomp_connection_idle", address=link.session.address.url)
                self._close_later(link.session)

    def _close_later(self, session: _Session) -> None:
        session.closing = True
        task = asyncio.create_task(asyncio.to_thread(_close, session))
        self._closing.add(task)
        task.add_done_callback(self._closing.discard)

    def _failed(
        self, log: Any, started: float, detail: str, password: str | None = None
    ) -> DeliveryResult:
        detail = _scrub(detail, password)
        duration = time.perf_counter() - started
        log.warning("stomp_failed", error_detail=detail, duration=duration)
        return DeliveryResult(succeeded=False, duration=duration, error_detail=detail)


def build_headers(delivery: Delivery) -> dict[str, str]:
    """The SEND frame's own headers (stomp.py adds `destination`, `content-type` and the rest)."""
    return {
        "persistent": "true",
        "hub-event-type": delivery.triggered_by,
        "hub-job-id": str(delivery.job_id),
        "hub-event-id": str(delivery.event_id),
        "hub-attempt": str(delivery.attempt),
    }


def describe_error(frame: Any) -> str:
    """An ERROR frame as one line: its `message` header, then its body if that adds anything."""
    message = " ".join(str(frame.headers.get("message") or "").split())
    body = frame.body
    if isinstance(body, bytes):
        body = body.decode("utf-8", errors="replace")
    text = " ".join(str(body or "").split())
    if message and text and text != message:
        text = f"{message} ({text})"
    else:
        text = message or text or "no message"
    return text if len(text) <= _REASON_LIMIT else text[: _REASON_LIMIT - 1] + "…"


def _key(config: StompConfig) -> _Key:
    return _Key(tuple(config.addresses), config.username, config.password)


def _send(
    session: _Session, destination: str, body: bytes, headers: dict[str, str], receipt: str
) -> None:
    if session.conn is None:
        raise stomp.exception.NotConnectedException()
    session.conn.send(
        destination, body, content_type=CONTENT_TYPE, headers={**headers, "receipt": receipt}
    )


def _close(session: _Session) -> None:
    """DISCONNECT, wait a little for the broker's RECEIPT, then make sure the socket is gone."""
    conn = session.conn
    if conn is None:
        return
    if not session.dropped.is_set():
        with contextlib.suppress(stomp.exception.StompException, OSError):
            conn.disconnect()  # the receiver thread closes the socket on the RECEIPT
        session.dropped.wait(_CLOSE_GRACE)
    _drop(conn)


def _drop(conn: _Connection) -> None:
    with contextlib.suppress(Exception):
        conn.transport.disconnect_socket()


def _retrieve(task: asyncio.Task[_Session]) -> None:
    # Waiters may all have given up; the outcome is logged by `_connect`, not left unretrieved.
    if not task.cancelled():
        task.exception()


def _connect_reason(error: OSError | None, timeout: float) -> str:
    if error is None:
        return "could not connect"
    if isinstance(error, ssl.SSLCertVerificationError):
        return f"TLS handshake failed: certificate verify failed: {error.verify_message}"
    if isinstance(error, ssl.SSLError):
        reason = str(error.reason).replace("_", " ").lower() if error.reason else _reason(error)
        return f"TLS handshake failed: {reason}"
    if isinstance(error, ConnectionRefusedError) or error.errno == errno.ECONNREFUSED:
        return "connection refused"
    if isinstance(error, TimeoutError):
        return f"no answer within {timeout:.3g} s"
    if isinstance(error, socket.gaierror):
        return "host not found"
    return _reason(error)


def _reason(error: BaseException) -> str:
    text = str(error).strip() or type(error).__name__
    return text if len(text) <= _REASON_LIMIT else text[: _REASON_LIMIT - 1] + "…"


def _scrub(detail: str, password: str | None) -> str:
    # Error texts come partly from the broker and libraries; the password never rides along.
    return detail.replace(password, "****") if password else detail


__all__ = ["CONTENT_TYPE", "StompDeliverer", "build_headers", "describe_error"]
