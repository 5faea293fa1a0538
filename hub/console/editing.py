"""The console's integration editor: create, edit and delete integrations.

One code path with the API: a form becomes the same input model (`IntegrationCreate`,
`IntegrationUpdate`, through `hub.console.forms`), and the same use cases
(`hub.services.integrations`) judge it, with the same SSRF guard and quota. Their problems come
back next to the form's fields. Only a manage (or admin) key sees these pages; a view key that
posts anyway gets the 403 page. Every post carries the session's CSRF token.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any
from uuid import UUID

import aiohttp_jinja2
from aiohttp import web
from pydantic import ValidationError

from hub.appkeys import CATALOGUE, ENGINE, SETTINGS
from hub.console import forms
from hub.console.sessions import Session, checked_form, flash, manager, not_found
from hub.errors import ValidationFailed
from hub.services import integrations as integration_service
from hub.services.inputs import IntegrationCreate, IntegrationUpdate
from hub.services.validation import problems
from hub.ssrf import SsrfGuard
from hub.store import integrations
from hub.store.models import INTEGRATION_TYPES
from hub.store.records import IntegrationRecord

ContextBuilder = Callable[..., dict[str, Any]]
CONTEXT: web.AppKey[ContextBuilder] = web.AppKey("console_context")
"""The console's page context builder (`hub.console.views._context`), handed in by `setup`
(the views import this module, not the other way round)."""

routes = web.RouteTableDef()


def _guard(request: web.Request) -> SsrfGuard:
    """The API's guard (`hub.api.routes._guard`): the same networks are allowed."""
    return SsrfGuard(request.config_dict[SETTINGS].allowed_networks)


def _uuid(request: web.Request) -> UUID:
    try:
        return UUID(request.match_info["id"])
    except ValueError:
        raise not_found() from None


async def _record(
    request: web.Request, session: Session, integration_id: UUID
) -> IntegrationRecord:
    async with request.config_dict[ENGINE].connect() as conn:
        record = await integrations.get_integration(conn, session.store_id, integration_id)
    if record is None:
        raise not_found()
    return record


def _render(
    request: web.Request,
    state: forms.FormState,
    record: IntegrationRecord | None,
    *,
    status: int = 200,
) -> web.Response:
    context = request.app[CONTEXT](
        request,
        state=state,
        integration=record,
        types=INTEGRATION_TYPES,
        config_fields=forms.CONFIG_FIELDS,
        picker=forms.Picker.of(request.config_dict[CATALOGUE]),
        other=forms.OTHER,
        observes_other=forms.OBSERVES_OTHER,
        action=(
            "/console/integrations/new"
            if record is None
            else f"/console/integrations/{record.id}/edit"
        ),
    )
    return aiohttp_jinja2.render_template("integration_form.html", request, context, status=status)


async def _posted(request: web.Request, session: Session) -> tuple[dict[str, str], list[str]]:
    """The checked form, and the catalogue keys ticked in the observes picker."""
    form = await checked_form(request, session)
    ticked = [v for v in (await request.post()).getall("observes", []) if isinstance(v, str)]
    return form, ticked


@routes.get("/integrations/new")
async def new_page(request: web.Request) -> web.Response:
    manager(request)
    state = forms.state_of(None, request.config_dict[CATALOGUE])
    kind = request.query.get("type", "")
    if kind in INTEGRATION_TYPES:
        state.values["integration_type"] = kind
    return _render(request, state, None)


@routes.post("/integrations/new")
async def create(request: web.Request) -> web.Response:
    session = manager(request)
    form, ticked = await _posted(request, session)
    state = forms.resubmitted(form, ticked, None)
    kind = forms.chosen_type(form, "")
    data = forms.form_input(form, ticked, None, state)
    if data is not None:
        try:
            model = IntegrationCreate.model_validate(data)
            async with request.config_dict[ENGINE].begin() as conn:
                record = await integration_service.create(
                    conn,
                    request.config_dict[CATALOGUE],
                    session.store_id,
                    model,
                    guard=_guard(request),
                    max_per_store=request.config_dict[SETTINGS].max_integrations_per_store,
                )
        except ValidationError as exc:
            forms.place_problems(problems(exc, "data"), kind, state)
        except ValidationFailed as exc:
            forms.place_problems(exc.problems, kind, state)
        else:
            flash(session, "ok", f"Created {record.name}.")
            raise web.HTTPSeeOther(f"/console/integrations/{record.id}")
    return _render(request, state, None, status=422)


@routes.get("/integrations/{id}/edit")
async def edit_page(request: web.Request) -> web.Response:
    session = manager(request)
    record = await _record(request, session, _uuid(request))
    return _render(request, forms.state_of(record, request.config_dict[CATALOGUE]), record)


@routes.post("/integrations/{id}/edit")
async def update(request: web.Request) -> web.Response:
    session = manager(request)
    form, ticked = await _posted(request, session)
    record = await _record(request, session, _uuid(request))
    state = forms.resubmitted(form, ticked, record)
    kind = forms.chosen_type(form, record.integration_type)
    data = forms.form_input(form, ticked, record, state)
    if data is not None:
        try:
            model = IntegrationUpdate.model_validate(data)
            async with request.config_dict[ENGINE].begin() as conn:
                changed = await integration_service.update(
                    conn,
                    request.config_dict[CATALOGUE],
                    session.store_id,
                    record.id,
                    model,
                    guard=_guard(request),
                    key_id=session.key_id,
                    via="the console",
                )
        except ValidationError as exc:
            forms.place_problems(problems(exc, "data"), kind, state)
        except ValidationFailed as exc:
            forms.place_problems(exc.problems, kind, state)
        else:
            flash(session, "ok", f"Saved {changed.name}.")
            raise web.HTTPSeeOther(f"/console/integrations/{changed.id}")
    return _render(request, state, record, status=422)


@routes.get("/integrations/{id}/delete")
async def delete_page(request: web.Request) -> web.Response:
    session = manager(request)
    integration_id = _uuid(request)
    async with request.config_dict[ENGINE].connect() as conn:
        status = await integration_service.status(conn, session.store_id, integration_id)
    context = request.app[CONTEXT](request, status=status, integration=status.integration)
    return aiohttp_jinja2.render_template("integration_delete.html", request, context)


@routes.post("/integrations/{id}/delete")
async def delete(request: web.Request) -> web.Response:
    session = manager(request)
    form = await checked_form(request, session)
    integration_id = _uuid(request)
    record = await _record(request, session, integration_id)
    if form.get("confirm") != "yes":
        raise web.HTTPSeeOther(f"/console/integrations/{integration_id}/delete")
    async with request.config_dict[ENGINE].begin() as conn:
        await integration_service.delete(conn, session.store_id, integration_id)
    flash(session, "ok", f"Deleted {record.name}; its pending jobs were cancelled.")
    raise web.HTTPSeeOther("/console/integrations")


def setup(app: web.Application, context: ContextBuilder) -> None:
    """Add the editor's pages to the console's application (before its catch-all routes)."""
    app[CONTEXT] = context
    app.add_routes(routes)
