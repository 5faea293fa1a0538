"""Running the hub: the API server and/or the dispatcher, until SIGTERM or SIGINT."""

from __future__ import annotations

import asyncio
import contextlib
import signal
from collections.abc import AsyncIterator

import structlog
from aiohttp import web

from hub.api.app import create_app
from hub.dispatch import default_registry
from hub.dispatch.worker import Worker
from hub.settings import Settings
from hub.store.engine import create_engine, migrate

log = structlog.get_logger(__name__)


def _stop_on_signals(stop: asyncio.Event) -> None:
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)


@contextlib.asynccontextmanager
async def running_worker(settings: Settings, engine_url: str) -> AsyncIterator[Worker]:
    """A started dispatcher (own engine, opened deliverers); stopped gracefully on exit."""
    engine = create_engine(engine_url, pool_size=max(2, min(settings.db_pool_size, 10)))
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
        app = create_app(settings, engine)
        runner = web.AppRunner(app, access_log=None, shutdown_timeout=5)
        await runner.setup()
        site = web.TCPSite(runner, host, port)
        await site.start()
        log.info("api_listening", url=settings.base_url(), host=host, port=port)
        async with contextlib.AsyncExitStack() as stack:
            if with_worker:
                worker = await stack.enter_async_context(running_worker(settings, url))
                worker_task = asyncio.ensure_future(_wait_stopped(worker))
                await asyncio.wait(
                    [asyncio.ensure_future(stop.wait()), worker_task],
                    return_when=asyncio.FIRST_COMPLETED,
                )
            else:
                await stop.wait()
            log.info("shutting_down")
        await runner.cleanup()
    finally:
        await engine.dispose()


async def _wait_stopped(worker: Worker) -> None:
    await worker.stopped.wait()


async def work(settings: Settings, url: str) -> None:
    """`hub worker`: a dispatcher-only process."""
    stop = asyncio.Event()
    _stop_on_signals(stop)
    async with running_worker(settings, url) as worker:
        await asyncio.wait(
            [asyncio.ensure_future(stop.wait()), asyncio.ensure_future(worker.stopped.wait())],
            return_when=asyncio.FIRST_COMPLETED,
        )
