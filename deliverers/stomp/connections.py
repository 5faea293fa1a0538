"""The STOMP deliverer's shared connections: one per broker set and credentials, opened on demand.

**Connections.** One long-lived connection per (addresses, username, password), opened by the
first delivery that needs it and shared by every integration with those settings; an
`asyncio.Lock` per connection makes concurrent deliveries wait for one connect instead of
opening several. The addresses are tried in the configured order and the first that completes
the STOMP handshake wins (`stomp+ssl://` ones over TLS, the certificate checked against the
system's CAs). A login refused (an ERROR frame answering CONNECT) ends the search: the other
brokers would see the same credentials. When the connection drops (the broker closes it, or
heart-beats, 10 s each way, stop arriving) the next delivery reconnects, trying the addresses in
order again. A connection unused for `idle_timeout` seconds is closed.

Connecting and closing run in worker threads (`asyncio.to_thread`): the event loop never blocks.
"""

from __future__ import annotations

import asyncio
import contextlib
import ssl
import time
from dataclasses import dataclass, field

import stomp.exception
import structlog

from deliverers.attempt import reason, scrub
from deliverers.config import StompConfig
from deliverers.stomp.errors import ConnectFailed, connect_reason
from deliverers.stomp.session import Session, close
from deliverers.stomp.transport import Address, Connection, Transport, drop
from hub.errors import TargetRefused
from hub.ssrf import SsrfGuard

logger = structlog.get_logger(__name__)

BACKSTOP = 0.25
"""Seconds past its deadline a delivery waits for a connect, which ends by the deadline itself
(and says why better than a bare timeout)."""


@dataclass(frozen=True, slots=True)
class Key:
    """What one shared connection is for."""

    addresses: tuple[str, ...]
    username: str | None
    password: str | None = field(repr=False)

    @classmethod
    def of(cls, config: StompConfig) -> Key:
        """The key of `config`'s addresses and credentials."""
        return cls(tuple(config.addresses), config.username, config.password)


@dataclass(eq=False)
class Link:
    """The shared connection of one `Key`: at most one session, opened under `lock`."""

    lock: asyncio.Lock = field(default_factory=asyncio.Lock)
    session: Session | None = None
    connecting: asyncio.Task[Session] | None = None
    failure: tuple[float, str] | None = None
    """When the last connect failed, and why: deliveries that were waiting for it share it."""
    last_used: float = field(default_factory=time.monotonic)


