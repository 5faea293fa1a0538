"""The web process's middlewares: publishes refused by admission answered first, request ids
and metrics, CORS, the error envelope (no traceback ever reaches a client), the deadline of a
request's body (a client dripping one is cut off), JSON-only request bodies (415), and the count
of requests in flight (a graceful stop).

**CORS** is one small middleware rather than `aiohttp-cors`: that library wants every route
registered with it (and adds an OPTIONS route per resource), takes allowed headers only as a
list or `*` (EP's clients send `X-MOLTIN-*` headers, a prefix; and `*` does not cover
`Authorization`), and knows nothing of the console, which must get no CORS at all. Here the
preflight is answered before routing, for every path outside `/console`, and every answer to
an allowed origin (errors included) carries the headers.
"""

from __future__ import annotations

import asyncio
import functools
import re
import time
import uuid
from collections.abc import Awaitable, Callable

import structlog
from aiohttp import StreamReader, web
from aiohttp.typedefs import Middleware
from prometheus_client import Counter, Histogram

from hub.api.errors import api_error, error_response
from hub.api.http import PUBLISHER, is_json
from hub.appkeys import SETTINGS
from hub.errors import (
    ApiError,
    DomainError,
    ErrorItem,
    Overloaded,
    RequestTimeout,
    StorageUnavailable,
    UnsupportedMediaType,
)
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
    408: "Request Timeout",
    413: "Payload Too Large",
    415: "Unsupported Media Type",
}


#: A request id the hub takes from its caller; any other is replaced by one of its own.
REQUEST_ID = re.compile(r"[A-Za-z0-9._:-]{1,128}")


def request_id_of(request: web.Request) -> str:
    """The caller's `X-Request-Id` if it is 1 to 128 characters of `[A-Za-z0-9._:-]` (a UUID,
    a trace id), else a new one: an id goes into every log line and back into the answer, so
    one of unbounded length or with control characters is neither echoed nor logged."""
    given = request.headers.get("X-Request-Id")
    if given is not None and REQUEST_ID.fullmatch(given):
        return given
    return uuid.uuid4().hex


@web.middleware
async def request_context(request: web.Request, handler: Handler) -> web.StreamResponse:
    request_id = request_id_of(request)
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


@web.middleware
async def json_bodies(request: web.Request, handler: Handler) -> web.StreamResponse:
    """A `/v2` request whose body says it is not JSON gets 415 before any handler reads it.

    A body without a Content-Type at all is read as JSON (and is a 400 if it is not).
    """
    if (
        request.path.startswith("/v2/")
        and request.body_exists
        and "Content-Type" in request.headers
        and not is_json(request.content_type)
    ):
        raise UnsupportedMediaType(request.content_type)
    return await handler(request)


# --- CORS ----------------------------------------------------------------------------------------

CORS_METHODS = "GET, POST, PUT, DELETE, OPTIONS"
#: Request headers a cross-origin caller may send, besides the CORS-safelisted ones.
CORS_HEADERS = (
    "authorization",
    "content-type",
    "idempotency-key",
    "x-hub-store",
    "x-request-id",
)
#: …and every header with one of these prefixes (EP's SDKs send `X-MOLTIN-SDK-LANGUAGE`,
#: `X-MOLTIN-SDK-VERSION`, `X-MOLTIN-APPLICATION`, `X-MOLTIN-CURRENCY`, …).
CORS_HEADER_PREFIXES = ("x-moltin-",)
#: Response headers a cross-origin caller's script may read.
CORS_EXPOSED = "Retry-After, X-Request-Id, Allow"
#: How long a browser may cache a preflight's answer (seconds).
CORS_MAX_AGE = "600"
#: Paths that never get CORS: the console's cookies must not be usable cross-origin.
NO_CORS = "/console"


def _header_allowed(name: str) -> bool:
    lowered = name.lower()
    return lowered in CORS_HEADERS or lowered.startswith(CORS_HEADER_PREFIXES)


