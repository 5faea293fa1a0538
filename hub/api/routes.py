"""The `/v2` handlers: integrations, their jobs and logs, and events."""

from __future__ import annotations

from uuid import UUID

from aiohttp import web
from pydantic import TypeAdapter, ValidationError

from hub.api import filters
from hub.api.http import (
    PUBLISHER,
    authorize,
    json_response,
    list_response,
    model_response,
    page_params,
    parse_data,
    path_uuid,
    read_json,
)
from hub.api.ops import STATUS_CACHE
from hub.api.schemas import (
    SecretOut,
    event_out,
    integration_out,
    job_out,
    log_out,
    published_event,
    replay_out,
    timestamp,
    vapid_key_out,
)
from hub.api.status import deployment_status_out, status_out
from hub.appkeys import CATALOGUE, ENGINE, SETTINGS
from hub.auth import Permission
from hub.errors import BadRequest, NotFound, ValidationFailed
from hub.services import events as event_service
from hub.services import integrations as integration_service
from hub.services import jobs as job_service
from hub.services import processes as process_service
from hub.services import push as push_service
from hub.services import replay as replay_service
from hub.services.inputs import (
    EventIn,
    IntegrationCreate,
    IntegrationUpdate,
    ReplayCreate,
)
from hub.services.validation import problems
from hub.ssrf import SsrfGuard
from hub.store import integrations, jobs, logs
from hub.store.listing import NEWEST_FIRST

routes = web.RouteTableDef()

_EVENT_LIST = TypeAdapter(list[EventIn])
#: As long as an event's `id`: the key is stored as its client id, under a unique index.
MAX_IDEMPOTENCY_KEY = 255


def _base(request: web.Request) -> str:
    return request.app[SETTINGS].base_url()


def _guard(request: web.Request) -> SsrfGuard:
    """Judges integration targets at create/update time (see `hub.ssrf`)."""
    return SsrfGuard(request.app[SETTINGS].allowed_networks)


# --- integrations ------------------------------------------------------------------------------


@routes.post("/v2/integrations")
async def create_integration(request: web.Request) -> web.Response:
    principal = await authorize(request, Permission.WRITE)
    data = parse_data(await read_json(request), IntegrationCreate)
    async with request.app[ENGINE].begin() as conn:
        record = await integration_service.create(
            conn,
            request.app[CATALOGUE],
            principal.store_id,
            data,
            guard=_guard(request),
            max_per_store=request.app[SETTINGS].max_integrations_per_store,
        )
    return model_response(integration_out(_base(request), record), status=201)


@routes.get("/v2/integrations")
async def list_integrations(request: web.Request) -> web.Response:
    principal = await authorize(request, Permission.READ)
    params = page_params(request)
    expand = filters.observes_expander(request.app[CATALOGUE])
    query = filters.parse_query(request.query, filters.INTEGRATIONS, expand=expand)
    async with request.app[ENGINE].connect() as conn:
        page = await integrations.list_integrations(
            conn,
            principal.store_id,
            query.conditions,
            order=query.order or NEWEST_FIRST,
            limit=params.limit,
            offset=params.offset,
        )
    base = _base(request)
    return list_response(request, page, params, lambda r: integration_out(base, r))


@routes.get("/v2/integrations/logs")
async def list_store_logs(request: web.Request) -> web.Response:
    principal = await authorize(request, Permission.READ)
    return await _logs(request, principal.store_id, logs.LogScope())


@routes.get("/v2/integrations/{id}")
async def get_integration(request: web.Request) -> web.Response:
    principal = await authorize(request, Permission.READ)
    integration_id = path_uuid(request, "id")
    async with request.app[ENGINE].connect() as conn:
        record = await integrations.get_integration(conn, principal.store_id, integration_id)
    if record is None:
        raise NotFound()
    return model_response(integration_out(_base(request), record))


@routes.put("/v2/integrations/{id}")
async def update_integration(request: web.Request) -> web.Response:
    principal = await authorize(request, Permission.WRITE)
    integration_id = path_uuid(request, "id")
    data = parse_data(await read_json(request), IntegrationUpdate)
    if data.id is not None and data.id != str(integration_id):
        raise ValidationFailed([("data.id does not match the integration in the path", "data.id")])
    async with request.app[ENGINE].begin() as conn:
        record = await integration_service.update(
            conn,
            request.app[CATALOGUE],
            principal.store_id,
            integration_id,
            data,
            guard=_guard(request),
            key_id=principal.key_id,
            via="the API",
        )
    return model_response(integration_out(_base(request), record))


@routes.delete("/v2/integrations/{id}")
async def delete_integration(request: web.Request) -> web.Response:
    principal = await authorize(request, Permission.WRITE)
    integration_id = path_uuid(request, "id")
    async with request.app[ENGINE].begin() as conn:
        await integration_service.delete(conn, principal.store_id, integration_id)
    return json_response({"data": {"type": "integration", "id": str(integration_id)}})


