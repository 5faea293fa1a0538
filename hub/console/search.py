"""Finding an event: `/console/events` searches the store's events by event id, by the resource
id of their payload (`data.id`), by event key and time, newest first and a page at a time;
`/console/events/{id}` shows one event with every job it made and their attempts.

What the form was given and could not be read (an id that is not one, a time that is not a
time, a time range the wrong way round) is said above the form, which keeps what was typed:
a 400 page, never a 500.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime
from uuid import UUID

import aiohttp_jinja2
from aiohttp import web

from hub.appkeys import ENGINE
from hub.console import paging
from hub.console.sessions import need, not_found, page_context
from hub.store import events as event_store
from hub.store import search
from hub.store.keyset import KeysetPage

routes = web.RouteTableDef()


def parse_time(raw: str, label: str, problems: list[str]) -> datetime | None:
    """A `datetime-local` value or an RFC 3339 instant (a value without a zone is UTC)."""
    if not raw:
        return None
    try:
        value = datetime.fromisoformat(raw)
    except ValueError:
        problems.append(f"{label} must be a date and time such as 2026-11-22T10:00.")
        return None
    return value if value.tzinfo is not None else value.replace(tzinfo=UTC)


def _query(request: web.Request, problems: list[str]) -> search.EventQuery:
    q = request.query
    raw_id = (q.get("id") or "").strip()
    event_id = None
    if raw_id:
        try:
            event_id = UUID(raw_id)
        except ValueError:
            problems.append(
                "Event id must be an event's id, such as 0193a4c2-7d1e-7c4e-9a51-3f0c2b1d9e88 "
                "(to look for a resource, use Resource id)."
            )
    resource = (q.get("resource") or "").strip()
    if len(resource) > 500:
        problems.append("Resource id is at most 500 characters.")
        resource = ""
    key = (q.get("key") or "").strip()
    since = parse_time(q.get("since") or "", "From", problems)
    until = parse_time(q.get("until") or "", "To", problems)
    if since is not None and until is not None and until < since:
        problems.append("To must not be before From.")
    return search.EventQuery(
        event_id=event_id,
        resource_id=resource or None,
        triggered_by=key or None,
        since=since,
        until=until,
    )


@routes.get("/events")
async def events_page(request: web.Request) -> web.Response:
    session = need(request)
    problems: list[str] = []
    wanted = _query(request, problems)
    window = paging.window(request)
    page: KeysetPage[search.FoundEvent] | None = None
    if not problems:
        async with request.config_dict[ENGINE].connect() as conn:
            page = await search.find_events(
                conn, session.store_id, wanted, window=window, limit=paging.PAGE_SIZE
            )
    q = request.query
    searched = any(q.get(k) for k in ("id", "resource", "key", "since", "until"))
    return aiohttp_jinja2.render_template(
        "events.html",
        request,
        page_context(
            request,
            problems=problems,
            found=page.items if page is not None else [],
            pager=paging.pager(request, page) if page is not None else None,
            searched=searched,
            f_id=q.get("id") or "",
            f_resource=q.get("resource") or "",
            f_key=q.get("key") or "",
            f_since=q.get("since") or "",
            f_until=q.get("until") or "",
        ),
        status=400 if problems else 200,
    )


@routes.get("/events/{id}")
async def event_page(request: web.Request) -> web.Response:
    session = need(request)
    try:
        event_id = UUID(request.match_info["id"])
    except ValueError:
        raise not_found() from None
    async with request.config_dict[ENGINE].connect() as conn:
        event = await event_store.get_event(conn, session.store_id, event_id)
        if event is None:
            raise not_found()
        made = await search.event_jobs(conn, session.store_id, event_id)
    return aiohttp_jinja2.render_template(
        "event.html",
        request,
        page_context(
            request,
            event=event,
            resource_id=search.resource_id_of(event.payload),
            payload=json.dumps(event.payload, indent=2, ensure_ascii=False),
            made=made,
            limit=search.EVENT_JOBS_LIMIT,
        ),
    )
