"""Running the hub: the API server and/or the dispatcher (and the AMQP ingest when
`HUB_AMQP_URL` is set), until SIGTERM or SIGINT or until one of them stops.

Every process registers itself in the process registry and heartbeats there
(`hub.services.processes`): `hub serve` runs the heartbeat beside its web app (its first beat
before it listens, so its share of the deployment-wide rate limits is known before the first
request), `hub worker` hands it to its dispatcher as a side task.

**Stopping `hub serve`.** The process's row leaves the registry first, so the others take over
its share of the rate limits at their next heartbeat. Then the listening socket is closed, so
new connections go to the other processes (with `--reuse-port`, the kernel stops routing to
this one); requests in flight, bodies still arriving included, get `REQUEST_GRACE` seconds to be
answered, each answer with `Connection: close` (`hub.api.middleware.InFlight`); then idle
kept-alive connections are closed and anything left (a console live log) is cancelled.
Meanwhile the dispatcher and the ingest wind down (`HUB_WORKER_GRACE_SECONDS`).

One process is one `serve` or `work` call with its options (`ServeOptions`): a supervisor that
starts several processes passes each the same options.

**Slow and greedy clients.** The web server holds no connection for a client that takes its
time: a request's headers must all arrive within `HUB_HEADER_TIMEOUT` seconds of the
connection's opening or of the previous answer (aiohttp's keep-alive timeout, which closes a
connection still waiting for a complete request when it fires; an idle keep-alive connection
goes after as long), and its body within `HUB_BODY_TIMEOUT` seconds of the headers
(`hub.api.middleware.body_deadline`). One client address holds at most
`HUB_MAX_CONNECTIONS_PER_CLIENT` connections at once (`ClientConnections`); more are closed on
arrival, before a byte is read.
"""

from __future__ import annotations

import asyncio
import contextlib
import gc
import signal
from collections import Counter
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from typing import Any, cast

import structlog
from aiohttp import web
from aiohttp.web_protocol import RequestHandler
from prometheus_client import Counter as Metric
from sqlalchemy.ext.asyncio import AsyncEngine

from hub import crypto
from hub.api.middleware import IN_FLIGHT
from hub.api.shedding import NOT_WHOLE, EarlyRefusals
from hub.dispatch import default_registry
from hub.dispatch.worker import Worker
from hub.events import load_catalogue
from hub.ingest import AmqpIngest
from hub.ingest.consumer import BATCH_LOOPS
from hub.ratelimit import Share
from hub.services.processes import Heartbeat, Identity
from hub.services.secrets import check_readable
from hub.settings import Settings
from hub.store.engine import create_engine, migrate
from hub.web import create_app

log = structlog.get_logger(__name__)

#: Seconds a stopping API process gives the requests in flight.
REQUEST_GRACE = 5.0


@dataclass(frozen=True, slots=True)
class ServeOptions:
    """How one `hub serve` process runs."""

    host: str
    port: int
    with_worker: bool = True
    do_migrate: bool = True
    reuse_port: bool = False
    """Listen with SO_REUSEPORT, so that several processes share one port."""

    @property
    def role(self) -> str:
        return "api+worker" if self.with_worker else "api"


def settle_heap() -> None:
    """Move what the process has built at start (modules, the ORM's metadata, pydantic's
    validators, the catalogue: most of its objects) out of the garbage collector's sight.

    CPython's cyclic collector walks every tracked object of the generations it collects, and a
    full collection comes each time the long-lived objects have grown by a quarter: in a busy
    process, a walk of the whole heap that stops the event loop for tens of ms, during which
    every request waits (the batch publish's p95 was 89 ms with them, 33 ms without). Objects
    alive once started stay alive, so `gc.freeze` leaves them out of every later collection;
    a collection first, so that no startup garbage is frozen with them."""
    gc.collect()
    gc.freeze()


def _stop_on_signals(stop: asyncio.Event) -> None:
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)


def _heartbeat(settings: Settings, engine: AsyncEngine, identity: Identity) -> Heartbeat:
    return Heartbeat(
        engine,
        identity,
        interval=settings.heartbeat_interval,
        stale_after=settings.heartbeat_stale_after,
    )


