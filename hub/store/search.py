"""Finding events: a store's events by id, by the resource id of their payload, by event key
and time, a keyset page at a time (`hub.store.keyset`); and what an event made — its jobs, with
their attempts.

The resource id is `models.RESOURCE_ID_SQL` (`data.id`, or a delete's top-level `id`), written
here with the same operators and literal paths, so that PostgreSQL matches it to the expression
of `ix_events_store_resource` (a bound parameter for the path would not match). By event key and
time alone the search walks `ix_events_store_created` from the cursor, filtering on the key.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import datetime
from typing import Any
from uuid import UUID

from sqlalchemy import ColumnElement, func, literal_column, select
from sqlalchemy.ext.asyncio import AsyncConnection

from hub.store import jobs as job_store
from hub.store import logs as log_store
from hub.store.keyset import KeysetPage, Window, fetch
from hub.store.models import events, integrations, jobs, logs
from hub.store.records import EventRecord, JobRecord, LogRecord

#: `models.RESOURCE_ID_SQL` in the expression language; the paths are literals (see above).
resource_id_of_payload: ColumnElement[str] = func.coalesce(
    events.c.payload.op("#>>")(literal_column("'{data,id}'")),
    events.c.payload.op("->>")(literal_column("'id'")),
)
EVENT_JOBS_LIMIT = 500
"""The jobs of one event shown at most (an event makes one per observing integration)."""


@dataclass(frozen=True, slots=True)
class EventQuery:
    """What to look for; every given field must match (None: any)."""

    event_id: UUID | None = None
    resource_id: str | None = None
    triggered_by: str | None = None
    since: datetime | None = None
    until: datetime | None = None


@dataclass(frozen=True, slots=True)
class FoundEvent:
    """An event of a search, with its resource id and how many jobs it made."""

    event: EventRecord
    resource_id: str | None
    jobs: int


def _event(row: Any) -> EventRecord:
    return EventRecord(
        id=row.id,
        store_id=row.store_id,
        client_id=row.client_id,
        triggered_by=row.triggered_by,
        payload=row.payload,
        created_at=row.created_at,
    )


async def find_events(
    conn: AsyncConnection, store_id: UUID, wanted: EventQuery, *, window: Window, limit: int
) -> KeysetPage[FoundEvent]:
    """The store's events that match `wanted`, newest first."""
    where: list[ColumnElement[bool]] = [events.c.store_id == store_id]
    if wanted.event_id is not None:
        where.append(events.c.id == wanted.event_id)
    if wanted.resource_id is not None:
        where.append(resource_id_of_payload == wanted.resource_id)
    if wanted.triggered_by is not None:
        where.append(events.c.triggered_by == wanted.triggered_by)
    if wanted.since is not None:
        where.append(events.c.created_at >= wanted.since)
    if wanted.until is not None:
        where.append(events.c.created_at <= wanted.until)
    query = select(events, resource_id_of_payload.label("resource_id")).where(*where)
    page = await fetch(
        conn,
        query,
        at=events.c.created_at,
        id_=events.c.id,
        window=window,
        limit=limit,
        convert=lambda row: (_event(row), row.resource_id),
        # By id or resource id the count is an index range; by key or time alone it would
        # read the store's events, so it is left out.
        counted=wanted.event_id is not None or wanted.resource_id is not None,
    )
    counts = await job_store.job_counts_by_event(conn, [e.id for e, _ in page.items])
    return KeysetPage(
        items=[FoundEvent(e, resource, counts.get(e.id, 0)) for e, resource in page.items],
        newer=page.newer,
        older=page.older,
        total=page.total,
    )


@dataclass(frozen=True, slots=True)
class EventJob:
    """One job an event made, its integration's name, and its attempts (oldest first)."""

    job: JobRecord
    integration_name: str
    attempts: list[LogRecord]


async def event_jobs(conn: AsyncConnection, store_id: UUID, event_id: UUID) -> list[EventJob]:
    """Every job the event made (`ix_integration_jobs_event`), oldest first, each with its
    attempts (`ix_integration_logs_job_attempt`)."""
    rows = list(
        await conn.execute(
            select(jobs, integrations.c.name.label("integration_name"))
            .join(integrations, integrations.c.id == jobs.c.integration_id)
            .where(jobs.c.event_id == event_id, jobs.c.store_id == store_id)
            .order_by(jobs.c.created_at, jobs.c.id)
            .limit(EVENT_JOBS_LIMIT)
        )
    )
    found = [(job_store.job_record(r), r.integration_name) for r in rows]
    attempts: dict[UUID, list[LogRecord]] = {job.id: [] for job, _ in found}
    if attempts:
        for row in await conn.execute(
            select(logs)
            .where(logs.c.job_id.in_(list(attempts)))
            .order_by(logs.c.job_id, logs.c.attempt, logs.c.id)
        ):
            attempts[row.job_id].append(log_store.log_record(row))
    return [EventJob(job, name, attempts[job.id]) for job, name in found]


def resource_id_of(payload: dict[str, Any]) -> str | None:
    """`resource_id_of_payload`, in Python (for an event already read)."""
    data = payload.get("data")
    if isinstance(data, dict) and data.get("id") is not None:
        return _text(data["id"])
    return _text(payload["id"]) if payload.get("id") is not None else None


def _text(value: Any) -> str:
    # `->>` gives a JSON string's text, and any other value as JSON text.
    return value if isinstance(value, str) else json.dumps(value)
