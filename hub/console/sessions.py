"""Console sessions, CSRF and the sign-in throttle.

Sign-in takes an API key, checked by the one key check (`hub.services.access.authenticate`);
the console then keeps a random session id in an HttpOnly, SameSite=Strict cookie, and in the
database (`console_sessions`, through `hub.store.sessions`) the id's SHA-256 with what it stands
for: the key's id, role and store (never the key), the session's CSRF token and its flash
messages. So every API process of the deployment accepts the session, and it survives restarts.

- Every request re-checks that the key is still active (`access.still_active`), so revoking a
  key ends its sessions everywhere at their next request (and `hub keys revoke` deletes them).
- Signing out deletes the row. Sessions last `SESSION_TTL` from sign-in; the worker's
  retention pass deletes expired rows.
- A key holds at most `HUB_CONSOLE_SESSIONS_PER_KEY` sessions (default 20): a sign-in beyond
  ends the key's oldest session.
- Sign-in attempts are throttled per client address (`HUB_CONSOLE_SIGN_IN_RATE` a minute, bursts
  of `HUB_CONSOLE_SIGN_IN_BURST`) for the deployment as a whole, by the same mechanism as the
  API's rate limit (`hub.ratelimit`: each API process enforces its share). The address is the
  connection's peer, or, when the peer is one of `HUB_TRUSTED_PROXIES`, the last address in
  `X-Forwarded-For` that is not.
- Every form carries the session's CSRF token; the sign-in form, which comes before any
  session, uses a double-submit cookie.
- Flash messages (`flash`) are kept with the session: changes made while handling a request
  are written back before its answer is sent (`setup` hooks it).
"""

from __future__ import annotations

import hashlib
import ipaddress
import secrets
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any
from uuid import UUID

import structlog
from aiohttp import web

from hub.appkeys import ENGINE, SETTINGS, SIGN_IN_LIMITER
from hub.auth import Permission, Principal
from hub.services import access
from hub.store import sessions as session_store

log = structlog.get_logger(__name__)

SESSION_COOKIE = "hub_console"
LOGIN_CSRF_COOKIE = "hub_console_login"
SESSION_TTL = 12 * 3600.0
"""Seconds a console session lasts after sign-in."""
SEEN_EVERY = timedelta(minutes=1)
"""How stale a session's `last_seen_at` may get before a request refreshes it."""


class Refused(Exception):
    """What the console answers with a page of its own: a status, a title and a sentence."""

    def __init__(self, status: int, title: str, detail: str) -> None:
        super().__init__(detail)
        self.status, self.title, self.detail = status, title, detail


def not_found() -> Refused:
    return Refused(
        404, "Not found", "There is no such page in this store. Go back to the integrations."
    )


@dataclass
class Session:
    key_id: UUID
    prefix: str
    role: str
    store_id: UUID
    store_name: str
    csrf: str
    expires: datetime
    flash: list[tuple[str, str]] = field(default_factory=list)
    id_hash: bytes = b""
    """The row: the SHA-256 of the cookie's session id."""
    stored_flash: tuple[tuple[str, str], ...] = ()
    """`flash` as the row holds it; a difference is written back before the answer."""

    @property
    def principal(self) -> Principal:
        return Principal(self.key_id, self.role, self.store_id, self.store_name)

    @property
    def can_manage(self) -> bool:
        return self.principal.can(Permission.WRITE)


CURRENT = web.RequestKey("console_session", Session)


def _digest(sid: str) -> bytes:
    return hashlib.sha256(sid.encode()).digest()


def cookie_options(request: web.Request) -> dict[str, Any]:
    return {
        "httponly": True,
        "samesite": "Strict",
        "secure": request.secure or request.config_dict[SETTINGS].base_url().startswith("https:"),
        "path": "/console",
    }


async def find(request: web.Request) -> Session | None:
    """The signed-in session, if it has not expired and its key is still active."""
    sid = request.cookies.get(SESSION_COOKIE)
    if not sid:
        return None
    id_hash = _digest(sid)
    async with request.config_dict[ENGINE].begin() as conn:
        record = await session_store.find_session(conn, id_hash)
        if record is None:
            return None
        if not await access.still_active(conn, record.key_id, record.prefix):
            await session_store.delete_session(conn, id_hash)
            return None
        if datetime.now(UTC) - record.last_seen_at > SEEN_EVERY:
            await session_store.save_session(conn, id_hash, seen=True)
    return Session(
        key_id=record.key_id,
        prefix=record.prefix,
        role=record.role,
        store_id=record.store_id,
        store_name=record.store_name,
        csrf=record.csrf,
        expires=record.expires_at,
        flash=list(record.flash),
        id_hash=id_hash,
        stored_flash=record.flash,
    )


