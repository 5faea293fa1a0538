"""The AMQP deliverer's shared connections: one per URL, each with one channel per exchange.

**Connections.** One connection per URL (credentials, host and vhost: the `Broker`), opened by
the first delivery that needs it and shared by every integration with that URL. Concurrent
deliveries wait for one connect instead of opening several (`Shared`), and those that were
waiting when it failed share its failure, so a broker that is down costs one connect per
wave of attempts, not one per attempt. When the connection is lost (the broker restarts, or
closes it) the next delivery opens a new one: broker restarts are ridden out by the retries of
the attempts that were in flight, never by a loop of our own. A connection unused for
`idle_timeout` seconds is closed.

**Channels.** Each connection has one channel per exchange, in publisher-confirm mode, opened
with the exchange's passive declaration (or its declaration, with `declare: true`), so that a
missing exchange closes only its own channel: RabbitMQ closes a channel that publishes to an
exchange that does not exist, which would otherwise fail every other integration's messages in
flight on it. A closed channel is opened again by the next delivery to that exchange.
"""

from __future__ import annotations

import asyncio
import contextlib
import ssl
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any, Generic, TypeVar
from urllib.parse import unquote, urlsplit

import aio_pika
import structlog
from aio_pika.abc import AbstractChannel, AbstractExchange
from yarl import URL

from deliverers.amqp.transport import GuardedTransport
from deliverers.attempt import scrub
from deliverers.config import AmqpConfig, amqp_vhost

logger = structlog.get_logger(__name__)

T = TypeVar("T")

#: What the hub's connections call themselves in the broker's management UI.
CONNECTION_NAME = "hub deliveries"


@dataclass(frozen=True, slots=True)
class Broker:
    """What one shared connection is for: an AMQP URL, and its parts for `error_detail`s."""

    url: str = field(repr=False)
    host: str
    port: int
    vhost: str
    user: str
    password: str = field(repr=False)

    @classmethod
    def of(cls, config: AmqpConfig) -> Broker:
        parts = urlsplit(config.url)
        default = 5671 if parts.scheme == "amqps" else 5672
        return cls(
            url=config.url,
            host=parts.hostname or "",
            port=parts.port or default,
            vhost=amqp_vhost(config.url),
            user=unquote(parts.username or ""),
            password=parts.password or "",
        )

    @property
    def address(self) -> str:
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"{host}:{self.port}"

    @property
    def secrets(self) -> tuple[str, ...]:
        """The password as written in the URL and as sent: never in a detail or a log line."""
        return (self.password, unquote(self.password))


@dataclass(frozen=True, slots=True)
class Route:
    """The exchange a channel publishes to, and how it is checked when the channel opens."""

    exchange: str
    declare: bool
    exchange_type: str

    @classmethod
    def of(cls, config: AmqpConfig) -> Route:
        return cls(config.exchange, config.declare, config.exchange_type)


class Shared(Generic[T]):
    """One resource, opened on demand and shared by everyone who asks (see the module
    docstring). The opening runs as a task of its own, shielded: an asker that gives up
    waiting does not abandon it half-way, and what it opens is adopted when it completes."""

    def __init__(self, usable: Callable[[T], bool]) -> None:
        self._usable = usable
        self.value: T | None = None
        self._opening: asyncio.Task[T] | None = None
        self._failure: tuple[float, BaseException] | None = None

    def current(self) -> T | None:
        """The open resource, if it is still usable."""
        value = self.value
        return value if value is not None and self._usable(value) else None

    async def get(self, open_: Callable[[], Awaitable[T]]) -> T:
        asked = time.monotonic()
        value = self.current()
        if value is not None:
            return value
        failure = self._failure
        if failure is not None and failure[0] >= asked:
            raise failure[1]
        if self._opening is None:
            self.value = None
            self._opening = asyncio.create_task(self._open(open_))
            self._opening.add_done_callback(_retrieve)
        return await asyncio.shield(self._opening)

    async def _open(self, open_: Callable[[], Awaitable[T]]) -> T:
        try:
            value = await open_()
        except BaseException as error:
            self._failure = (time.monotonic(), error)
            raise
        finally:
            self._opening = None
        self.value, self._failure = value, None
        return value

    async def settle(self) -> None:
        """Wait for an opening under way, whatever its outcome."""
        if self._opening is not None:
            with contextlib.suppress(Exception, asyncio.CancelledError):
                await asyncio.shield(self._opening)


def _retrieve(task: asyncio.Task[Any]) -> None:
    # Every asker may have given up; the outcome is theirs to report, not left unretrieved.
    if not task.cancelled():
        task.exception()


class _Connection(aio_pika.Connection):
    """aio-pika's connection, its socket opened by `GuardedTransport` (the SSRF guard)."""

    def __init__(self, url: URL, transport: GuardedTransport, **kwargs: Any) -> None:
        super().__init__(url, **kwargs)
        self.kwargs["transport_factory"] = transport


