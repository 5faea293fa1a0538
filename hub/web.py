"""The web process's composition root: one aiohttp application with the API (`/v2`, the
operations routes, `/openapi.json` and `/docs`) and the operator console (`/console`).

`create_app` is the one place that knows every part of the web process; `hub.runner` serves it
(and adds the dispatcher when the process runs one), the tests serve it on loopback.
"""

from __future__ import annotations

from collections.abc import AsyncIterator

from aiohttp import web
from sqlalchemy.ext.asyncio import AsyncEngine

from hub.api.http import PUBLISHER, RATE_LIMITER
from hub.api.middleware import error_envelope, request_context
from hub.api.openapi import openapi_routes
from hub.api.ops import ops
from hub.api.ratelimit import RateLimiter
from hub.api.routes import routes
from hub.appkeys import CATALOGUE, ENGINE, SETTINGS
from hub.console import console_app
from hub.events import EventCatalogue, load_catalogue
from hub.services.publisher import Publisher
from hub.settings import Settings


def create_app(
    settings: Settings, engine: AsyncEngine, *, catalogue: EventCatalogue | None = None
) -> web.Application:
    """The web application; the caller owns `engine`."""
    app = web.Application(
        middlewares=[request_context, error_envelope], client_max_size=settings.max_body_bytes
    )
    app[SETTINGS] = settings
    app[ENGINE] = engine
    app[CATALOGUE] = catalogue or load_catalogue()
    app[RATE_LIMITER] = RateLimiter(settings.api_rate_limit, settings.api_rate_burst)
    app.cleanup_ctx.append(_publisher)
    app.add_routes(ops)
    app.add_routes(openapi_routes)
    app.add_routes(routes)
    app.add_subapp("/console", console_app())
    return app


async def _publisher(app: web.Application) -> AsyncIterator[None]:
    """The process's group-commit publisher (`hub.services.publisher`), for the life of the app."""
    publisher = Publisher(app[ENGINE], max_wait=app[SETTINGS].publish_max_wait)
    publisher.start()
    app[PUBLISHER] = publisher
    yield
    await publisher.stop()
