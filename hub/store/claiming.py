"""Claiming: leasing due jobs to a worker, and what becomes of a claimed job other than an
attempt (held, cancelled, given back, its lease expired). Job life, leases, fair claiming and
backpressure: `hub.store`. The claim is the hottest statement of all: composed from parts, it is
compiled once (`hub.store.compiled`) and run as a prepared statement on the driver connection.
"""

from __future__ import annotations

import functools
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any
from uuid import UUID

import asyncpg
from sqlalchemy import (
    Integer,
    Interval,
    String,
    all_,
    bindparam,
    case,
    func,
    literal_column,
    select,
    union_all,
    update,
)
from sqlalchemy.ext.asyncio import AsyncConnection

from hub.store import ordered
from hub.store.compiled import DELIVERING, ONE, PENDING, UUIDS, ZERO, Compiled
from hub.store.enqueue import notify
from hub.store.models import events, integrations, jobs


@dataclass(frozen=True, slots=True)
class ClaimedJob:
    """A leased job with everything its delivery needs."""

    id: UUID
    store_id: UUID
    event_id: UUID
    integration_id: UUID
    triggered_by: str
    attempt: int
    """The number of the attempt about to be made (1-based)."""
    payload: dict[str, Any]
    event_time: datetime
    integration_name: str
    integration_description: str | None
    integration_type: str
    configuration: dict[str, Any]
    signing_secret: str
    """As stored (encrypted: see `hub.crypto`), like `configuration`'s secret fields."""
    previous_signing_secret: str | None
    """The rotated-out signing secret while its grace period lasts (both sign), as stored."""
    integration_live: bool
    """False when the integration was disabled or deleted since the job was queued."""
    rate_limit: float | None
    """Attempts per second the integration accepts (per worker); None: no limit."""
    integration_tripped: bool
    """The circuit breaker has the integration switched off: the job is to be held."""
    integration_updated_at: datetime
    """Bumped by every change to the integration (configuration, secrets, enabling): with
    `previous_signing_secret` (which lapses without a change) it names the version of the
    delivery target, so a worker may keep targets it built and rebuild them when this moves."""
    ordering_value: str | None = None
    """Its key value when its integration orders deliveries (`hub.store.ordered`); None: none."""

    @property
    def key(self) -> tuple[UUID, str] | None:
        """Its ordered queue (integration, key value); None for an unordered job."""
        if self.ordering_value is None:
            return None
        return (self.integration_id, self.ordering_value)


async def claim(
    db: asyncpg.Connection,
    *,
    owner: str,
    limit: int,
    lease: timedelta,
    retry_limit: int | None = None,
    excluded: Sequence[UUID] = (),
) -> list[ClaimedJob]:
    """Lease up to `limit` due jobs in one statement; concurrent workers skip each other's rows.

    At most `retry_limit` (default: `limit`) of them are retries; first attempts and retries are
    taken in turn, oldest due first in each lane. Integrations in `excluded` (the worker's
    rate-limited ones without capacity) and those at their `max_in_flight` are not scanned; of
    the others at most `max_in_flight` minus their jobs in flight, and at most ``ceil(rate_limit)``
    for a rate-limited one, are taken. See `hub.store`.

    Runs on the driver connection (`hub.store.engine.driver`) as a prepared statement; its lease
    is taken in the caller's transaction, if there is one.
    """
    if limit <= 0:
        return []
    params = _claim_params(
        owner=owner, limit=limit, lease=lease, retry_limit=retry_limit, excluded=excluded
    )
    statement = _claim_sql()
    return [_claimed(*row) for row in await db.fetch(statement.sql, *statement.args(params))]


def _claimed(
    job_id: UUID,
    store_id: UUID,
    event_id: UUID,
    integration_id: UUID,
    triggered_by: str,
    attempts: int,
    payload: dict[str, Any],
    event_time: datetime,
    name: str,
    description: str | None,
    integration_type: str,
    configuration: dict[str, Any],
    signing_secret: str,
    previous_signing_secret: str | None,
    live: bool,
    rate_limit: float | None,
    tripped: bool,
    updated_at: datetime,
    ordering_value: str | None,
) -> ClaimedJob:
    """A claimed row, its columns in the order of the claim's RETURNING."""
    return ClaimedJob(
        id=job_id,
        store_id=store_id,
        event_id=event_id,
        integration_id=integration_id,
        triggered_by=triggered_by,
        attempt=attempts + 1,
        payload=payload,
        event_time=event_time,
        integration_name=name,
        integration_description=description,
        integration_type=integration_type,
        configuration=configuration,
        signing_secret=signing_secret,
        previous_signing_secret=previous_signing_secret,
        integration_live=live,
        rate_limit=rate_limit,
        integration_tripped=tripped,
        integration_updated_at=updated_at,
        ordering_value=ordering_value,
    )


