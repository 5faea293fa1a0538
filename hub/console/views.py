"""The operator console's pages: server-rendered, over the same store and role rules as the API
(the use cases in `hub.services`). Sessions and CSRF are `hub.console.sessions`'s.
"""

from __future__ import annotations

import asyncio
import json
import secrets
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from urllib.parse import urlencode
from uuid import UUID

import aiohttp_jinja2
import jinja2
from aiohttp import web
from aiohttp_sse import sse_response

from hub.appkeys import CATALOGUE, ENGINE
from hub.auth import Permission, key_prefix
from hub.console import bulk, charts, editing, paging, search, sessions, switching
from hub.console.sessions import (
    CURRENT,
    LOGIN_CSRF_COOKIE,
    SESSION_COOKIE,
    SESSION_TTL,
    Refused,
    Session,
    checked_form,
    cookie_options,
    flash,
    manager,
    need,
    not_found,
)
from hub.errors import (
    Conflict,
    DomainError,
    NotFound,
    PayloadTooLarge,
    PermissionDenied,
    Unauthenticated,
    ValidationFailed,
)
from hub.services import access
from hub.services import events as event_service
from hub.services import integrations as integration_service
from hub.services import jobs as job_service
from hub.services import replay as replay_service
from hub.services.inputs import IntegrationUpdate, ReplayCreate, in_utc
from hub.services.integrations import masked_configuration
from hub.store import events, integrations, pages
from hub.store import jobs as job_store
from hub.store import logs as log_store
from hub.store.listing import Condition, Op
from hub.store.models import INTEGRATION_TYPES, JOB_STATUSES

HERE = Path(__file__).parent
STREAM_POLL = 1.0
"""Seconds between the log stream's looks at the logs table."""
BODY_EXCERPT = 2000
"""Characters of a response body the job page shows."""
PAGE_SIZE = 50

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


#: The console's page for a use case's refusal: status and title (the detail is the error's).
REFUSALS: dict[type[DomainError], tuple[int, str]] = {
    Unauthenticated: (401, "Unauthorized"),
    PermissionDenied: (403, "Forbidden"),
    Conflict: (409, "Conflict"),
    PayloadTooLarge: (413, "Payload Too Large"),
    ValidationFailed: (422, "Validation Error"),
    DomainError: (400, "Bad Request"),
}


@web.middleware
async def console_middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
    """Finds the session, and renders refusals and errors as pages rather than JSON."""
    found = await sessions.find(request)
    if found is not None:
        request[CURRENT] = found
    try:
        if any("\x00" in value for value in request.query.values()):
            # PostgreSQL cannot hold a NUL character, nor compare one.
            raise Refused(400, "Bad filter", "A filter must not contain the NUL character.")
        response = await handler(request)
    except Refused as exc:
        response = _error_page(request, exc.status, exc.title, exc.detail)
    except NotFound:
        gone = not_found()
        response = _error_page(request, gone.status, gone.title, gone.detail)
    except DomainError as exc:
        status, title = next(REFUSALS[c] for c in type(exc).__mro__ if c in REFUSALS)
        response = _error_page(request, status, title, exc.problems[0][0])
    except web.HTTPNotFound:
        gone = not_found()
        response = _error_page(request, gone.status, gone.title, gone.detail)
    response.headers.setdefault("Cache-Control", "no-store")
    response.headers.setdefault("X-Frame-Options", "DENY")
    response.headers.setdefault(
        "Content-Security-Policy",
        "default-src 'self'; frame-ancestors 'none'; form-action 'self'; base-uri 'none'",
    )
    return response


def _error_page(request: web.Request, status: int, title: str, detail: str) -> web.Response:
    return aiohttp_jinja2.render_template(
        "error.html",
        request,
        _context(request, title=title, detail=detail, status=status),
        status=status,
    )


def _context(request: web.Request, **values: Any) -> dict[str, Any]:
    session: Session | None = request.get(CURRENT)
    flash: list[tuple[str, str]] = []
    if session is not None:
        flash, session.flash = session.flash, []
    return {"session": session, "flash": flash, "path": request.path} | values


# --- helpers -----------------------------------------------------------------------------------


def _uuid(request: web.Request, name: str) -> UUID:
    try:
        return UUID(request.match_info[name])
    except ValueError:
        raise not_found() from None