@contextlib.asynccontextmanager
async def running_worker(
    settings: Settings, engine_url: str, *, identity: Identity, own_heartbeat: bool
) -> AsyncIterator[Worker]:
    """A started dispatcher (own engine, opened deliverers) whose lease owner is `identity`;
    with `own_heartbeat` it also heartbeats for the process. Stopped gracefully on exit."""
    engine = create_engine(engine_url, pool_size=max(2, min(settings.db_pool_size, 10)))
    await _check_keys(engine)
    registry = default_registry(settings)
    await registry.open()
    heartbeat = _heartbeat(settings, engine, identity) if own_heartbeat else None
    worker = Worker(
        settings,
        engine,
        registry,
        database_url=engine_url,
        owner=identity.id,
        heartbeat=heartbeat,
    )
    task = asyncio.create_task(worker.run(), name="hub-worker")
    try:
        yield worker
    finally:
        worker.stop()
        try:
            await task
        finally:
            await registry.aclose()
            await engine.dispose()


async def serve(settings: Settings, url: str, options: ServeOptions) -> None:
    """`hub serve`: the API (and, unless told otherwise, a dispatcher) in this process."""
    stop = asyncio.Event()
    _stop_on_signals(stop)
    engine = create_engine(url, pool_size=settings.db_pool_size)
    try:
        if options.do_migrate:
            await migrate(engine)
        await _check_keys(engine)
        share = Share()
        identity = Identity.of(options.role, address=f"{options.host}:{options.port}")
        heartbeat = _heartbeat(settings, engine, identity)
        heartbeat.on_beat = lambda beat: share.set(beat.api_processes)
        await heartbeat.beat()
        app = create_app(settings, engine, share=share)
        runner = await _listening(app, settings, options.host, options.port, options.reuse_port)
        log.info(
            "api_listening",
            url=settings.base_url(),
            host=options.host,
            port=options.port,
            process_id=identity.id,
            reuse_port=options.reuse_port,
        )
        beating = asyncio.create_task(heartbeat.run(), name="hub-heartbeat")
        try:
            async with contextlib.AsyncExitStack() as stack:
                stopped = [stop]
                parts: list[Worker | AmqpIngest] = []
                if options.with_worker:
                    worker = await stack.enter_async_context(
                        running_worker(settings, url, identity=identity, own_heartbeat=False)
                    )
                    heartbeat.in_flight = lambda: worker.in_flight
                    stopped.append(worker.stopped)
                    parts.append(worker)
                if settings.amqp_url:
                    ingest = await stack.enter_async_context(running_ingest(settings, url))
                    stopped.append(ingest.stopped)
                    parts.append(ingest)
                settle_heap()
                await _first_set(stopped)
                log.info("shutting_down", process_id=identity.id)
                beating.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await beating
                await heartbeat.leave()
                for part in parts:
                    part.stop()  # they wind down while the web app finishes its requests
                for site in runner.sites:
                    await site.stop()
                await app[IN_FLIGHT].drain(REQUEST_GRACE)
                await runner.cleanup()
                log.info("api_stopped", process_id=identity.id)
        finally:
            beating.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await beating
    finally:
        await engine.dispose()


REFUSED = Metric(
    "hub_http_connections_refused_total",
    "Connections closed on arrival: their client address held HUB_MAX_CONNECTIONS_PER_CLIENT",
)


class ClientConnections:
    """The web server's protocol factory, with at most `per_client` connections at once from
    one client address (0: no cap). A connection beyond is closed on arrival, before a byte is
    read; the server never sees it. With `early`, each chunk a connection receives is offered
    to it first (`hub.api.shedding`: publishes refused before aiohttp reads them)."""

    def __init__(
        self,
        server: Callable[[], RequestHandler],
        per_client: int,
        early: EarlyRefusals | None = None,
    ) -> None:
        self._server = server
        self.per_client = per_client
        self.early = early
        self.open: Counter[str] = Counter()
        """Connections open now, by client address."""

    def __call__(self) -> asyncio.Protocol:
        return _Admitted(self, self._server())


