"""Bulk retry: every failed job of an integration's job list, as filtered (event key, time
range), sent again through the replay mechanism (`hub.services.replay`), after a confirmation
page that says how many.

What is retried is what a replay retries: each event whose *latest* job of the integration in
the range failed, once, as a new job (a failed job whose event has since been delivered is
not sent again; an ordered integration's jobs join the end of their key's queue). The
confirmation counts exactly that, with the same query; the number queued is said again after,
as it may have changed meanwhile. Manage keys only, with the console's CSRF token.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any
from urllib.parse import urlencode
from uuid import UUID

import aiohttp_jinja2
from aiohttp import web

from hub.appkeys import ENGINE
from hub.console.search import parse_time
from hub.console.sessions import Refused, checked_form, flash, manager, not_found, page_context
from hub.services import replay as replay_service
from hub.services.inputs import ReplayCreate
from hub.store import integrations

routes = web.RouteTableDef()

EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
FIELDS = ("event", "since", "until")
"""The job list's filters that a bulk retry keeps (its status is `failed`, by definition)."""


def link(request: web.Request, integration_id: UUID, status: str) -> str | None:
    """The confirmation page for the job list as filtered, or None when the list shows jobs
    of another status than failed."""
    if status not in ("", "failed"):
        return None
    kept = {k: request.query[k] for k in FIELDS if request.query.get(k)}
    query = f"?{urlencode(kept)}" if kept else ""
    return f"/console/integrations/{integration_id}/retry-failed{query}"


def _filters(values: dict[str, str]) -> tuple[str | None, ReplayCreate]:
    problems: list[str] = []
    since = parse_time(values.get("since", ""), "From", problems)
    until = parse_time(values.get("until", ""), "To", problems)
    if problems:
        raise Refused(400, "Bad filter", " ".join(problems))
    # The list shows jobs created up to `until` inclusive; a replay's window ends before it.
    end = until + timedelta(microseconds=1) if until is not None else None
    if end is not None and end <= (since or EPOCH):
        raise Refused(400, "Bad filter", "To must be after From.")
    data = ReplayCreate.model_validate(
        {"type": "integration-replay", "since": since or EPOCH, "until": end, "status": ["failed"]}
    )
    return (values.get("event") or "").strip() or None, data


def _uuid(request: web.Request) -> UUID:
    try:
        return UUID(request.match_info["id"])
    except ValueError:
        raise not_found() from None


@routes.get("/integrations/{id}/retry-failed")
async def confirm(request: web.Request) -> web.Response:
    session = manager(request)
    integration_id = _uuid(request)
    values = {k: request.query.get(k, "") for k in FIELDS}
    event_key, data = _filters(values)
    async with request.config_dict[ENGINE].connect() as conn:
        integration = await integrations.get_integration(conn, session.store_id, integration_id)
        if integration is None:
            raise not_found()
        count = await replay_service.count(
            conn, session.store_id, integration_id, data, triggered_by=event_key
        )
    back = f"/console/integrations/{integration_id}"
    listed: dict[str, Any] = {"status": "failed"} | {k: v for k, v in values.items() if v}
    return aiohttp_jinja2.render_template(
        "bulk_retry.html",
        request,
        page_context(
            request,
            integration=integration,
            count=count,
            values=values,
            event_key=event_key,
            back=back,
            listed=f"{back}?{urlencode(listed)}",
        ),
    )


@routes.post("/integrations/{id}/retry-failed")
async def retry_failed(request: web.Request) -> web.Response:
    session = manager(request)
    form = await checked_form(request, session)
    integration_id = _uuid(request)
    event_key, data = _filters(form)
    async with request.config_dict[ENGINE].begin() as conn:
        record = await replay_service.start(
            conn, session.store_id, integration_id, data, triggered_by=event_key
        )
    expected = form.get("expected", "")
    changed = expected.isdigit() and int(expected) != record.total
    flash(
        session,
        "ok",
        f"Retry queued: {record.total} failed job(s) will be sent again as new jobs"
        + (f" ({expected} when you confirmed; the jobs changed meanwhile)." if changed else "."),
    )
    raise web.HTTPSeeOther(f"/console/integrations/{integration_id}")