def _iso(value: datetime | None) -> str:
    if value is None:
        return ""
    return value.astimezone(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def _when(raw: str | None, name: str) -> datetime | None:
    """A `datetime-local` field or an RFC 3339 instant; local values are taken as UTC."""
    if not raw:
        return None
    try:
        value = datetime.fromisoformat(raw)
    except ValueError:
        raise Refused(
            400, "Bad filter", f"{name} must be a date and time such as 2026-11-22T10:00"
        ) from None
    try:
        return in_utc(value if value.tzinfo is not None else value.replace(tzinfo=UTC))
    except ValueError as exc:
        raise Refused(400, "Bad filter", f"{name} {exc}") from None


def _stream_row(row: pages.StoreLogRow) -> dict[str, Any]:
    return {
        "id": str(row.id),
        "integration_id": str(row.integration_id),
        "integration_name": row.integration_name,
        "job_id": str(row.job_id),
        "attempt": row.attempt,
        "succeeded": row.succeeded,
        "processing_time": round(row.processing_time, 3),
        "status_code": row.status_code,
        "error_detail": row.error_detail,
        "created_at": _iso(row.created_at),
    }


# --- pages -------------------------------------------------------------------------------------

routes = web.RouteTableDef()


@routes.get("")
@routes.get("/")
async def home(request: web.Request) -> web.Response:
    target = "/console/integrations" if CURRENT in request else "/console/login"
    raise web.HTTPSeeOther(target)


@routes.get("/login")
async def login_page(request: web.Request) -> web.Response:
    return _login_response(request, error=None, status=200)


def _login_response(request: web.Request, *, error: str | None, status: int) -> web.Response:
    token = secrets.token_urlsafe(24)
    response = aiohttp_jinja2.render_template(
        "login.html", request, _context(request, error=error, csrf=token), status=status
    )
    response.set_cookie(LOGIN_CSRF_COOKIE, token, max_age=3600, **cookie_options(request))
    return response


@routes.post("/login")
async def login(request: web.Request) -> web.Response:
    wait = sessions.admit_sign_in(request)
    if wait is not None:
        response = _login_response(
            request,
            error=f"Too many sign-in attempts from your address; try again in {wait} s.",
            status=429,
        )
        response.headers["Retry-After"] = str(wait)
        return response
    form = await request.post()
    token, cookie = form.get("csrf"), request.cookies.get(LOGIN_CSRF_COOKIE)
    if not isinstance(token, str) or not cookie or not secrets.compare_digest(token, cookie):
        return _login_response(
            request, error="The sign-in form expired; please try again.", status=403
        )
    raw = form.get("key")
    key = raw.strip() if isinstance(raw, str) else ""
    try:
        if key_prefix(key) is None:  # an access token (hubt_…) is no key to sign in with
            raise Unauthenticated()
        async with request.config_dict[ENGINE].connect() as conn:
            principal = await access.authenticate(conn, key, Permission.READ)
    except Unauthenticated:
        return _login_response(
            request,
            error="That key is not valid. Paste a whole, active API key (hub_…); "
            "`hub keys create` makes one.",
            status=401,
        )
    except PermissionDenied as exc:
        return _login_response(
            request,
            error=f"A {exc.role} key cannot read integrations; sign in with a view or manage key.",
            status=403,
        )
    sid = await sessions.start(request, principal, prefix=key_prefix(key) or "")
    response = web.HTTPSeeOther("/console/integrations")
    response.set_cookie(SESSION_COOKIE, sid, max_age=int(SESSION_TTL), **cookie_options(request))
    response.del_cookie(LOGIN_CSRF_COOKIE, path="/console")
    raise response


@routes.post("/logout")
async def logout(request: web.Request) -> web.Response:
    session = need(request)
    await checked_form(request, session)
    await sessions.end(request)
    response = web.HTTPSeeOther("/console/login")
    response.del_cookie(SESSION_COOKIE, path="/console")
    raise response


@routes.get("/integrations")
async def integrations_page(request: web.Request) -> web.Response:
    session = need(request)
    kind = request.query.get("type") or None
    enabled_raw = request.query.get("enabled") or ""
    enabled = {"true": True, "false": False}.get(enabled_raw)
    wanted = [Condition("integration_type", Op.EQ, (kind,))] if kind else []
    if enabled is not None:
        wanted.append(Condition("enabled", Op.EQ, (enabled,)))
    window = paging.window(request)
    async with request.config_dict[ENGINE].connect() as conn:
        page = await pages.integrations_page(
            conn, session.store_id, wanted, window=window, limit=paging.PAGE_SIZE
        )
        overview = await charts.store_overview(conn, session.store_id)
        # "Success 1 h" from the charts' rollup (to the minute) rather than the hour's logs.
        rows = await pages.statuses_of(
            conn,
            page.items,
            window=integration_service.STATUS_WINDOW,
            recent=overview.last_hour,
        )
    filtered = kind is not None or enabled is not None
    return aiohttp_jinja2.render_template(
        "integrations.html",
        request,
        _context(
            request,
            rows=rows,
            total=paging.pager(request, page).total_text,
            pager=paging.pager(request, page),
            overview=overview,
            kind=kind or "",
            enabled=enabled_raw,
            filtered=filtered,
            types=INTEGRATION_TYPES,
        ),
    )


async def _integration_context(
    request: web.Request, session: Session, integration_id: UUID
) -> dict[str, Any]:
    q = request.query
    status = q.get("status") or ""
    if status and status not in JOB_STATUSES:
        raise Refused(400, "Bad filter", f"status must be one of {', '.join(JOB_STATUSES)}")
    event_key = (q.get("event") or "").strip()
    since, until = _when(q.get("since"), "From"), _when(q.get("until"), "To")
    wanted: list[Condition] = []
    if status:
        wanted.append(Condition("status", Op.EQ, (status,)))
    if event_key:
        wanted.append(Condition("triggered_by", Op.EQ, (event_key,)))
    if since is not None:
        wanted.append(Condition("created_at", Op.GE, (since,)))
    if until is not None:
        wanted.append(Condition("created_at", Op.LE, (until,)))
    logs_ok = q.get("logs") or ""
    succeeded = {"ok": True, "failed": False}.get(logs_ok)
    outcome = [] if succeeded is None else [Condition("succeeded", Op.EQ, (succeeded,))]
    jobs_window, logs_window = paging.window(request, "jobs_"), paging.window(request, "logs_")
    async with request.config_dict[ENGINE].connect() as conn:
        record = await integration_service.status(conn, session.store_id, integration_id)
        jobs = await pages.jobs_page(
            conn, session.store_id, integration_id, wanted, window=jobs_window, limit=PAGE_SIZE
        )
        logs = await pages.logs_page(
            conn, session.store_id, integration_id, outcome, window=logs_window, limit=PAGE_SIZE
        )
        pictures = await charts.integration_charts(conn, session.store_id, integration_id)
    integration = record.integration
    return _context(
        request,
        status=record,
        integration=integration,
        configuration=json.dumps(
            masked_configuration(integration.integration_type, integration.configuration),
            indent=2,
            sort_keys=True,
        ),
        conditions=json.dumps(integration.conditions, indent=2) if integration.conditions else None,
        jobs=jobs,
        logs=logs,
        jobs_pager=paging.pager(request, jobs, "jobs_"),
        logs_pager=paging.pager(request, logs, "logs_"),
        charts=pictures,
        bulk_link=bulk.link(request, integration_id, status),
        statuses=JOB_STATUSES,
        f_status=status,
        f_event=event_key,
        f_since=q.get("since") or "",
        f_until=q.get("until") or "",
        f_logs=logs_ok,
        filtered=bool(status or event_key or since or until),
        secret=None,
    )


@routes.get("/integrations/{id}")
async def integration_page(request: web.Request) -> web.Response:
    session = need(request)
    context = await _integration_context(request, session, _uuid(request, "id"))
    return aiohttp_jinja2.render_template("integration.html", request, context)


@routes.post("/integrations/{id}/secret")
async def reveal_secret(request: web.Request) -> web.Response:
    session = manager(request)
    await checked_form(request, session)
    integration_id = _uuid(request, "id")
    context = await _integration_context(request, session, integration_id)
    async with request.config_dict[ENGINE].connect() as conn:
        found = await integrations.get_signing_secrets(conn, session.store_id, integration_id)
    if found is None:
        raise not_found()
    context["secret"] = found.current
    return aiohttp_jinja2.render_template("integration.html", request, context)


@routes.post("/integrations/{id}/enabled")
async def set_enabled(request: web.Request) -> web.Response:
    session = manager(request)
    form = await checked_form(request, session)
    integration_id = _uuid(request, "id")
    enabled = form.get("enabled") == "true"
    data = IntegrationUpdate.model_validate({"type": "integration", "enabled": enabled})
    async with request.config_dict[ENGINE].begin() as conn:
        await integration_service.update(
            conn,
            request.config_dict[CATALOGUE],
            session.store_id,
            integration_id,
            data,
            key_id=session.key_id,
            via="the console",
        )
    flash(
        session,
        "ok",
        "Enabled: new events will be delivered."
        if enabled
        else "Disabled: its pending jobs were cancelled and new events are not delivered.",
    )
    raise web.HTTPSeeOther(f"/console/integrations/{integration_id}")


@routes.post("/integrations/{id}/test")
async def test_send(request: web.Request) -> web.Response:
    session = manager(request)
    await checked_form(request, session)
    integration_id = _uuid(request, "id")
    async with request.config_dict[ENGINE].begin() as conn:
        job = await event_service.send_test(conn, session.store_id, integration_id)
    flash(session, "ok", "A test event was queued; its job is below and updates as it runs.")
    raise web.HTTPSeeOther(f"/console/integrations/{integration_id}/jobs/{job.id}")


@routes.post("/integrations/{id}/replay")
async def replay(request: web.Request) -> web.Response:
    session = manager(request)
    form = await checked_form(request, session)
    integration_id = _uuid(request, "id")
    since = _when(form.get("since"), "Since")
    if since is None:
        raise Refused(400, "Missing time", "Say since when failed jobs should be replayed.")
    data = ReplayCreate.model_validate({"type": "integration-replay", "since": since})
    async with request.config_dict[ENGINE].begin() as conn:
        record = await replay_service.start(conn, session.store_id, integration_id, data)
    flash(
        session,
        "ok",
        f"Replay queued: {record.total} failed job(s) since {_iso(since)} will be sent again.",
    )
    raise web.HTTPSeeOther(f"/console/integrations/{integration_id}")


@routes.get("/integrations/{id}/jobs/{job_id}")
async def job_page(request: web.Request) -> web.Response:
    session = need(request)
    integration_id, job_id = _uuid(request, "id"), _uuid(request, "job_id")
    async with request.config_dict[ENGINE].connect() as conn:
        integration = await integrations.get_integration(conn, session.store_id, integration_id)
        job = await job_store.get_job(conn, session.store_id, integration_id, job_id)
        if integration is None or job is None:
            raise not_found()
        event = await events.get_event(conn, session.store_id, job.event_id)
        logs = await log_store.list_logs(
            conn,
            session.store_id,
            log_store.LogScope(integration_id=integration_id, job_id=job_id),
            limit=200,
            offset=0,
        )
    attempts = sorted(logs.items, key=lambda log: log.attempt)
    return aiohttp_jinja2.render_template(
        "job.html",
        request,
        _context(
            request,
            integration=integration,
            job=job,
            event=event,
            payload=json.dumps(event.payload, indent=2, ensure_ascii=False) if event else None,
            attempts=attempts,
            excerpt=BODY_EXCERPT,
            retryable=job.status in job_service.RETRYABLE,
        ),
    )


@routes.post("/integrations/{id}/jobs/{job_id}/retry")
async def retry(request: web.Request) -> web.Response:
    session = manager(request)
    await checked_form(request, session)
    integration_id, job_id = _uuid(request, "id"), _uuid(request, "job_id")
    async with request.config_dict[ENGINE].begin() as conn:
        new = await job_service.retry(conn, session.store_id, integration_id, job_id)
    flash(session, "ok", "Retry queued as a new job; this page follows it.")
    raise web.HTTPSeeOther(f"/console/integrations/{integration_id}/jobs/{new.id}")


LOG_OUTCOMES = {"succeeded": True, "failed": False}
"""The live log's outcome filter: its values and what `succeeded` they select."""


def _log_filter(request: web.Request) -> tuple[UUID | None, bool | None]:
    """The live log's filter (`?integration=<id>&outcome=succeeded|failed`)."""
    raw_id, outcome = request.query.get("integration", ""), request.query.get("outcome", "")
    try:
        integration_id = UUID(raw_id) if raw_id else None
    except ValueError:
        raise Refused(400, "Bad filter", "integration must be an integration's id") from None
    if outcome and outcome not in LOG_OUTCOMES:
        raise Refused(400, "Bad filter", "outcome must be succeeded or failed")
    return integration_id, LOG_OUTCOMES.get(outcome)


@routes.get("/logs")
async def logs_page(request: web.Request) -> web.Response:
    session = need(request)
    integration_id, succeeded = _log_filter(request)
    window = paging.window(request)
    async with request.config_dict[ENGINE].connect() as conn:
        page = await pages.store_logs_page(
            conn,
            session.store_id,
            integration_id=integration_id,
            succeeded=succeeded,
            window=window,
            limit=paging.PAGE_SIZE,
        )
        names = await pages.integration_names(conn, session.store_id, limit=500)
    rows = page.items
    live = window.older_than is None and window.newer_than is None
    outcome = request.query.get("outcome", "")
    after = f"{_iso(rows[0].created_at)}|{rows[0].id}" if rows else ""
    wanted = {"integration": str(integration_id or ""), "outcome": outcome, "after": after}
    return aiohttp_jinja2.render_template(
        "logs.html",
        request,
        _context(
            request,
            rows=[_stream_row(r) for r in rows],
            after=after,
            stream_query=urlencode({k: v for k, v in wanted.items() if v}),
            integration_names=names,
            f_integration=wanted["integration"],
            f_outcome=outcome,
            log_filtered=integration_id is not None or succeeded is not None,
            pager=paging.pager(request, page),
            live=live,
        ),
    )


def _cursor(raw: str | None) -> tuple[datetime, UUID] | None:
    if not raw or "|" not in raw:
        return None
    at, _, last_id = raw.partition("|")
    try:
        when = datetime.fromisoformat(at)
        return in_utc(when if when.tzinfo is not None else when.replace(tzinfo=UTC)), UUID(last_id)
    except ValueError:
        return None


@routes.get("/logs/stream")
async def logs_stream(request: web.Request) -> web.StreamResponse:
    """Server-sent events: one `log` event per new attempt, checked every STREAM_POLL seconds."""
    session = need(request)
    after = _cursor(request.query.get("after"))
    integration_id, succeeded = _log_filter(request)
    engine = request.config_dict[ENGINE]
    if after is None:
        async with engine.connect() as conn:
            newest = await pages.stream_rows(
                conn,
                session.store_id,
                after=None,
                limit=1,
                integration_id=integration_id,
                succeeded=succeeded,
            )
        after = (newest[0].created_at, newest[0].id) if newest else (datetime.now(UTC), UUID(int=0))
    async with sse_response(request) as stream:
        while stream.is_connected():
            # The stream lives no longer than its session: signing out, its expiry or the
            # key's revocation (on any process) ends it at the next look.
            if await sessions.find(request) is None:
                break
            async with engine.connect() as conn:
                rows = await pages.stream_rows(
                    conn,
                    session.store_id,
                    after=after,
                    limit=100,
                    integration_id=integration_id,
                    succeeded=succeeded,
                )
            for row in rows:
                await stream.send(json.dumps(_stream_row(row)), event="log", id=str(row.id))
                after = (row.created_at, row.id)
            await asyncio.sleep(STREAM_POLL)
    return stream


# --- the app -----------------------------------------------------------------------------------


def console_app() -> web.Application:
    """The console as a sub-application, mounted by `hub.web.create_app` at /console."""
    app = web.Application(middlewares=[console_middleware])
    sessions.setup(app)
    env = aiohttp_jinja2.setup(
        app,
        loader=jinja2.FileSystemLoader(HERE / "templates"),
        autoescape=jinja2.select_autoescape(default=True),
        undefined=jinja2.StrictUndefined,
    )
    env.globals["iso"] = _iso
    editing.setup(app, _context)  # before `routes`: /integrations/new is no integration's id
    switching.setup(app)
    app.add_routes(routes)
    app.add_routes(search.routes)
    app.add_routes(bulk.routes)
    paging.setup(app)
    app.router.add_static("/static", HERE / "static", name="static")
    app.router.add_get("/{tail:.*}", _unknown_page)
    return app


async def _unknown_page(request: web.Request) -> web.Response:
    raise not_found()
