"""Operations routes: liveness, readiness and Prometheus metrics.

Besides this process's own counters, `/metrics` carries the deployment's status as gauges (the
figures of `GET /v2/status`: processes by role, jobs by lane, the lag, the last minute's
deliveries). They come from a `StatusCache`: a scrape reads the database only when the figures
are older than `HUB_HEARTBEAT_INTERVAL` (scrapes in between are served from memory), at most one
scrape at a time refreshes them, and a scrape while the database is away serves the last
figures rather than failing.
"""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import time

import structlog
from aiohttp import web
from prometheus_client import CONTENT_TYPE_LATEST, Gauge, generate_latest
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine

from hub.api.http import json_response
from hub.appkeys import ENGINE, SETTINGS
from hub.errors import Unauthenticated
from hub.services import processes as process_service
from hub.store.models import PROCESS_ROLES

log = structlog.get_logger(__name__)

ops = web.RouteTableDef()

PROCESSES = Gauge("hub_processes", "Live hub processes in the deployment, by role", ["role"])
JOBS_DUE = Gauge("hub_jobs_due", "Pending jobs due now, by lane (first, retry)", ["lane"])
JOBS_SCHEDULED = Gauge(
    "hub_jobs_scheduled", "Pending jobs waiting for their time, by lane (first, retry)", ["lane"]
)
JOBS_DELIVERING = Gauge("hub_jobs_delivering", "Jobs in flight in the deployment")
JOBS_HELD = Gauge("hub_jobs_held", "Jobs held by the circuit breaker")
LAG = Gauge("hub_queue_lag_seconds", "How long the oldest due job has waited")
DELIVERIES = Gauge(
    "hub_deliveries_last_minute",
    "Delivery attempts recorded in the deployment over the last minute, by outcome",
    ["outcome"],
)
#: The most a scrape waits for the database before serving the last figures.
REFRESH_TIMEOUT = 2.0


class StatusCache:
    """The deployment gauges' figures, refreshed at most every `ttl` seconds."""

    def __init__(self, ttl: float) -> None:
        self.ttl = ttl
        self._at = float("-inf")
        self._lock = asyncio.Lock()

    def fresh(self) -> bool:
        return time.monotonic() - self._at < self.ttl

    async def refresh(self, engine: AsyncEngine, *, stale_after: float) -> None:
        """Read the status unless the figures are fresh; keep the last ones on failure."""
        if self.fresh():
            return
        async with self._lock:
            if self.fresh():
                return
            try:
                async with asyncio.timeout(REFRESH_TIMEOUT), engine.connect() as conn:
                    status = await process_service.status(conn, stale_after=stale_after)
            except Exception as exc:
                # Tried: the next scrape within `ttl` does not try again.
                self._at = time.monotonic()
                log.warning("status_gauges_stale", error=str(exc) or type(exc).__name__)
                return
            self.publish(status)

    def publish(self, status: process_service.DeploymentStatus) -> None:
        """Set the gauges from `status` (also what `GET /v2/status` read)."""
        self._at = time.monotonic()
        for role in PROCESS_ROLES:
            PROCESSES.labels(role).set(sum(p.role == role for p in status.processes))
        q = status.queue
        JOBS_DUE.labels("first").set(q.first_due)
        JOBS_DUE.labels("retry").set(q.retries_due)
        JOBS_SCHEDULED.labels("first").set(q.first_scheduled)
        JOBS_SCHEDULED.labels("retry").set(q.retries_scheduled)
        JOBS_DELIVERING.set(q.delivering)
        JOBS_HELD.set(q.held)
        LAG.set(q.lag_seconds)
        DELIVERIES.labels("succeeded").set(status.deliveries.succeeded)
        DELIVERIES.labels("failed").set(status.deliveries.failed)


STATUS_CACHE = web.AppKey("status_cache", StatusCache)


@ops.get("/healthz")
async def healthz(request: web.Request) -> web.Response:
    return json_response({"status": "ok"})


@ops.get("/readyz")
async def readyz(request: web.Request) -> web.Response:
    async with request.app[ENGINE].connect() as conn:
        await conn.execute(text("SELECT 1"))
    return json_response({"status": "ok"})


def _digest(text: str) -> bytes:
    return hashlib.sha256(text.encode()).digest()


@ops.get("/metrics")
async def metrics(request: web.Request) -> web.Response:
    """Open, unless `HUB_METRICS_TOKEN` is set: then only for `Authorization: Bearer <token>`,
    compared in constant time (as digests, so that not even the length shows)."""
    token = request.app[SETTINGS].metrics_token
    if token is not None:
        scheme, _, given = request.headers.get("Authorization", "").partition(" ")
        expected = _digest(token.get_secret_value())
        if scheme.lower() != "bearer" or not hmac.compare_digest(_digest(given.strip()), expected):
            raise Unauthenticated("/metrics needs Authorization: Bearer <HUB_METRICS_TOKEN>")
    await request.app[STATUS_CACHE].refresh(
        request.app[ENGINE], stale_after=request.app[SETTINGS].heartbeat_stale_after
    )
    response = web.Response(body=generate_latest())
    response.headers["Content-Type"] = CONTENT_TYPE_LATEST
    return response
