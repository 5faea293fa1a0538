"""Request and response plumbing shared by the handlers: JSON in and out, auth, pagination."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, TypeVar
from urllib.parse import urlencode
from uuid import UUID

import orjson
from aiohttp import web
from pydantic import BaseModel, ValidationError

from hub.appkeys import ENGINE, SETTINGS
from hub.auth import Permission, Principal
from hub.errors import (
    BadRequest,
    NotFound,
    PermissionDenied,
    TooManyRequests,
    Unauthenticated,
    ValidationFailed,
)
from hub.ratelimit import RateLimiter
from hub.services.access import Admit, KnownCredentials, authenticate, judge
from hub.services.inputs import DEPTH_PROBLEM, nesting_problem
from hub.services.publisher import Publisher
from hub.services.validation import problems
from hub.store.records import Page

RATE_LIMITER = web.AppKey("rate_limiter", RateLimiter)
PUBLISHER = web.AppKey("publisher", Publisher)
KNOWN_CREDENTIALS = web.AppKey("known_credentials", KnownCredentials)

M = TypeVar("M", bound=BaseModel)
T = TypeVar("T")

MAX_LIMIT = 100
DEFAULT_LIMIT = 25
#: PostgreSQL's OFFSET is a bigint; beyond it the query itself would fail.
MAX_OFFSET = 2**63 - 1


def dumps(value: Any) -> bytes:
    return orjson.dumps(value)


def json_response(document: Any, *, status: int = 200) -> web.Response:
    return web.Response(body=dumps(document), status=status, content_type="application/json")


def model_response(model: BaseModel, *, status: int = 200) -> web.Response:
    return json_response({"data": model.model_dump(mode="json")}, status=status)


def is_json(media: str) -> bool:
    """Is this media type (as `request.content_type` gives it) JSON: `application/json` or a
    JSON-based one such as `application/vnd.api+json`?"""
    return media == "application/json" or (
        media.startswith("application/") and media.endswith("+json")
    )


async def read_json(request: web.Request) -> Any:
    """The parsed body; 400 for anything that is not JSON, 422 for NUL characters and for
    objects and arrays nested more than `MAX_DEPTH` levels deep."""
    body = await request.read()
    if not body:
        raise BadRequest("The request body is empty; a JSON document is required")
    try:
        document = orjson.loads(body)
    except orjson.JSONDecodeError as exc:
        if str(exc).startswith("depth limit exceeded"):  # orjson's own limit, 1,024 levels
            raise ValidationFailed([(DEPTH_PROBLEM, None)]) from None
        raise BadRequest(f"The request body is not valid JSON: {exc}") from None
    if b"\\u0000" in body:
        # PostgreSQL cannot store NUL in text or jsonb.
        raise ValidationFailed([("strings must not contain the NUL character (\\u0000)", None)])
    problem = nesting_problem(body)
    if problem is not None:
        raise ValidationFailed([(problem, None)])
    return document


def parse_data(document: Any, model: type[M]) -> M:
    """Validate `{"data": …}` with `model`; every problem becomes a 422 item."""
    if not isinstance(document, dict) or "data" not in document:
        raise ValidationFailed([("the body must be an object with a data member", "data")])
    extra = set(document) - {"data"}
    if extra:
        raise ValidationFailed(
            [(f"{name} is not a known attribute", name) for name in sorted(extra)]
        )
    try:
        return model.model_validate(document["data"])
    except ValidationError as exc:
        raise ValidationFailed(problems(exc, "data")) from None


def path_uuid(request: web.Request, name: str) -> UUID:
    """A UUID from the path; anything else cannot name a resource, so 404."""
    try:
        return UUID(request.match_info[name])
    except ValueError:
        raise NotFound() from None


def rate_limit(request: web.Request) -> Admit:
    """The `admit` hook of `hub.services.access`: the key's request rate
    (`hub.ratelimit`), a 429 when it is over."""
    limiter = request.app[RATE_LIMITER]

    def admit(principal: Principal) -> None:
        wait = limiter.take(principal.key_id)
        if wait is not None:
            raise TooManyRequests(wait)

    return admit


async def authorize(request: web.Request, permission: Permission) -> Principal:
    """The caller's principal if their bearer key (or access token) is valid and grants
    `permission`, acting on the store named by `X-Hub-Store` (admin keys) or else the key's own.

    The checks and their order are `hub.services.access.authenticate`'s; a key over its rate
    limit (`hub.ratelimit`) is refused with 429 once it is identified, before its rights
    are judged.
    """
    header = request.headers.get("Authorization", "")
    scheme, _, token = header.partition(" ")
    if scheme.lower() != "bearer":
        raise Unauthenticated()
    token = token.strip()
    store = request.headers.get("X-Hub-Store") or None
    known = request.app[KNOWN_CREDENTIALS]
    if store is None and (principal := known.get(token)) is not None:
        # Verified lately (`KnownCredentials`): no connection needed.
        judge(principal, permission, rate_limit(request))
        return principal
    async with request.app[ENGINE].connect() as conn:
        try:
            return await authenticate(
                conn, token, permission, store=store, admit=rate_limit(request), known=known
            )
        except PermissionDenied as exc:
            if not exc.other_store:
                raise
            raise PermissionDenied(
                "Only admin keys may act on another store (X-Hub-Store)",
                role=exc.role,
                other_store=True,
            ) from None


@dataclass(frozen=True, slots=True)
class PageParams:
    limit: int
    offset: int


def _int_param(request: web.Request, name: str, default: int, low: int, high: int | None) -> int:
    raw = request.query.get(name)
    if raw is None:
        return default
    try:
        value = int(raw)
    except ValueError:
        raise BadRequest(f"{name} must be an integer", source=name) from None
    if value < low or (high is not None and value > high):
        bound = f"between {low} and {high}" if high is not None else f"at least {low}"
        raise BadRequest(f"{name} must be {bound}", source=name)
    return value


def page_params(request: web.Request) -> PageParams:
    return PageParams(
        limit=_int_param(request, "page[limit]", DEFAULT_LIMIT, 1, MAX_LIMIT),
        offset=_int_param(request, "page[offset]", 0, 0, MAX_OFFSET),
    )


def list_response(
    request: web.Request,
    page: Page[T],
    params: PageParams,
    render: Callable[[T], BaseModel],
    *,
    ep_results: bool = False,
) -> web.Response:
    """The spec's list envelope with self/first/last/next/prev links and totals.

    `ep_results` adds what Elastic Path documents for its log lists (and its SDK's types
    read), beside `meta.page` and `meta.results`: `results.total` at the top, and the page's
    `limit`, `offset`, `current` and `total` directly in `meta`.
    """
    base = request.app[SETTINGS].base_url() + request.path
    kept = [(k, v) for k, v in request.query.items() if k not in ("page[offset]", "page[limit]")]

    def link(offset: int) -> str:
        query = [*kept, ("page[offset]", str(offset)), ("page[limit]", str(params.limit))]
        return f"{base}?{urlencode(query, safe='[]')}"

    last = max(0, (page.total - 1) // params.limit * params.limit)
    nxt = params.offset + params.limit
    page_meta = {
        "limit": params.limit,
        "offset": params.offset,
        "current": params.offset // params.limit + 1,
        "total": max(1, -(-page.total // params.limit)),
    }
    document: dict[str, Any] = {
        "data": [render(item).model_dump(mode="json") for item in page.items],
        "links": {
            "self": link(params.offset),
            "first": link(0),
            "last": link(last),
            "next": link(nxt) if nxt < page.total else None,
            "prev": link(max(0, params.offset - params.limit)) if params.offset > 0 else None,
        },
        "meta": {"page": page_meta, "results": {"total": page.total}},
    }
    if ep_results:
        document["meta"] |= page_meta
        document["results"] = {"total": page.total}
    return json_response(document)