def _claim_params(
    *,
    owner: str,
    limit: int,
    lease: timedelta,
    retry_limit: int | None,
    excluded: Sequence[UUID],
) -> dict[str, Any]:
    retries = limit if retry_limit is None else max(0, min(retry_limit, limit))
    return {
        "owner": owner,
        "limit": limit,
        "retries": retries,
        "lease": lease,
        "excluded": list(excluded),
    }


def claim_statement(
    *,
    owner: str,
    limit: int,
    lease: timedelta,
    retry_limit: int | None = None,
    excluded: Sequence[UUID] = (),
) -> Any:
    """The claim's one statement (see `claim`) with its values bound; a test EXPLAINs it."""
    return _build_claim(
        _claim_params(
            owner=owner, limit=limit, lease=lease, retry_limit=retry_limit, excluded=excluded
        )
    )


@functools.cache
def _claim_template() -> Any:
    """The claim statement with bind parameters (no values), built once."""
    return _build_claim(None)


@functools.cache
def _claim_sql() -> Compiled:
    """The claim statement compiled once for the driver connection: SQLAlchemy builds and
    compiles nothing per claim, and asyncpg prepares its text once per connection."""
    return Compiled.of(_claim_template())


def _build_claim(values: dict[str, Any] | None) -> Any:
    def param(name: str, type_: Any) -> Any:
        if values is None:
            return bindparam(name, type_=type_)
        return bindparam(name, value=values[name], type_=type_)

    limit = param("limit", Integer)
    retries = param("retries", Integer)
    # Counted only for integrations with a `max_in_flight`: the others' jobs in flight do not
    # matter, and scanning them all (with the dead index entries that every finished job leaves
    # in the partial index until vacuum) was most of a claim's time under load.
    limited = select(integrations.c.id).where(integrations.c.max_in_flight.is_not(None))
    inflight = (
        select(jobs.c.integration_id, func.count().label("n"))
        .where(jobs.c.status == DELIVERING, jobs.c.integration_id.in_(limited))
        .group_by(jobs.c.integration_id)
        .cte("inflight")
    )
    at_capacity = (
        select(inflight.c.integration_id)
        .join(integrations, integrations.c.id == inflight.c.integration_id)
        .where(inflight.c.n >= integrations.c.max_in_flight)
        .cte("at_capacity")
    )
    excluded_ids = param("excluded", UUIDS)

    def lane(name: str, number: int, retry: bool, size: Any) -> Any:
        # `ZERO`, a literal, not a parameter: it selects the lane's partial index.
        return (
            select(
                jobs.c.id,
                jobs.c.integration_id,
                jobs.c.next_attempt_at,
                literal_column(str(number)).label("lane"),
            )
            .where(
                jobs.c.status == PENDING,
                jobs.c.attempts > ZERO if retry else jobs.c.attempts == ZERO,
                jobs.c.next_attempt_at <= func.now(),
                jobs.c.integration_id.not_in(select(at_capacity.c.integration_id)),
                jobs.c.integration_id != all_(excluded_ids),
            )
            .order_by(jobs.c.next_attempt_at)
            .limit(size)
            .with_for_update(skip_locked=True)
            .cte(name)
        )

    first_lane, retry_lane = (
        lane("first_lane", 0, False, limit),
        lane("retry_lane", 1, True, retries),
    )
    candidates = union_all(select(first_lane), select(retry_lane)).cte("candidates")
    unlimited = limit
    room = func.least(
        func.coalesce(
            integrations.c.max_in_flight - func.coalesce(inflight.c.n, ZERO),
            unlimited,
        ),
        case(
            (integrations.c.rate_limit.is_(None), unlimited),
            else_=func.greatest(ONE, func.ceil(integrations.c.rate_limit)),
        ),
    )
    ranked = (
        select(
            candidates.c.id,
            candidates.c.lane,
            func.row_number()
            .over(partition_by=candidates.c.lane, order_by=candidates.c.next_attempt_at)
            .label("lane_rank"),
            func.row_number()
            .over(partition_by=candidates.c.integration_id, order_by=candidates.c.next_attempt_at)
            .label("nth"),
            room.label("room"),
        )
        .select_from(
            candidates.join(integrations, integrations.c.id == candidates.c.integration_id).join(
                inflight, inflight.c.integration_id == candidates.c.integration_id, isouter=True
            )
        )
        .cte("ranked")
    )
    picked = (
        select(ranked.c.id)
        .where(ranked.c.nth <= ranked.c.room)
        .order_by(ranked.c.lane_rank, ranked.c.lane)
        .limit(limit)
    )
    return (
        update(jobs)
        .where(
            jobs.c.id.in_(picked),
            events.c.id == jobs.c.event_id,
            integrations.c.id == jobs.c.integration_id,
        )
        .values(
            status=DELIVERING,
            lease_owner=param("owner", String),
            lease_expires_at=func.now() + param("lease", Interval),
            updated_at=func.now(),
        )
        .returning(
            jobs.c.id,
            jobs.c.store_id,
            jobs.c.event_id,
            jobs.c.integration_id,
            jobs.c.triggered_by,
            jobs.c.attempts,
            events.c.payload,
            events.c.created_at.label("event_time"),
            integrations.c.name,
            integrations.c.description,
            integrations.c.integration_type,
            integrations.c.configuration,
            integrations.c.signing_secret,
            case(
                (
                    integrations.c.previous_signing_secret_expires_at > func.now(),
                    integrations.c.previous_signing_secret,
                ),
                else_=None,
            ).label("previous_signing_secret"),
            (integrations.c.enabled & integrations.c.deleted_at.is_(None)).label("live"),
            integrations.c.rate_limit,
            (
                ~integrations.c.enabled
                & integrations.c.deleted_at.is_(None)
                & integrations.c.failing_since.is_not(None)
            ).label("tripped"),
            integrations.c.updated_at.label("integration_updated_at"),
            jobs.c.ordering_value,
        )
    )


