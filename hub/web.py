"""The web process's composition root: one aiohttp application with the API (`/v2`, the token
endpoint `/oauth/access_token`, the operations routes, `/openapi.json` and `/docs`) and the
operator console (`/console`).

`create_app` is the one place that knows every part of the web process; `hub.runner` serves it
(and adds the dispatcher when the process runs one), the tests serve it on loopback.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator

from aiohttp import web
from aiohttp.typedefs import Middleware
from sqlalchemy.ext.asyncio import AsyncEngine

from hub.api.http import KNOWN_CREDENTIALS, PUBLISHER, RATE_LIMITER
from hub.api.middleware import (
    IN_FLIGHT,
    InFlight,
    body_deadline,
    cors,
    error_envelope,
    json_bodies,
    request_context,
    shed_publishes,
)
from hub.api.oauth import oauth
from hub.api.openapi import openapi_routes
from hub.api.ops import STATUS_CACHE, StatusCache, ops
from hub.api.routes import routes
from hub.appkeys import CATALOGUE, ENGINE, SETTINGS, SIGN_IN_LIMITER
from hub.console import console_app
from hub.events import EventCatalogue, load_catalogue
from hub.ratelimit import RateLimiter, Share
from hub.services.access import KnownCredentials
from hub.services.publisher import Publisher
from hub.settings import Settings
from hub.store import notices
from hub.store.engine import plain_url
from hub.store.stores import KEYS_CHANNEL


def create_app(
    settings: Settings,
    engine: AsyncEngine,
    *,
    catalogue: EventCatalogue | None = None,
    share: Share | None = None,
) -> web.Application:
    """The web application; the caller owns `engine`. `share` is this process's part of the
    deployment-wide limits, kept up to date by the process's heartbeat (`hub.runner`); without
    one the process enforces the whole limits itself."""
    share = share or Share()
    in_flight = InFlight()
    # Outermost first: requests in flight are counted for a graceful stop; publishes refused
    # by admission are answered before anything else is spent on them; CORS headers go on
    # every answer, errors included; the 415 check is an error like any other.
    middlewares: list[Middleware] = [in_flight.middleware, shed_publishes, request_context]
    if settings.cors_origins:
        middlewares.append(cors(settings.cors_origins))
    middlewares += [error_envelope, body_deadline, json_bodies]
    app = web.Application(middlewares=middlewares, client_max_size=settings.max_body_bytes)
    app[IN_FLIGHT] = in_flight
    app.on_response_prepare.append(in_flight.on_prepare)
    app[SETTINGS] = settings
    app[ENGINE] = engine
    app[CATALOGUE] = catalogue or load_catalogue()
    app[RATE_LIMITER] = RateLimiter(settings.api_rate_limit, settings.api_rate_burst, share=share)
    app[SIGN_IN_LIMITER] = RateLimiter(
        settings.console_sign_in_rate / 60, settings.console_sign_in_burst, share=share
    )
    app[STATUS_CACHE] = StatusCache(ttl=settings.heartbeat_interval)
    app[KNOWN_CREDENTIALS] = KnownCredentials(settings.key_cache_seconds)
    app.cleanup_ctx.append(_publisher)
    app.cleanup_ctx.append(_revocation_notices)
    app.add_routes(ops)
    app.add_routes(openapi_routes)
    app.add_routes(oauth)
    app.add_routes(routes)
    app.add_subapp("/console", console_app())
    return app


async def _publisher(app: web.Application) -> AsyncIterator[None]:
    """The process's group-commit publisher (`hub.services.publisher`), for the life of the app."""
    settings = app[SETTINGS]
    publisher = Publisher(
        app[ENGINE], max_wait=settings.publish_max_wait, max_lag=settings.publish_max_lag
    )
    publisher.start()
    app[PUBLISHER] = publisher
    yield
    await publisher.stop()


async def _revocation_notices(app: web.Application) -> AsyncIterator[None]:
    """Listen for key revocations, so that the credentials this process verified lately are
    forgotten at once in every process (`hub.services.access.KnownCredentials`)."""
    known = app[KNOWN_CREDENTIALS]
    if known.ttl <= 0:
        yield
        return
    url = plain_url(app[ENGINE].url.render_as_string(hide_password=False))
    listening = asyncio.create_task(
        notices.listen(url, {KEYS_CHANNEL: known.forget_all}, heard=known.trust),
        name="hub-key-notices",
    )
    yield
    listening.cancel()
    with contextlib.suppress(asyncio.CancelledError):
        await listening
