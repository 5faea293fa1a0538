"""Replay: re-queue a window of an integration's finished jobs as new jobs, and follow them.

Like a manual retry, but for a time window at once: after an outage on the receiving side, an
operator replays what failed meanwhile. The new jobs are delivered like any other (attempts from
1, the retry schedule, the circuit breaker); the replay is a resource whose counts come from
them, polled until none is pending. Which events are replayed: see `hub.store.replays`. On an
ordered integration each replayed job goes to the end of its key's queue, as a manual retry
does (`hub.services.jobs.retry`), in the order of the jobs it replays.
"""

from __future__ import annotations

from datetime import UTC, datetime
from uuid import UUID

from sqlalchemy.ext.asyncio import AsyncConnection

from hub.errors import Conflict, NotFound, ValidationFailed
from hub.services.inputs import ReplayCreate
from hub.store import integrations, ordered, replays
from hub.store.engine import driver_of
from hub.store.records import ReplayRecord


async def start(
    conn: AsyncConnection,
    store_id: UUID,
    integration_id: UUID,
    data: ReplayCreate,
    *,
    triggered_by: str | None = None,
) -> ReplayRecord:
    """Queue the replay's jobs in the caller's transaction (they are delivered once it commits).

    `triggered_by` narrows it to the events of one key (the console's bulk retry of a filtered
    job list)."""
    until = data.until or datetime.now(UTC)
    if until <= data.since:
        raise ValidationFailed([("data.until must be after data.since", "data.until")])
    await ordered.lock_queues(await driver_of(conn), [integration_id])
    integration = await integrations.get_integration(
        conn, store_id, integration_id, for_update=True
    )
    if integration is None:
        raise NotFound()
    if not integration.enabled:
        raise Conflict("The integration is disabled; enable it before replaying its jobs")
    return await replays.create(
        conn,
        store_id=store_id,
        integration_id=integration_id,
        since=data.since,
        until=until,
        statuses=sorted(set(data.status)),
        ordered=integration.ordering_key is not None,
        triggered_by=triggered_by,
    )


async def count(
    conn: AsyncConnection,
    store_id: UUID,
    integration_id: UUID,
    data: ReplayCreate,
    *,
    triggered_by: str | None = None,
) -> int:
    """How many jobs `start` would queue now, for a confirmation (nothing is written)."""
    until = data.until or datetime.now(UTC)
    if until <= data.since:
        raise ValidationFailed([("data.until must be after data.since", "data.until")])
    if await integrations.get_integration(conn, store_id, integration_id) is None:
        raise NotFound()
    return await replays.count_to_replay(
        conn,
        integration_id=integration_id,
        since=data.since,
        until=until,
        statuses=sorted(set(data.status)),
        triggered_by=triggered_by,
    )


async def get(
    conn: AsyncConnection, store_id: UUID, integration_id: UUID, replay_id: UUID
) -> ReplayRecord:
    replay = await replays.get(conn, store_id, integration_id, replay_id)
    if replay is None:
        raise NotFound()
    return replay
