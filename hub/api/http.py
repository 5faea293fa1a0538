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
from sqlalchemy.ext.asyncio import AsyncEngine

from hub.api.ratelimit import RateLimiter
from hub.auth import Permission, Principal, key_matches, key_prefix
from hub.errors import (
    BadRequest,
    Forbidden,
    NotFound,
    TooManyRequests,
    Unauthorized,
    ValidationFailed,
)
from hub.events import EventCatalogue
from hub.services.validation import problems
from hub.settings import Settings
from hub.store import stores
from hub.store.engine import driver
from hub.store.records import Page

SETTINGS = web.AppKey("settings", Settings)
ENGINE = web.AppKey("engine", AsyncEngine)
CATALOGUE = web.AppKey("catalogue", EventCatalogue)
RATE_LIMITER = web.AppKey("rate_limiter", RateLimiter)

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


async def read_json(request: web.Request) -> Any:
    """The parsed body; 400 for anything that is not JSON, 422 for NUL characters."""
    body = await request.read()
    if not body:
        raise BadRequest("The request body is empty; a JSON document is required")
    try:
        document = orjson.loads(body)
    except orjson.JSONDecodeError as exc:
        raise BadRequest(f"The request body is not valid JSON: {exc}") from None
    if b"\\u0000" in body:
        # PostgreSQL cannot store NUL in text or jsonb.
        raise ValidationFailed([("strings must not contain the NUL character (\\u0000)", None)])
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


async def authorize(request: web.Request, permission: Permission) -> Principal:
    """The caller's principal if their key is valid and grants `permission`.

    In this order: 401 for a missing, malformed, unknown or revoked key (the digest compared in
    constant time); 429 when the key is over its rate limit (`hub.api.ratelimit`); 403 when its
    role lacks `permission` or a non-admin names another store; 404 for an unknown store.
    """
    header = request.headers.get("Authorization", "")
    scheme, _, token = header.partition(" ")
    token = token.strip()
    prefix = key_prefix(token) if scheme.lower() == "bearer" else None
    if prefix is None:
        raise Unauthorized()
    # One prepared statement in autocommit on the driver connection: no BEGIN or ROLLBACK round
    # trips, and none of SQLAlchemy's per-statement work, on every request.
    async with driver(request.app[ENGINE]) as db:
        found = await stores.find_active_key(db, prefix)
    if found is None or not key_matches(token, found[1]):
        raise Unauthorized()
    key = found[0]
    wait = request.app[RATE_LIMITER].take(key.id)
    if wait is not None:
        raise TooManyRequests(wait)
    principal = Principal(key.id, key.role, key.store_id, key.store_name)
    if not principal.can(permission):
        raise Forbidden(f"This key's role ({key.role}) does not allow this action")
    wanted = request.headers.get("X-Hub-Store")
    if wanted and wanted != key.store_name:
        if not principal.can(Permission.ANY_STORE):
            raise Forbidden("Only admin keys may act on another store (X-Hub-Store)")
        async with request.app[ENGINE].connect() as conn:
            store = await stores.get_store_by_name(conn, wanted)
        if store is None:
            raise NotFound(f"There is no store named {wanted!r}")
        principal = Principal(key.id, key.role, store.id, store.name)
    return principal


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


def bool_filter(request: web.Request, name: str) -> bool | None:
    raw = request.query.get(name)
    if raw is None:
        return None
    if raw.lower() in ("true", "1"):
        return True
    if raw.lower() in ("false", "0"):
        return False
    raise BadRequest(f"{name} must be true or false", source=name)


def list_response(
    request: web.Request, page: Page[T], params: PageParams, render: Callable[[T], BaseModel]
) -> web.Response:
    """The spec's list envelope with self/first/last/next/prev links and totals."""
    base = request.app[SETTINGS].base_url() + request.path
    kept = [(k, v) for k, v in request.query.items() if k not in ("page[offset]", "page[limit]")]

    def link(offset: int) -> str:
        query = [*kept, ("page[offset]", str(offset)), ("page[limit]", str(params.limit))]
        return f"{base}?{urlencode(query, safe='[]')}"

    last = max(0, (page.total - 1) // params.limit * params.limit)
    nxt = params.offset + params.limit
    return json_response(
        {
            "data": [render(item).model_dump(mode="json") for item in page.items],
            "links": {
                "self": link(params.offset),
                "first": link(0),
                "last": link(last),
                "next": link(nxt) if nxt < page.total else None,
                "prev": link(max(0, params.offset - params.limit)) if params.offset > 0 else None,
            },
            "meta": {
                "page": {
                    "limit": params.limit,
                    "offset": params.offset,
                    "current": params.offset // params.limit + 1,
                    "total": max(1, -(-page.total // params.limit)),
                },
                "results": {"total": page.total},
            },
        }
    )