class Connections:
    """The open connections of one deliverer, by `Key`; see the module docstring.

    `guard` resolves and judges each broker address; `ssl_context` checks `stomp+ssl://` brokers
    (default: the system's CAs, hostname checked, made by `open`).
    """

    def __init__(
        self,
        *,
        guard: SsrfGuard,
        heartbeats: tuple[int, int],
        virtual_host: str | None,
        ssl_context: ssl.SSLContext | None,
        idle_timeout: float,
    ) -> None:
        self._guard = guard
        self._heartbeats = heartbeats
        self._virtual_host = virtual_host
        self._ssl_context = ssl_context
        self._idle_timeout = idle_timeout
        self._links: dict[Key, Link] = {}
        self._closing: set[asyncio.Task[None]] = set()

    def open(self) -> None:
        """Nothing to connect yet: each connection opens with the first delivery needing it."""
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
                self.close_later(link.session)
        if self._closing:
            await asyncio.gather(*self._closing, return_exceptions=True)

    def is_connected(self, key: Key) -> bool:
        """Whether the connection for `key` is open."""
        link = self._links.get(key)
        return link is not None and link.session is not None and link.session.usable

    def link(self, key: Key) -> Link:
        """The link of `key`, marked used now; other links idle too long are closed."""
        self._close_idle(keep=key)
        link = self._links.setdefault(key, Link())
        link.last_used = time.monotonic()
        return link

    async def session(self, link: Link, key: Key, deadline: float) -> Session:
        """The open session of `link`, connecting first if there is none (one connect at a time).

        The connect runs as a task of its own, shielded: a delivery that gives up waiting does
        not abandon it half-way, and its session is adopted when it completes.
        """
        asked = time.monotonic()
        async with asyncio.timeout(max(deadline - asked, 0.0) + BACKSTOP), link.lock:
            if link.failure is not None and link.failure[0] >= asked:
                raise ConnectFailed(link.failure[1])
            if link.session is not None:
                if link.session.usable:
                    return link.session
                self.close_later(link.session)
                link.session = None
            if link.connecting is None:
                link.connecting = asyncio.create_task(self._connect(link, key, deadline))
                link.connecting.add_done_callback(_retrieve)
            return await asyncio.shield(link.connecting)

    async def _connect(self, link: Link, key: Key, deadline: float) -> Session:
        loop = asyncio.get_running_loop()
        ssl_context = self._ssl_context or ssl.create_default_context()
        try:
            session = await asyncio.to_thread(self._open_session, key, deadline, loop, ssl_context)
        except ConnectFailed as error:
            link.failure = (time.monotonic(), error.detail)
            logger.info("stomp_connect_failed", error_detail=scrub(error.detail, key.password))
            raise
        finally:
            link.connecting = None
        if self._links.get(key) is not link:  # closed (or swept) meanwhile
            self.close_later(session)
            raise ConnectFailed("The STOMP deliverer closed while connecting")
        link.session, link.failure = session, None
        logger.info("stomp_connected", address=session.address.url)
        return session

    def _open_session(
        self,
        key: Key,
        deadline: float,
        loop: asyncio.AbstractEventLoop,
        ssl_context: ssl.SSLContext,
    ) -> Session:
        """Try each address in order until one completes the handshake (in a worker thread)."""
        failures: list[str] = []
        for url in key.addresses:
            address = Address.parse(url)
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
                failures.append(f"{url} ({connect_reason(error, remaining)})")
                continue
            transport = Transport(
                address,
                timeout=remaining,
                virtual_host=self._virtual_host,
                ssl_context=ssl_context,
                targets=tuple(str(ip) for ip in vetted),
            )
            conn = Connection(transport, self._heartbeats)
            session = Session(loop, address)
            conn.set_listener("hub", session)
            try:
                conn.connect(key.username, key.password, wait=False, with_connect_command=True)
            except stomp.exception.ConnectFailedException:
                failures.append(f"{url} ({connect_reason(transport.failure, remaining)})")
                continue
            except (stomp.exception.StompException, OSError) as error:
                drop(conn)
                failures.append(f"{url} ({reason(error)})")
                continue
            answered = session.handshake.wait(max(deadline - time.monotonic(), 0.0))
            if session.connected and conn.is_connected():
                session.conn = conn
                return session
            drop(conn)
            if session.login_error is not None:
                raise ConnectFailed(
                    f"The STOMP broker at {url} refused the login: {session.login_error}"
                )
            if answered:
                failures.append(f"{url} (closed the connection during the STOMP handshake)")
            else:
                failures.append(f"{url} (no answer to CONNECT within {remaining:.3g} s)")
        if len(failures) == 1:
            raise ConnectFailed(f"Could not connect to the STOMP broker at {failures[0]}")
        raise ConnectFailed(
            "Could not connect to the STOMP broker at any address: " + ", ".join(failures)
        )

    def _close_idle(self, *, keep: Key) -> None:
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
                self.close_later(link.session)

    def close_later(self, session: Session) -> None:
        session.closing = True
        task = asyncio.create_task(asyncio.to_thread(close, session))
        self._closing.add(task)
        task.add_done_callback(self._closing.discard)


def _retrieve(task: asyncio.Task[Session]) -> None:
    # Waiters may all have given up; the outcome is logged by `_connect`, not left unretrieved.
    if not task.cancelled():
        task.exception()


__all__ = ["BACKSTOP", "Connections", "Key", "Link"]