@routes.get("/v2/integrations/{id}/secret")
async def get_secret(request: web.Request) -> web.Response:
    principal = await authorize(request, Permission.WRITE)
    integration_id = path_uuid(request, "id")
    async with request.app[ENGINE].connect() as conn:
        found = await integrations.get_signing_secrets(conn, principal.store_id, integration_id)
    if found is None:
        raise NotFound()
    return model_response(_secret_out(found))


@routes.post("/v2/integrations/{id}/secret/rotate")
async def rotate_secret(request: web.Request) -> web.Response:
    principal = await authorize(request, Permission.WRITE)
    integration_id = path_uuid(request, "id")
    grace = request.app[SETTINGS].signing_secret_grace
    async with request.app[ENGINE].begin() as conn:
        found = await integrations.rotate_signing_secret(
            conn,
            principal.store_id,
            integration_id,
            integration_service.new_signing_secret(),
            grace=grace,
        )
    if found is None:
        raise NotFound()
    return model_response(_secret_out(found))


def _secret_out(found: integrations.SigningSecrets) -> SecretOut:
    return SecretOut(
        secret=found.current, previous_secret_expires_at=timestamp(found.previous_expires_at)
    )


@routes.post("/v2/integrations/{id}/test")
async def send_test_event(request: web.Request) -> web.Response:
    principal = await authorize(request, Permission.WRITE)
    integration_id = path_uuid(request, "id")
    async with request.app[ENGINE].begin() as conn:
        job = await event_service.send_test(conn, principal.store_id, integration_id)
    return model_response(job_out(_base(request), job), status=202)


@routes.get("/v2/integrations/{id}/status")
async def get_integration_status(request: web.Request) -> web.Response:
    principal = await authorize(request, Permission.READ)
    integration_id = path_uuid(request, "id")
    async with request.app[ENGINE].connect() as conn:
        record = await integration_service.status(conn, principal.store_id, integration_id)
    return model_response(status_out(_base(request), record))


# --- jobs and logs -----------------------------------------------------------------------------


async def _logs(request: web.Request, store_id: UUID, scope: logs.LogScope) -> web.Response:
    params = page_params(request)
    query = filters.parse_query(request.query, filters.LOGS)
    async with request.app[ENGINE].connect() as conn:
        page = await logs.list_logs(
            conn,
            store_id,
            scope,
            query.conditions,
            order=query.order,
            limit=params.limit,
            offset=params.offset,
        )
    return list_response(request, page, params, log_out, ep_results=True)


@routes.get("/v2/integrations/{id}/logs")
async def list_integration_logs(request: web.Request) -> web.Response:
    principal = await authorize(request, Permission.READ)
    integration_id = path_uuid(request, "id")
    async with request.app[ENGINE].connect() as conn:
        if not await integrations.integration_exists(conn, principal.store_id, integration_id):
            raise NotFound()
    return await _logs(request, principal.store_id, logs.LogScope(integration_id=integration_id))


@routes.get("/v2/integrations/{id}/jobs")
async def list_jobs(request: web.Request) -> web.Response:
    principal = await authorize(request, Permission.READ)
    integration_id = path_uuid(request, "id")
    params = page_params(request)
    query = filters.parse_query(request.query, filters.JOBS)
    async with request.app[ENGINE].connect() as conn:
        if not await integrations.integration_exists(conn, principal.store_id, integration_id):
            raise NotFound()
        page = await jobs.list_jobs(
            conn,
            principal.store_id,
            integration_id,
            query.conditions,
            order=query.order or NEWEST_FIRST,
            limit=params.limit,
            offset=params.offset,
        )
    base = _base(request)
    return list_response(request, page, params, lambda r: job_out(base, r))


@routes.get("/v2/integrations/{id}/jobs/{job_id}")
async def get_job(request: web.Request) -> web.Response:
    principal = await authorize(request, Permission.READ)
    integration_id, job_id = path_uuid(request, "id"), path_uuid(request, "job_id")
    async with request.app[ENGINE].connect() as conn:
        job = await jobs.get_job(conn, principal.store_id, integration_id, job_id)
    if job is None:
        raise NotFound()
    return model_response(job_out(_base(request), job))


@routes.get("/v2/integrations/{id}/jobs/{job_id}/logs")
async def list_job_logs(request: web.Request) -> web.Response:
    principal = await authorize(request, Permission.READ)
    integration_id, job_id = path_uuid(request, "id"), path_uuid(request, "job_id")
    async with request.app[ENGINE].connect() as conn:
        if await jobs.get_job(conn, principal.store_id, integration_id, job_id) is None:
            raise NotFound()
    return await _logs(
        request,
        principal.store_id,
        logs.LogScope(integration_id=integration_id, job_id=job_id),
    )