async def start(request: web.Request, principal: Principal, prefix: str) -> str:
    """A new session for `principal` (signed in with the key of `prefix`); its id, for the
    cookie. Ends the key's oldest sessions beyond `HUB_CONSOLE_SESSIONS_PER_KEY`."""
    del prefix  # the key is found by its id; the prefix comes with the session's row
    sid = secrets.token_urlsafe(32)
    settings = request.config_dict[SETTINGS]
    async with request.config_dict[ENGINE].begin() as conn:
        ended = await session_store.insert_session(
            conn,
            id_hash=_digest(sid),
            key_id=principal.key_id,
            store_id=principal.store_id,
            role=principal.role,
            csrf=secrets.token_urlsafe(32),
            expires_at=datetime.now(UTC) + timedelta(seconds=SESSION_TTL),
            cap=settings.console_sessions_per_key,
        )
    if ended:
        log.info(
            "console_sessions_ended_by_cap",
            key_id=str(principal.key_id),
            ended=ended,
            cap=settings.console_sessions_per_key,
        )
    return sid


async def end(request: web.Request) -> None:
    """Delete the request's session (signing out), on every process at once."""
    sid = request.cookies.get(SESSION_COOKIE)
    if sid:
        async with request.config_dict[ENGINE].begin() as conn:
            await session_store.delete_session(conn, _digest(sid))
    current = request.get(CURRENT)
    if current is not None:
        current.stored_flash = tuple(current.flash)  # nothing left to write back


def need(request: web.Request) -> Session:
    """The request's session; without one, off to the sign-in page."""
    if CURRENT not in request:
        raise web.HTTPSeeOther("/console/login")
    return request[CURRENT]


def manager(request: web.Request) -> Session:
    """The request's session, if its key may change things."""
    session = need(request)
    if not session.can_manage:
        raise Refused(
            403,
            "Not allowed",
            f"This key's role ({session.role}) can look but not act. "
            "Sign in with a manage key to do this.",
        )
    return session


async def checked_form(request: web.Request, session: Session) -> dict[str, str]:
    """The posted form, once its CSRF token is checked."""
    form = await request.post()
    token = form.get("csrf")
    if not isinstance(token, str) or not secrets.compare_digest(token, session.csrf):
        raise Refused(
            403,
            "Form expired",
            "The form's security token is missing or stale. Reload the page and try again.",
        )
    fields = {k: v for k, v in form.items() if isinstance(v, str)}
    if any("\x00" in value for value in fields.values()):
        # PostgreSQL cannot store a NUL character: refused here, never a 500 further down.
        raise Refused(400, "Bad input", "A field must not contain the NUL character.")
    return fields


def flash(session: Session, kind: str, message: str) -> None:
    """A message for the next page the session sees."""
    session.flash.append((kind, message))


def page_context(request: web.Request, **values: Any) -> dict[str, Any]:
    """What every page's template gets: the session, its pending messages (taken), the path."""
    session: Session | None = request.get(CURRENT)
    messages: list[tuple[str, str]] = []
    if session is not None:
        messages, session.flash = session.flash, []
    return {"session": session, "flash": messages, "path": request.path} | values


# --- the sign-in throttle ----------------------------------------------------------------------


def client_address(request: web.Request) -> str:
    """Who is signing in: the peer, or behind a trusted proxy the address it forwarded."""
    peer = request.remote or ""
    trusted = request.config_dict[SETTINGS].trusted_proxies
    if not trusted or not _within(peer, trusted):
        return peer
    hops = [hop.strip() for hop in request.headers.get("X-Forwarded-For", "").split(",")]
    hops = [hop for hop in hops if hop]
    for hop in reversed(hops):
        if not _within(hop, trusted):
            return hop
    return hops[0] if hops else peer


Networks = tuple[ipaddress.IPv4Network | ipaddress.IPv6Network, ...]


def _within(address: str, networks: Networks) -> bool:
    try:
        ip = ipaddress.ip_address(address)
    except ValueError:
        return False
    return any(ip in network for network in networks)


def admit_sign_in(request: web.Request) -> int | None:
    """Count a sign-in attempt from the request's address: None if admitted, else the seconds
    until the next one would be."""
    return request.config_dict[SIGN_IN_LIMITER].take(("sign-in", client_address(request)))


# --- the hook ----------------------------------------------------------------------------------


async def _write_back(request: web.Request, response: web.StreamResponse) -> None:
    """Before an answer goes out: keep the session's flash messages if the request changed
    them (a page shown clears them; an action adds one for the page it redirects to)."""
    session = request.get(CURRENT)
    if session is None or tuple(session.flash) == session.stored_flash:
        return
    async with request.config_dict[ENGINE].begin() as conn:
        await session_store.save_session(conn, session.id_hash, flash=session.flash)
    session.stored_flash = tuple(session.flash)


def setup(app: web.Application) -> None:
    """Install what sessions need on the console's application."""
    app.on_response_prepare.append(_write_back)