class _Admitted(asyncio.Protocol):
    """One connection on its way to the server's protocol, counted against its address."""

    __slots__ = ("_address", "_connections", "_early", "_inner", "_transport")

    def __init__(self, connections: ClientConnections, inner: RequestHandler) -> None:
        self._connections = connections
        self._inner: RequestHandler | None = inner
        self._address: str | None = None
        self._transport: asyncio.Transport | None = None
        self._early = connections.early
        """Offered each chunk while every chunk so far ended where a request did
        (`EarlyRefusals.answer`); None from the first that did not."""

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        peer = transport.get_extra_info("peername")
        address = str(peer[0]) if isinstance(peer, tuple) and peer else None
        connections = self._connections
        if address is not None and connections.per_client:
            if connections.open[address] >= connections.per_client:
                self._inner = None
                REFUSED.inc()
                log.debug("client_connection_refused", client=address)
                transport.close()
                return
            connections.open[address] += 1
            self._address = address
        assert self._inner is not None
        # uvloop's transports are not subclasses of asyncio's, but have their methods.
        self._transport = cast(asyncio.Transport, transport)
        self._inner.connection_made(transport)

    def connection_lost(self, exc: Exception | None) -> None:
        if self._address is not None:
            open_ = self._connections.open
            open_[self._address] -= 1
            if open_[self._address] <= 0:
                del open_[self._address]
            self._address = None
        if self._inner is not None:
            self._inner.connection_lost(exc)

    def data_received(self, data: bytes) -> None:
        inner = self._inner
        if inner is None:
            return
        if (early := self._early) is not None:
            answer = early.answer(data, inner)
            if answer:
                assert self._transport is not None
                self._transport.write(answer)
                return
            if answer is NOT_WHOLE:
                self._early = None
        inner.data_received(data)

    def eof_received(self) -> bool | None:
        if self._inner is not None:
            self._inner.eof_received()  # aiohttp's: None, the transport closes itself
        return None

    def pause_writing(self) -> None:
        if self._inner is not None:
            self._inner.pause_writing()

    def resume_writing(self) -> None:
        if self._inner is not None:
            self._inner.resume_writing()


class _Runner(web.AppRunner):
    """aiohttp's runner, whose sites take connections through `ClientConnections`."""

    def __init__(self, app: web.Application, per_client: int, **kwargs: Any) -> None:
        super().__init__(app, **kwargs)
        self._per_client = per_client
        self.connections: ClientConnections | None = None

    @property
    def server(self) -> Any:
        inner = super().server
        if inner is None:
            return None
        if self.connections is None:
            self.connections = ClientConnections(inner, self._per_client, EarlyRefusals(self.app))
        return self.connections


async def _listening(
    app: web.Application, settings: Settings, host: str, port: int, reuse_port: bool = False
) -> _Runner:
    """`app` set up and listening on `host:port`, with the slow-client timeouts and the
    per-client cap (see the module docstring); the caller cleans the runner up."""
    runner = _Runner(
        app,
        settings.max_connections_per_client,
        access_log=None,
        shutdown_timeout=REQUEST_GRACE,
        keepalive_timeout=settings.header_timeout,
    )
    await runner.setup()
    try:
        await web.TCPSite(
            runner, host, port, reuse_port=reuse_port or None, backlog=settings.listen_backlog
        ).start()
    except BaseException:
        await runner.cleanup()
        raise
    return runner


@contextlib.asynccontextmanager
async def serving(
    app: web.Application, settings: Settings, host: str, port: int
) -> AsyncIterator[_Runner]:
    """`app` served on `host:port` as `hub serve` serves it (`_listening`) until the block
    ends."""
    runner = await _listening(app, settings, host, port)
    try:
        yield runner
    finally:
        await runner.cleanup()


async def _check_keys(engine: AsyncEngine) -> None:
    """Refuse to start with keys that cannot read the stored secrets (`SecretsUnreadable`)."""
    keyring = crypto.installed()
    if keyring is not None:
        await check_readable(engine, keyring)


async def _first_set(events: list[asyncio.Event]) -> None:
    """Return once any of `events` is set (a signal, or a part of the process that stopped)."""
    waits = [asyncio.ensure_future(event.wait()) for event in events]
    try:
        await asyncio.wait(waits, return_when=asyncio.FIRST_COMPLETED)
    finally:
        for wait in waits:
            wait.cancel()


@contextlib.asynccontextmanager
async def running_ingest(settings: Settings, engine_url: str) -> AsyncIterator[AmqpIngest]:
    """A started AMQP consumer (own engine); stopped gracefully on exit."""
    # One connection per batch loop; the pool's overflow covers the rest.
    engine = create_engine(engine_url, pool_size=BATCH_LOOPS)
    ingest = AmqpIngest(settings, engine, load_catalogue())
    task = asyncio.create_task(ingest.run(), name="hub-amqp-ingest")
    try:
        yield ingest
    finally:
        ingest.stop()
        try:
            await task
        finally:
            await engine.dispose()


async def work(settings: Settings, url: str) -> None:
    """`hub worker`: a dispatcher-only process (and the AMQP ingest when configured)."""
    stop = asyncio.Event()
    _stop_on_signals(stop)
    identity = Identity.of("worker")
    async with contextlib.AsyncExitStack() as stack:
        worker = await stack.enter_async_context(
            running_worker(settings, url, identity=identity, own_heartbeat=True)
        )
        stopped = [stop, worker.stopped]
        if settings.amqp_url:
            ingest = await stack.enter_async_context(running_ingest(settings, url))
            stopped.append(ingest.stopped)
        settle_heap()
        await _first_set(stopped)
        log.info("shutting_down", process_id=identity.id)
