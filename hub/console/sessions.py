"""Console sessions and CSRF.

Sign-in takes an API key, checked by the one key check (`hub.services.access.authenticate`);
the console then keeps a random session id in an HttpOnly, SameSite=Strict cookie and, in this
process's memory, what it stands for (the key's id and prefix, role and store: never the key).
Every request re-checks that the key is still active, so revoking a key ends its console
sessions. Every form carries the session's CSRF token; the sign-in form, which comes before any
session, uses a double-submit cookie.
"""

from __future__ import annotations

import secrets
import time
from dataclasses import dataclass, field
from typing import Any
from uuid import UUID

from aiohttp import web

from hub.appkeys import ENGINE, SETTINGS
from hub.auth import Permission, Principal
from hub.services import access

SESSION_COOKIE = "hub_console"
LOGIN_CSRF_COOKIE = "hub_console_login"
SESSION_TTL = 12 * 3600.0
"""Seconds a console session lasts after sign-in."""


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
    expires: float
    flash: list[tuple[str, str]] = field(default_factory=list)

    @property
    def principal(self) -> Principal:
        return Principal(self.key_id, self.role, self.store_id, self.store_name)

    @property
    def can_manage(self) -> bool:
        return self.principal.can(Permission.WRITE)


SESSIONS = web.AppKey("console_sessions", dict[str, Session])
CURRENT = web.RequestKey("console_session", Session)


def cookie_options(request: web.Request) -> dict[str, Any]:
    return {
        "httponly": True,
        "samesite": "Strict",
        "secure": request.secure or request.config_dict[SETTINGS].base_url().startswith("https:"),
        "path": "/console",
    }


async def find(request: web.Request) -> Session | None:
    """The signed-in session, if its key is still active."""
    sid = request.cookies.get(SESSION_COOKIE)
    sessions = request.app[SESSIONS]
    found = sessions.get(sid) if sid else None
    if found is None:
        return None
    if found.expires < time.monotonic():
        sessions.pop(sid or "", None)
        return None
    async with request.config_dict[ENGINE].connect() as conn:
        active = await access.still_active(conn, found.key_id, found.prefix)
    if not active:
        sessions.pop(sid or "", None)
        return None
    return found


def start(request: web.Request, principal: Principal, prefix: str) -> str:
    """A new session for `principal`; its id, for the cookie."""
    sid = secrets.token_urlsafe(32)
    sessions = request.app[SESSIONS]
    now = time.monotonic()
    for stale in [k for k, v in sessions.items() if v.expires < now]:
        del sessions[stale]
    sessions[sid] = Session(
        key_id=principal.key_id,
        prefix=prefix,
        role=principal.role,
        store_id=principal.store_id,
        store_name=principal.store_name,
        csrf=secrets.token_urlsafe(32),
        expires=now + SESSION_TTL,
    )
    return sid


def end(request: web.Request) -> None:
    """Forget the request's session (signing out)."""
    request.app[SESSIONS].pop(request.cookies.get(SESSION_COOKIE, ""), None)


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
    return {k: v for k, v in form.items() if isinstance(v, str)}


def flash(session: Session, kind: str, message: str) -> None:
    """A message for the next page the session sees."""
    session.flash.append((kind, message))
