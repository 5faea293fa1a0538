"""Paging the console's lists: keyset cursors in the query string, and the links to the pages
before and after, which keep every other parameter of the page (its filters, the other list's
page) as it is.

A cursor is the ``created_at`` and id of a row, ``2026-12-03T10:00:00.123456Z_<uuid>``:
``after=`` that row comes the next (older) page, ``before=`` it the previous (newer) one. A page
with two lists prefixes them (``jobs_after=``, ``logs_before=``). A cursor that does not parse is
a 400 page that says so, never a 500. Each page also carries the server's time in a
`Server-Timing` header (``app;dur=<ms>``), which the bench reads.
"""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any
from uuid import UUID

import aiohttp_jinja2
from aiohttp import web
from multidict import MultiDict

from hub.console.sessions import Refused
from hub.store.keyset import COUNT_CAP, Cursor, KeysetPage, Window

PAGE_SIZE = 50

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


def encode(cursor: Cursor) -> str:
    at = cursor.at.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")
    return f"{at}_{cursor.id}"


def decode(raw: str) -> Cursor | None:
    at, sep, row_id = raw.partition("_")
    if not sep:
        return None
    try:
        when = datetime.fromisoformat(at)
        return Cursor(when if when.tzinfo else when.replace(tzinfo=UTC), UUID(row_id))
    except ValueError:
        return None


def window(request: web.Request, prefix: str = "") -> Window:
    """The page the query string asks for (`prefix` names the list on a page with two)."""
    after, before = request.query.get(f"{prefix}after"), request.query.get(f"{prefix}before")
    if after and before:
        raise Refused(400, "Bad page link", "A page link gives either after= or before=, not both.")
    cursors: dict[str, Cursor | None] = {}
    for name, raw in (("after", after), ("before", before)):
        if raw:
            cursor = decode(raw)
            if cursor is None:
                raise Refused(
                    400,
                    "Bad page link",
                    f"{prefix}{name}= is not a page position (a time and an id, as the "
                    "console's Next and Previous links carry); start again from the first page.",
                )
            cursors[name] = cursor
    return Window(older_than=cursors.get("after"), newer_than=cursors.get("before"))


@dataclass(frozen=True, slots=True)
class Pager:
    """The links of a list's page, and how many rows the whole list has."""

    newer: str | None
    older: str | None
    first: str | None
    total: int
    shown: int

    @property
    def total_text(self) -> str:
        if self.total < 0:
            return "newest first"
        return f"more than {COUNT_CAP:,}" if self.total > COUNT_CAP else f"{self.total:,}"


def pager(request: web.Request, page: KeysetPage[Any], prefix: str = "") -> Pager:
    """The Previous / Next / Newest links of `page` of the list `prefix` on this request's page."""

    def link(name: str | None, cursor: Cursor | None) -> str:
        query = MultiDict(
            (k, v)
            for k, v in request.query.items()
            if k not in (f"{prefix}after", f"{prefix}before")
        )
        if name is not None and cursor is not None:
            query[f"{prefix}{name}"] = encode(cursor)
        return str(request.rel_url.with_query(query))

    paged = any(request.query.get(f"{prefix}{n}") for n in ("after", "before"))
    return Pager(
        newer=link("before", page.newer) if page.newer is not None else None,
        older=link("after", page.older) if page.older is not None else None,
        first=link(None, None) if paged else None,
        total=page.total,
        shown=len(page.items),
    )


@web.middleware
async def server_timing(request: web.Request, handler: Handler) -> web.StreamResponse:
    """Adds `Server-Timing: app;dur=<ms>` to the console's pages (not to the log stream)."""
    started = time.perf_counter()
    response = await handler(request)
    if not response.prepared:
        response.headers["Server-Timing"] = f"app;dur={(time.perf_counter() - started) * 1000:.1f}"
    return response


def setup(app: web.Application) -> None:
    """The console's paging: the timing header and the templates' helpers."""
    app.middlewares.append(server_timing)
    env = aiohttp_jinja2.get_env(app)
    env.globals["cursor_of"] = encode