@routes.post("/v2/integrations/{id}/jobs/{job_id}/retry")
async def retry_job(request: web.Request) -> web.Response:
    principal = await authorize(request, Permission.WRITE)
    integration_id, job_id = path_uuid(request, "id"), path_uuid(request, "job_id")
    async with request.app[ENGINE].begin() as conn:
        new = await job_service.retry(conn, principal.store_id, integration_id, job_id)
    return model_response(job_out(_base(request), new), status=202)


@routes.post("/v2/integrations/{id}/replay")
async def replay_jobs(request: web.Request) -> web.Response:
    principal = await authorize(request, Permission.WRITE)
    integration_id = path_uuid(request, "id")
    data = parse_data(await read_json(request), ReplayCreate)
    async with request.app[ENGINE].begin() as conn:
        replay = await replay_service.start(conn, principal.store_id, integration_id, data)
    return model_response(replay_out(_base(request), replay), status=202)


@routes.get("/v2/integrations/{id}/replays/{replay_id}")
async def get_replay(request: web.Request) -> web.Response:
    principal = await authorize(request, Permission.READ)
    integration_id, replay_id = path_uuid(request, "id"), path_uuid(request, "replay_id")
    async with request.app[ENGINE].connect() as conn:
        replay = await replay_service.get(conn, principal.store_id, integration_id, replay_id)
    return model_response(replay_out(_base(request), replay))


# --- web push ----------------------------------------------------------------------------------


@routes.get("/v2/push/vapid-key")
async def get_vapid_key(request: web.Request) -> web.Response:
    principal = await authorize(request, Permission.PUSH_KEY)
    async with request.app[ENGINE].begin() as conn:  # made on first use
        record = await push_service.vapid_key(conn, principal.store_id)
    return model_response(vapid_key_out(_base(request), record))


@routes.post("/v2/push/vapid-key/rotate")
async def rotate_vapid_key(request: web.Request) -> web.Response:
    principal = await authorize(request, Permission.WRITE)
    async with request.app[ENGINE].begin() as conn:
        record = await push_service.rotate_vapid_key(conn, principal.store_id)
    return model_response(vapid_key_out(_base(request), record))


# --- events ------------------------------------------------------------------------------------


@routes.post("/v2/events")
async def publish_events(request: web.Request) -> web.Response:
    publisher = request.app[PUBLISHER]
    publisher.admit()  # under overload, refused before any work is spent on it
    principal = await authorize(request, Permission.PUBLISH)
    document = await read_json(request)
    if not isinstance(document, dict) or "data" not in document:
        raise ValidationFailed([("the body must be an object with a data member", "data")])
    data = document["data"]
    batch = isinstance(data, list)
    if batch:
        if not 1 <= len(data) <= 100:
            raise ValidationFailed([("data must hold between 1 and 100 events", "data")])
        try:
            items = _EVENT_LIST.validate_python(data)
        except ValidationError as exc:
            raise ValidationFailed(problems(exc, "data")) from None
    else:
        items = [parse_data(document, EventIn)]
    idempotency_key = request.headers.get("Idempotency-Key") or None
    if idempotency_key is not None and len(idempotency_key) > MAX_IDEMPOTENCY_KEY:
        raise BadRequest(
            f"the Idempotency-Key header must be at most {MAX_IDEMPOTENCY_KEY} characters",
            source="Idempotency-Key",
        )
    settings = request.app[SETTINGS]
    prepared = event_service.prepare(
        request.app[CATALOGUE],
        principal.store_id,
        items,
        batch=batch,
        idempotency_key=idempotency_key,
        max_event_bytes=settings.max_event_bytes,
        max_jobs=settings.max_jobs_per_publish,
    )
    # Written together with whatever other publishes this process has in hand (group commit:
    # `hub.services.publisher`); answered once committed.
    results = await publisher.publish(prepared)
    base = _base(request)
    rendered = [published_event(base, r.event, jobs_total=r.jobs_total) for r in results]
    status = 202 if any(r.created for r in results) else 200
    return json_response({"data": rendered if batch else rendered[0]}, status=status)


@routes.get("/v2/events/{id}")
async def get_event(request: web.Request) -> web.Response:
    principal = await authorize(request, Permission.READ_EVENTS)
    event_id = path_uuid(request, "id")
    async with request.app[ENGINE].connect() as conn:
        event, total, jobs = await event_service.get(conn, principal.store_id, event_id)
    return model_response(event_out(_base(request), event, jobs_total=total, jobs=jobs))


# --- the deployment ----------------------------------------------------------------------------


@routes.get("/v2/status")
async def get_status(request: web.Request) -> web.Response:
    """The deployment's processes and queue; also refreshes this process's gauges."""
    await authorize(request, Permission.DEPLOYMENT)
    settings = request.app[SETTINGS]
    async with request.app[ENGINE].connect() as conn:
        status = await process_service.status(conn, stale_after=settings.heartbeat_stale_after)
    request.app[STATUS_CACHE].publish(status)
    return model_response(deployment_status_out(_base(request), status))
