"""The API's middlewares: request ids and metrics, and the error envelope (no traceback ever
reaches a client)."""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import Awaitable, Callable

import structlog
from aiohttp import web
from prometheus_client import Counter, Histogram

from hub.api.errors import api_error, error_response
from hub.appkeys import SETTINGS
from hub.errors import ApiError, DomainError, ErrorItem, StorageUnavailable
from hub.store.engine import distrust_connections, storage_unavailable

log = structlog.get_logger(__name__)

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]

REQUESTS = Counter(
    "hub_http_requests_total", "HTTP requests answered", ["method", "route", "status"]
)
LATENCY = Histogram("hub_http_request_seconds", "HTTP request latency", ["method", "route"])

_STATUS_TITLES = {
    400: "Bad Request",
    404: "Not Found",
    405: "Method Not Allowed",
    413: "Payload Too Large",
    415: "Unsupported Media Type",
}


@web.middleware
async def request_context(request: web.Request, handler: Handler) -> web.StreamResponse:
    request_id = request.headers.get("X-Request-Id") or uuid.uuid4().hex
    structlog.contextvars.bind_contextvars(request_id=request_id)
    route = request.match_info.route.resource
    route_name = route.canonical if route is not None else "unmatched"
    started = time.perf_counter()
    status = 500
    try:
        response = await handler(request)
        status = response.status
        response.headers["X-Request-Id"] = request_id
        return response
    finally:
        LATENCY.labels(request.method, route_name).observe(time.perf_counter() - started)
        REQUESTS.labels(request.method, route_name, str(status)).inc()
        structlog.contextvars.unbind_contextvars("request_id")


@web.middleware
async def error_envelope(request: web.Request, handler: Handler) -> web.StreamResponse:
    """Every error leaves in the spec's envelope; no traceback ever reaches a client."""
    try:
        return await handler(request)
    except DomainError as exc:
        answer = api_error(exc)
        return error_response(answer.items, answer.status, answer.headers)
    except ApiError as exc:
        return error_response(exc.items, exc.status, exc.headers)
    except web.HTTPException as exc:
        if exc.status < 400:
            raise
        title = _STATUS_TITLES.get(exc.status, exc.reason)
        detail = {
            404: "The resource could not be found",
            405: f"{request.method} is not allowed on {request.path}",
            413: f"The request body is larger than {request.app[SETTINGS].max_body_bytes} bytes",
        }.get(exc.status, exc.text or exc.reason)
        response = error_response([ErrorItem(exc.status, title, detail)], exc.status)
        if exc.status == 405 and "Allow" in exc.headers:
            response.headers["Allow"] = exc.headers["Allow"]
        return response
    except Exception as exc:
        if storage_unavailable(exc):
            distrust_connections()
            log.warning("storage_unavailable", error=type(exc).__name__)
            down = StorageUnavailable()
            return error_response(down.items, down.status, down.headers)
        log.exception("request_failed", method=request.method, path=request.path)
        item = ErrorItem(
            500, "Internal Server Error", "An unexpected error occurred; it was logged"
        )
        return error_response([item], 500)


class InFlight:
    """The web process's requests in flight, for a graceful stop (`hub.runner`).

    Once `drain` is called (the listening socket is already closed), every answer carries
    `Connection: close`, so clients on kept-alive connections take their next request
    elsewhere, and `drain` returns when the last request in flight has been answered or after
    `within` seconds. aiohttp's own shutdown stops reading from open connections at once,
    which would cut off a request whose body is still arriving: this comes first.
    """

    def __init__(self) -> None:
        self.count = 0
        self.draining = False
        self._idle = asyncio.Event()
        self._idle.set()

    @web.middleware
    async def middleware(self, request: web.Request, handler: Handler) -> web.StreamResponse:
        self.count += 1
        self._idle.clear()
        try:
            return await handler(request)
        finally:
            self.count -= 1
            if self.count == 0:
                self._idle.set()

    async def on_prepare(self, request: web.Request, response: web.StreamResponse) -> None:
        if self.draining:
            response.force_close()

    async def drain(self, within: float) -> bool:
        """Answer the requests in flight, closing their connections; False after `within` s."""
        self.draining = True
        try:
            async with asyncio.timeout(within):
                await self._idle.wait()
        except TimeoutError:
            log.warning("requests_cut_at_shutdown", count=self.count)
            return False
        return True


IN_FLIGHT = web.AppKey("in_flight", InFlight)
