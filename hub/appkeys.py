"""What every part of the web process reads from the aiohttp application: the settings, the
database engine, the event catalogue and the console's sign-in throttle. `hub.web` sets them
once; the API and the console read them (sub-applications through `request.config_dict`)."""

from __future__ import annotations

from aiohttp import web
from sqlalchemy.ext.asyncio import AsyncEngine

from hub.events import EventCatalogue
from hub.ratelimit import RateLimiter
from hub.settings import Settings

SETTINGS = web.AppKey("settings", Settings)
ENGINE = web.AppKey("engine", AsyncEngine)
CATALOGUE = web.AppKey("catalogue", EventCatalogue)
SIGN_IN_LIMITER = web.AppKey("sign_in_limiter", RateLimiter)
"""Console sign-in attempts per client address (`HUB_CONSOLE_SIGN_IN_RATE`, per minute)."""