async def hold_claimed(db: asyncpg.Connection, owner: str, job_ids: Sequence[UUID]) -> None:
    """Hold claimed jobs whose integration the circuit breaker switched off meanwhile."""
    if job_ids:
        await db.execute(_HOLD_CLAIMED, list(job_ids), owner)


_HOLD_CLAIMED = """
    UPDATE integration_jobs
    SET status = 'held',
        next_attempt_at = NULL,
        lease_owner = NULL,
        lease_expires_at = NULL,
        updated_at = now()
    WHERE id = ANY($1::uuid[]) AND lease_owner = $2
"""


async def cancel_claimed(db: asyncpg.Connection, owner: str, claimed: Sequence[ClaimedJob]) -> None:
    """Cancel claimed jobs whose integration went away before their attempt ran; an ordered one
    lets the next job of its key proceed (`hub.store.ordered`), in one transaction."""
    if not claimed:
        return
    job_ids = [job.id for job in claimed]
    keys = [job.key for job in claimed if job.key is not None]
    if not keys:
        await db.execute(_CANCEL_CLAIMED, job_ids, owner)
        return
    async with db.transaction():
        await ordered.lock_queues(db, {job.integration_id for job in claimed})
        await db.execute(_CANCEL_CLAIMED, job_ids, owner)
        await ordered.let_next_proceed(db, keys)


_CANCEL_CLAIMED = """
    UPDATE integration_jobs
    SET status = 'cancelled',
        last_error = 'the integration was disabled or deleted',
        next_attempt_at = NULL,
        lease_owner = NULL,
        lease_expires_at = NULL,
        completed_at = now(),
        updated_at = now()
    WHERE id = ANY($1::uuid[]) AND lease_owner = $2
"""


async def release(conn: AsyncConnection, owner: str, job_ids: Sequence[UUID]) -> int:
    """Give leased jobs back (due now) without counting an attempt: a worker stopping early."""
    if not job_ids:
        return 0
    result = await conn.execute(
        update(jobs)
        .where(
            jobs.c.id.in_(list(job_ids)),
            jobs.c.lease_owner == owner,
            jobs.c.status == "delivering",
        )
        .values(
            status="pending",
            lease_owner=None,
            lease_expires_at=None,
            next_attempt_at=func.now(),
            updated_at=func.now(),
        )
    )
    await notify(conn)
    return result.rowcount


async def release_stalled(db: asyncpg.Connection) -> int:
    """Put jobs whose lease expired (their worker died) back to pending, due now."""
    status: str = await db.execute(_RELEASE_STALLED)
    return int(status.rpartition(" ")[2])


_RELEASE_STALLED = """
    UPDATE integration_jobs
    SET status = 'pending',
        lease_owner = NULL,
        lease_expires_at = NULL,
        next_attempt_at = now(),
        updated_at = now()
    WHERE status = 'delivering' AND lease_expires_at < now()
"""


async def next_due_in(db: asyncpg.Connection) -> float | None:
    """Seconds until the earliest pending job is due (≤ 0: due now); None when none waits."""
    value = await db.fetchval(_NEXT_DUE_IN)
    return None if value is None else float(value)


_NEXT_DUE_IN = """
    SELECT extract(epoch FROM min(next_attempt_at) - now())
    FROM integration_jobs
    WHERE status = 'pending'
"""