def cors(origins: tuple[str, ...]) -> Middleware:
    """CORS for `origins` (lower-case `scheme://host[:port]`, or `*` for any), everywhere but
    the console.

    A preflight (`OPTIONS` with `Access-Control-Request-Method`) from an allowed origin is
    answered 204 with the methods and the requested headers that are allowed
    (`CORS_HEADERS`, `X-MOLTIN-*`); from another origin 403. Other requests from an allowed
    origin get `Access-Control-Allow-Origin` (and `Vary: Origin`) on whatever they are
    answered, errors included; requests from other origins are served without, so the browser
    keeps the answer from the calling page. No credentials mode: callers send their key or
    token in `Authorization`, not in cookies.
    """
    any_origin = "*" in origins
    allowed = frozenset(origins)

    def grant(origin: str) -> dict[str, str]:
        return {
            "Access-Control-Allow-Origin": "*" if any_origin else origin,
            "Access-Control-Expose-Headers": CORS_EXPOSED,
            "Vary": "Origin",
        }

    @web.middleware
    async def middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
        origin = request.headers.get("Origin")
        if origin is None or request.path == NO_CORS or request.path.startswith(NO_CORS + "/"):
            return await handler(request)
        ok = any_origin or origin.lower() in allowed
        if request.method == "OPTIONS" and "Access-Control-Request-Method" in request.headers:
            if not ok:
                detail = f"The origin {origin} may not call this API (HUB_CORS_ORIGINS)"
                return error_response([ErrorItem(403, "Forbidden", detail)], 403)
            requested = request.headers.get("Access-Control-Request-Headers", "")
            headers = [h.strip() for h in requested.split(",") if _header_allowed(h.strip())]
            answer = web.Response(status=204)
            answer.headers.update(grant(origin))
            answer.headers["Access-Control-Allow-Methods"] = CORS_METHODS
            answer.headers["Access-Control-Allow-Headers"] = ", ".join(
                dict.fromkeys([*headers, "Authorization", "Content-Type"])
            )
            answer.headers["Access-Control-Max-Age"] = CORS_MAX_AGE
            return answer
        if not ok:
            return await handler(request)
        try:
            response = await handler(request)
        except web.HTTPException as exc:  # redirects; errors are answers by now
            exc.headers.update(grant(origin))
            raise
        response.headers.update(grant(origin))
        return response

    return middleware


@functools.cache
def refusal_answer(detail: str) -> tuple[bytes, dict[str, str]]:
    """The body and headers (`Content-Type`, `Retry-After`) of the handler's answer to
    `Overloaded(detail)`, encoded once: admission's refusals (`shed_publishes`,
    `hub.api.shedding`)."""
    answer = api_error(Overloaded(detail))
    response = error_response(answer.items, answer.status, answer.headers)
    assert isinstance(response.body, bytes)
    return response.body, dict(response.headers)


@web.middleware
async def shed_publishes(request: web.Request, handler: Handler) -> web.StreamResponse:
    """Under overload (`hub.services.publisher`: admission), a publish is answered 503 here,
    before the other middlewares, with the same answer the handler would give (the envelope,
    `Retry-After`, `X-Request-Id`): a refusal must cost far less than a publish, or refusing
    the excess of an overload takes the CPU the accepted requests need, and every request waits
    in the sockets' queues. Requests with an `Origin` take the ordinary path (CORS headers).
    Most refusals under overload never get here: `hub.api.shedding` answers them earlier."""
    if (
        request.method == "POST"
        and request.path == "/v2/events"
        and "Origin" not in request.headers
    ):
        refused = request.app[PUBLISHER].refusal()
        if refused is not None:
            REFUSED_ANSWERS.inc()
            body, headers = refusal_answer(refused)
            return web.Response(
                body=body, status=503, headers=headers | {"X-Request-Id": request_id_of(request)}
            )
    return await handler(request)


REFUSED_ANSWERS = REQUESTS.labels("POST", "/v2/events", "503")


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


class BodyTimedOut(TimeoutError):
    """Set on a request's body stream when its deadline passes: every read of it raises this.

    A `TimeoutError`, so that aiohttp, which reads what is left of an unread body after the
    answer (its lingering close), stops at once and closes the connection.
    """


def _expire(body: StreamReader) -> None:
    if not body.is_eof():
        body.set_exception(BodyTimedOut())


@web.middleware
async def body_deadline(request: web.Request, handler: Handler) -> web.StreamResponse:
    """A request's body must arrive within `HUB_BODY_TIMEOUT` seconds of its headers.

    Bodies are read by the handlers (after the key check, so that an unknown caller's body is
    never buffered); past the deadline, a read of the body fails (`BodyTimedOut`), the answer is
    a 408, and the connection is closed; so is one whose handler answered without reading a
    body still coming. A body already in when the deadline passes is left alone, however long
    the handler then takes. (How long a connection may take to send its
    headers is the server's keep-alive timeout: `hub.runner`.)
    """
    if not request.body_exists:
        return await handler(request)
    seconds = request.app[SETTINGS].body_timeout
    timer = asyncio.get_running_loop().call_later(seconds, _expire, request.content)
    try:
        return await handler(request)
    except BodyTimedOut:
        log.info("request_body_timed_out", method=request.method, path=request.path)
        raise RequestTimeout(seconds) from None
    finally:
        # A body still coming after the answer (the handler refused the request unread) keeps
        # its deadline: aiohttp reads the rest before it closes, and should not wait longer.
        if request.content.is_eof():
            timer.cancel()
