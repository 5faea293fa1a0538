"""An admin key's store switch: an admin session acts on any store, as the API's `X-Hub-Store`
lets an admin key (`hub.services.access.on_store` judges both). Other roles see no switch and
are refused if they post one."""

from __future__ import annotations

import aiohttp_jinja2
from aiohttp import web

from hub.appkeys import ENGINE
from hub.auth import Permission
from hub.console.editing import CONTEXT
from hub.console.sessions import Refused, Session, checked_form, flash, need
from hub.errors import UnknownStore
from hub.services import access
from hub.store import sessions as session_store
from hub.store import stores

SHOWN = 100
"""How many stores the picker lists at once (a name filter narrows them)."""

routes = web.RouteTableDef()


def _admin_only(session: Session) -> None:
    if not session.principal.can(Permission.ANY_STORE):
        raise Refused(
            403,
            "Not allowed",
            f"Only admin keys may switch store; this key's role is {session.role}.",
        )


@routes.get("/store")
async def store_page(request: web.Request) -> web.Response:
    session = need(request)
    _admin_only(session)
    q = request.query.get("q", "").strip()[:255]
    async with request.config_dict[ENGINE].connect() as conn:
        found = await stores.list_stores(conn, name_contains=q, limit=SHOWN + 1)
    context = request.app[CONTEXT](
        request, stores=found[:SHOWN], more=len(found) > SHOWN, q=q, shown=SHOWN
    )
    return aiohttp_jinja2.render_template("store_switch.html", request, context)


@routes.post("/store")
async def switch_store(request: web.Request) -> web.Response:
    session = need(request)
    form = await checked_form(request, session)
    _admin_only(session)
    name = form.get("store", "").strip()
    async with request.config_dict[ENGINE].begin() as conn:
        try:
            principal = await access.on_store(conn, session.principal, name)
        except UnknownStore:
            flash(session, "error", f"No store is called {name[:255]!r}.")
            raise web.HTTPSeeOther("/console/store") from None
        await session_store.set_session_store(conn, session.id_hash, principal.store_id)
    flash(session, "ok", f"Now acting on the store {principal.store_name}.")
    raise web.HTTPSeeOther("/console/integrations")


def setup(app: web.Application) -> None:
    app.add_routes(routes)
