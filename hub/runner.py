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
"""

from __future__ import annotations

import asyncio
import contextlib
import signal
from collections.abc import AsyncIterator
from dataclasses import dataclass

import structlog
from aiohttp import web
from sqlalchemy.ext.asyncio import AsyncEngine

from hub import crypto
from hub.api.middleware import IN_FLIGHT
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
        runner = web.AppRunner(app, access_log=None, shutdown_timeout=REQUEST_GRACE)
        await runner.setup()
        site = web.TCPSite(
            runner, options.host, options.port, reuse_port=options.reuse_port or None
        )
        await site.start()
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
                await _first_set(stopped)
                log.info("shutting_down", process_id=identity.id)
                beating.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await beating
                await heartbeat.leave()
                for part in parts:
                    part.stop()  # they wind down while the web app finishes its requests
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
        await _first_set(stopped)
        log.info("shutting_down", process_id=identity.id)