@dataclass(eq=False)
class Session:
    """One open connection to a broker and its channels, one per `Route`."""

    connection: aio_pika.Connection
    lost: str | None = None
    """Why the broker closed the connection, once it did."""
    opened: bool = False
    outlets: dict[Route, Shared[Outlet]] = field(default_factory=dict)

    @property
    def usable(self) -> bool:
        connection = self.connection
        return self.lost is None and not connection.is_closed and connection.connected.is_set()

    async def exchange(self, route: Route) -> AbstractExchange:
        """The exchange of `route` on its own open channel, opened (and checked) if need be."""
        outlet = self.outlets.get(route)
        if outlet is None:
            outlet = self.outlets[route] = Shared(_open_channel)
        return (await outlet.get(lambda: self._open(route))).exchange

    async def _open(self, route: Route) -> Outlet:
        channel = await self.connection.channel(publisher_confirms=True, on_return_raises=True)
        try:
            if route.declare:
                exchange = await channel.declare_exchange(
                    route.exchange, route.exchange_type, durable=True
                )
            else:
                exchange = await channel.get_exchange(route.exchange, ensure=True)
        except BaseException:
            if not channel.is_closed:
                with contextlib.suppress(Exception):
                    await channel.close()
            raise
        return Outlet(channel, exchange)


@dataclass(frozen=True, slots=True)
class Outlet:
    """A channel in publisher-confirm mode and the exchange it publishes to."""

    channel: AbstractChannel
    exchange: AbstractExchange


def _open_channel(outlet: Outlet) -> bool:
    return not outlet.channel.is_closed


@dataclass(eq=False)
class Link:
    """The shared connection of one `Broker`."""

    session: Shared[Session] = field(default_factory=lambda: Shared(_usable))
    last_used: float = field(default_factory=time.monotonic)


def _usable(session: Session) -> bool:
    return session.usable


class Connections:
    """The open connections of one deliverer, by `Broker`; see the module docstring.

    `transport` opens every socket (the SSRF guard); `ssl_context` checks `amqps://` brokers
    (default: the system's CAs, host name checked); `timeout` bounds a connect.
    """

    def __init__(
        self,
        *,
        transport: GuardedTransport,
        timeout: float,
        ssl_context: ssl.SSLContext | None,
        idle_timeout: float,
    ) -> None:
        self._transport = transport
        self._timeout = timeout
        self._ssl_context = ssl_context
        self._idle_timeout = idle_timeout
        self._links: dict[Broker, Link] = {}

    async def aclose(self) -> None:
        """Close every connection; safe to call more than once."""
        links, self._links = self._links, {}
        for link in links.values():
            await link.session.settle()
            if link.session.value is not None:
                await _close(link.session.value)

    def is_connected(self, broker: Broker) -> bool:
        link = self._links.get(broker)
        return link is not None and link.session.current() is not None

    async def session(self, broker: Broker) -> Session:
        """The open session of `broker`, connecting first if there is none."""
        self._close_idle(keep=broker)
        link = self._links.get(broker)
        if link is None:
            link = self._links[broker] = Link()
        link.last_used = time.monotonic()
        stale = link.session.value
        if stale is not None and not stale.usable:
            link.session.value = None
            asyncio.create_task(_close(stale))  # noqa: RUF006 - closing a dead socket
        return await link.session.get(lambda: self._connect(broker))

    async def _connect(self, broker: Broker) -> Session:
        connection = _Connection(
            URL(broker.url),
            self._transport,
            ssl_context=self._ssl_context,
            client_properties={"connection_name": CONNECTION_NAME},
        )
        session = Session(connection)

        def lost(_connection: Any, error: BaseException | None = None) -> None:
            if session.lost is None and session.opened:  # a failed connect is no loss
                session.lost = scrub(_why(error), *broker.secrets)
                logger.warning(
                    "amqp_connection_lost",
                    broker=broker.address,
                    vhost=broker.vhost,
                    error=session.lost,
                )

        connection.close_callbacks.add(lost)
        await connection.connect(timeout=self._timeout)
        session.opened = True
        logger.info("amqp_connected", broker=broker.address, vhost=broker.vhost)
        return session

    def _close_idle(self, *, keep: Broker) -> None:
        now = time.monotonic()
        for broker, link in list(self._links.items()):
            if broker == keep or now - link.last_used <= self._idle_timeout:
                continue
            session = link.session.value
            if session is None and link.session.current() is None:
                del self._links[broker]
                continue
            del self._links[broker]
            if session is not None:
                logger.info("amqp_connection_idle", broker=broker.address, vhost=broker.vhost)
                asyncio.create_task(_close(session))  # noqa: RUF006


async def _close(session: Session) -> None:
    session.lost = session.lost or "closed by the hub"
    with contextlib.suppress(Exception):
        await session.connection.close()


def _why(error: BaseException | None) -> str:
    if error is None:
        return "closed"
    text = next((a for a in error.args if isinstance(a, str) and a.strip()), None)
    return (text or str(error)).strip() or type(error).__name__


__all__ = ["Broker", "Connections", "Link", "Route", "Session", "Shared"]
