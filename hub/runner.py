"""Running the hub: the API server and/or the dispatcher (and the AMQP ingest when
`HUB_AMQP_URL` is set), until SIGTERM or SIGINT or until one of them stops."""

from __future__ import annotations

import asyncio
import contextlib
import signal
from collections.abc import AsyncIterator

import structlog
from aiohttp import web
from sqlalchemy.ext.asyncio import AsyncEngine

from hub import crypto
from hub.dispatch import default_registry
from hub.dispatch.worker import Worker
from hub.events import load_catalogue
from hub.ingest import AmqpIngest
from hub.ingest.consumer import BATCH_LOOPS
from hub.services.secrets import check_readable
from hub.settings import Settings
from hub.store.engine import create_engine, migrate
from hub.web import create_app

log = structlog.get_logger(__name__)


def _stop_on_signals(stop: asyncio.Event) -> None:
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)


@contextlib.asynccontextmanager
async def running_worker(settings: Settings, engine_url: str) -> AsyncIterator[Worker]:
    """A started dispatcher (own engine, opened deliverers); stopped gracefully on exit."""
    engine = create_engine(engine_url, pool_size=max(2, min(settings.db_pool_size, 10)))
    await _check_keys(engine)
    registry = default_registry(settings)
    await registry.open()
    worker = Worker(settings, engine, registry, database_url=engine_url)
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


async def serve(
    settings: Settings, url: str, *, host: str, port: int, with_worker: bool, do_migrate: bool
) -> None:
    """`hub serve`: the API (and, unless told otherwise, a dispatcher) in this process."""
    stop = asyncio.Event()
    _stop_on_signals(stop)
    engine = create_engine(url, pool_size=settings.db_pool_size)
    try:
        if do_migrate:
            await migrate(engine)
        await _check_keys(engine)
        app = create_app(settings, engine)
        runner = web.AppRunner(app, access_log=None, shutdown_timeout=5)
        await runner.setup()
        site = web.TCPSite(runner, host, port)
        await site.start()
        log.info("api_listening", url=settings.base_url(), host=host, port=port)
        async with contextlib.AsyncExitStack() as stack:
            stopped = [stop]
            if with_worker:
                worker = await stack.enter_async_context(running_worker(settings, url))
                stopped.append(worker.stopped)
            if settings.amqp_url:
                ingest = await stack.enter_async_context(running_ingest(settings, url))
                stopped.append(ingest.stopped)
            await _first_set(stopped)
            log.info("shutting_down")
        await runner.cleanup()
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
    async with contextlib.AsyncExitStack() as stack:
        worker = await stack.enter_async_context(running_worker(settings, url))
        stopped = [stop, worker.stopped]
        if settings.amqp_url:
            ingest = await stack.enter_async_context(running_ingest(settings, url))
            stopped.append(ingest.stopped)
        await _first_set(stopped)
