"""The queue's SQL: enqueue, claim, record attempts, release, hold, cancel. No other module
writes to `integration_jobs` or `integration_logs`, except its companions: `breaker` (holds the
jobs of an integration it switches off), `replays` (re-queues a window of jobs) and `retention`
(purges old ones).

Job life: ``pending`` → (claimed) ``delivering`` → ``succeeded`` | ``pending`` (retry scheduled)
| ``failed``; ``pending`` → ``cancelled`` when its integration is disabled or deleted;
``pending`` → ``held`` when the circuit breaker switches its integration off, and ``held`` →
``pending`` when it is enabled again.

Claiming sets a lease (`lease_owner`, `lease_expires_at`). `attempts` counts *recorded* attempts:
an attempt is numbered ``attempts + 1`` when claimed and counted only when its log row is
written, in the same transaction. A worker that dies mid-attempt therefore leaves no log and no
count; once its lease expires `release_stalled` puts the job back to ``pending`` and the same
attempt number is tried again (the only way a delivery can be duplicated).

**Fair claiming.** Due jobs wait in two lanes, each with its own partial index: first attempts
(``attempts = 0``) and retries. A claim takes from both in turn, and the worker caps how many
of its slots retries may hold, so a failing endpoint's backlog of retries never starves the
first attempts of healthy integrations. **Backpressure.** An integration with `max_in_flight`
is not claimed beyond that many jobs in ``delivering`` (counted across all workers; two workers
claiming at the same instant may overshoot by one claim's worth until their next claim), one
with `rate_limit` gets at most one second's worth of jobs per claim (the worker's limiter paces
them), and an integration at its limit is skipped by the scan itself, so its backlog blocks no
one behind it.

**Circuit breaker.** Recording an attempt moves the breaker's clock in the same transaction
(`hub.store.breaker`); an integration it switches off has its pending jobs held, and jobs of
such an integration that come back from flight are held at claim time too.
"""

from __future__ import annotations

import functools
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, cast
from uuid import UUID

import asyncpg
from sqlalchemy import (
    Integer,
    Interval,
    String,
    Table,
    all_,
    bindparam,
    case,
    func,
    insert,
    literal_column,
    null,
    select,
    union_all,
    update,
)
from sqlalchemy.dialects.postgresql import ARRAY
from sqlalchemy.dialects.postgresql import UUID as PG_UUID
from sqlalchemy.dialects.postgresql.asyncpg import PGDialect_asyncpg
from sqlalchemy.ext.asyncio import AsyncConnection
from sqlalchemy.sql.elements import ColumnClause

from hub.ids import uuid7
from hub.store import breaker
from hub.store.models import Integration, IntegrationJob, IntegrationLog
from hub.store.records import JobRecord
from hub.store.repository import NewEvent, events, job_record

jobs = cast(Table, IntegrationJob.__table__)
logs = cast(Table, IntegrationLog.__table__)
integrations = cast(Table, Integration.__table__)

#: The channel a publish transaction notifies so that idle workers wake at once.
CHANNEL = "hub_jobs"

# Literals, not bound parameters, where a partial index's predicate must be matched: a generic
# plan of a prepared statement cannot prove `status = $1` implies `status = 'pending'`.
_PENDING: ColumnClause[str] = literal_column("'pending'")
_DELIVERING: ColumnClause[str] = literal_column("'delivering'")
_HELD: ColumnClause[str] = literal_column("'held'")
_UUIDS = ARRAY(PG_UUID(as_uuid=True))
#: What statements run on the driver connection are compiled for (`_Compiled`).
_DRIVER_DIALECT = PGDialect_asyncpg()  # type: ignore[no-untyped-call]  # SQLAlchemy: untyped


@dataclass(frozen=True, slots=True)
class NewJob:
    integration_id: UUID
    event_id: UUID
    triggered_by: str


async def insert_published(
    db: asyncpg.Connection,
    store_id: UUID,
    new_events: Sequence[NewEvent],
    new_jobs: Sequence[NewJob],
    now: datetime,
) -> set[UUID]:
    """Insert events and their pending jobs (due now) in one statement, and wake the workers.

    An event whose client id the store has already used is skipped, and so are its jobs: the ids
    actually inserted are returned. One statement is atomic on its own, so no transaction is
    needed around it (it joins the caller's if there is one).
    """
    if not new_events:
        return set()
    rows = await db.fetch(
        _INSERT_PUBLISHED,
        store_id,
        now,
        [e.id for e in new_events],
        [e.client_id for e in new_events],
        [e.triggered_by for e in new_events],
        [e.payload_json for e in new_events],
        [uuid7() for _ in new_jobs],
        [j.event_id for j in new_jobs],
        [j.integration_id for j in new_jobs],
        [j.triggered_by for j in new_jobs],
    )
    inserted = {row[0] for row in rows}
    if any(job.event_id in inserted for job in new_jobs):
        await wake_workers(db)
    return inserted


#: The events, then the jobs of those actually inserted (a data-modifying WITH runs whether or
#: not the outer query reads it): one round trip and one statement text (arrays, not rows of
#: parameters) whatever the number of events and jobs.
_INSERT_PUBLISHED = """
    WITH inserted AS (
        INSERT INTO events (id, store_id, client_id, triggered_by, payload, created_at)
        SELECT e.id, $1, e.client_id, e.triggered_by, e.payload, $2
        FROM unnest($3::uuid[], $4::text[], $5::text[], $6::jsonb[])
             AS e(id, client_id, triggered_by, payload)
        ON CONFLICT (store_id, client_id) WHERE client_id IS NOT NULL DO NOTHING
        RETURNING id
    ), queued AS (
        INSERT INTO integration_jobs (
            id, store_id, event_id, integration_id, triggered_by, status, attempts,
            next_attempt_at, created_at, updated_at
        )
        SELECT j.id, $1, j.event_id, j.integration_id, j.triggered_by, 'pending', 0, $2, $2, $2
        FROM unnest($7::uuid[], $8::uuid[], $9::uuid[], $10::text[])
             AS j(id, event_id, integration_id, triggered_by)
        WHERE j.event_id IN (SELECT id FROM inserted)
    )
    SELECT id FROM inserted
"""


async def wake_workers(db: asyncpg.Connection) -> None:
    """NOTIFY the workers that jobs are due.

    Outside a transaction the NOTIFY gets one of its own that does not wait for its commit to
    reach the disk. PostgreSQL holds a database-wide lock from the commit of a notifying
    transaction until it completes: notifying in the jobs' own transaction would hold it through
    their WAL flush and serialise every publish's commit, one flush each, instead of letting
    concurrent commits share flushes. A wake-up lost in a crash costs nothing (workers poll), and
    the jobs were committed before it was sent. Inside a caller's transaction it is sent at that
    transaction's commit, as any NOTIFY.
    """
    await db.execute(_NOTIFY if db.is_in_transaction() else _NOTIFY_ALONE)


_NOTIFY = f"SELECT pg_notify('{CHANNEL}', '')"
_NOTIFY_ALONE = f"SELECT set_config('synchronous_commit', 'off', true), pg_notify('{CHANNEL}', '')"


async def notify(conn: AsyncConnection) -> None:
    await conn.execute(select(func.pg_notify(CHANNEL, "")))


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
    for a rate-limited one, are taken. See the module docstring.

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
def _claim_sql() -> _Compiled:
    """The claim statement compiled once for the driver connection: SQLAlchemy builds and
    compiles nothing per claim, and asyncpg prepares its text once per connection."""
    return _Compiled.of(_claim_template())


@dataclass(frozen=True, slots=True)
class _Compiled:
    """A Core statement compiled once for the driver connection (asyncpg): its SQL text, with
    `$n` placeholders, and the names of its bind parameters in `$n` order.

    Its parameters are passed as asyncpg takes them, without SQLAlchemy's type processing: a
    statement compiled here binds no constants (those are literals) and no JSON.
    """

    sql: str
    names: tuple[str, ...]

    @classmethod
    def of(cls, statement: Any) -> _Compiled:
        compiled = statement.compile(dialect=_DRIVER_DIALECT)
        names = tuple(compiled.positiontup or ())
        for name in names:
            if compiled.binds[name].value is not None:
                raise ValueError(f"{name!r} is a bound constant: make it a literal")
        if "POSTCOMPILE" in compiled.string:
            raise ValueError("an expanding IN cannot be compiled once; use = ANY(array)")
        return cls(compiled.string, names)

    def args(self, values: dict[str, Any]) -> list[Any]:
        return [values[name] for name in self.names]


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
        .where(jobs.c.status == _DELIVERING, jobs.c.integration_id.in_(limited))
        .group_by(jobs.c.integration_id)
        .cte("inflight")
    )
    at_capacity = (
        select(inflight.c.integration_id)
        .join(integrations, integrations.c.id == inflight.c.integration_id)
        .where(inflight.c.n >= integrations.c.max_in_flight)
        .cte("at_capacity")
    )
    excluded_ids = param("excluded", _UUIDS)

    def lane(name: str, number: int, retry: bool, size: Any) -> Any:
        # A literal, not a parameter: it selects the lane's partial index.
        zero: ColumnClause[int] = literal_column("0")
        return (
            select(
                jobs.c.id,
                jobs.c.integration_id,
                jobs.c.next_attempt_at,
                literal_column(str(number)).label("lane"),
            )
            .where(
                jobs.c.status == _PENDING,
                jobs.c.attempts > zero if retry else jobs.c.attempts == zero,
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
            integrations.c.max_in_flight - func.coalesce(inflight.c.n, literal_column("0")),
            unlimited,
        ),
        case(
            (integrations.c.rate_limit.is_(None), unlimited),
            else_=func.greatest(literal_column("1"), func.ceil(integrations.c.rate_limit)),
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
            status=_DELIVERING,
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
        )
    )


@dataclass(frozen=True, slots=True)
class AttemptRecord:
    """The outcome of one attempt and the policy's answer, to be written atomically."""

    job_id: UUID
    store_id: UUID
    integration_id: UUID
    attempt: int
    succeeded: bool
    processing_time: float
    status_code: int | None
    body: str | None
    error_detail: str | None
    status: str
    """The job's next status: succeeded, pending (retry), or failed."""
    next_attempt_at: datetime | None
    disable_reason: str | None = None
    """Set when the outcome disables the integration (410 Gone)."""


@dataclass(frozen=True, slots=True)
class Recorded:
    """What a batch of records did beyond writing its logs."""

    moved: set[UUID]
    """The jobs moved on (the others' leases were lost meanwhile)."""
    tripped: dict[UUID, str]
    """Integrations the circuit breaker switched off, with their `disabled_reason`."""


async def record_attempts(
    db: asyncpg.Connection,
    owner: str,
    records: Sequence[AttemptRecord],
    *,
    breaker_after: timedelta | None = None,
) -> Recorded:
    """Write one log per attempt and move each job on, atomically.

    A log is written for every attempt that ran, even when the lease was lost meanwhile; the
    job itself is only moved on while `owner` still holds it. The circuit breaker's clock moves
    in the same transaction; with `breaker_after` (None or zero: no breaker) an integration
    failing for longer is switched off and its pending jobs held.

    One statement (`_RECORD`) writes the logs, moves the jobs and the breaker's clock, and names
    the integrations failing for longer than `breaker_after`. That is all a batch whose
    integrations' last word was a success needs: on a connection in autocommit it runs alone,
    one round trip. A batch that may disable an integration (a 410, or a failure with the
    breaker on) takes more statements, in the caller's transaction or else one of its own.
    """
    if not records:
        return Recorded(set(), {})
    clock = breaker.Clock.of(records)
    disabling = [(r.integration_id, r.disable_reason) for r in records if r.disable_reason]
    if disabling or (breaker_after and clock.failing):
        async with db.transaction():  # a savepoint inside the caller's transaction
            return await _record(db, owner, records, clock, disabling, breaker_after)
    return await _record(db, owner, records, clock, disabling, breaker_after)


async def _record(
    db: asyncpg.Connection,
    owner: str,
    records: Sequence[AttemptRecord],
    clock: breaker.Clock,
    disabling: Sequence[tuple[UUID, str]],
    breaker_after: timedelta | None,
) -> Recorded:
    rows = await db.fetch(
        _RECORD,
        owner,
        [uuid7() for _ in records],
        [r.job_id for r in records],
        [r.store_id for r in records],
        [r.integration_id for r in records],
        [r.attempt for r in records],
        [r.succeeded for r in records],
        [r.processing_time for r in records],
        [r.status_code for r in records],
        [r.body for r in records],
        [r.error_detail for r in records],
        [r.status for r in records],
        [r.next_attempt_at for r in records],
        clock.recovered,
        clock.failing,
        clock.restarted,
        breaker_after or None,
    )
    moved = {row[0] for row in rows if not row[1]}
    overdue = [row[0] for row in rows if row[1]]
    for integration_id, reason in disabling:
        await disable_integration(
            db, integration_id, reason, failing=integration_id in clock.failing
        )
    tripped: dict[UUID, str] = {}
    if overdue and breaker_after:
        tripped = await breaker.trip(db, overdue, breaker_after)
    return Recorded(moved, tripped)


#: The logs, the jobs and the breaker's clock (`breaker.Clock`) of a batch of attempts in one
#: statement (data-modifying WITHs run whether or not the outer query reads them), from arrays:
#: one statement text whatever the batch size. It returns the jobs moved on (`false`) and the
#: integrations whose failing stretch is older than $17 (`true`: to be tripped). Every part of
#: a statement sees the rows as they were before it; the clock's updates leave a running
#: stretch untouched unless it restarts, so the last part reads the stretch the clock leaves.
_RECORD = """
    WITH attempts AS (
        SELECT *
        FROM unnest(
            $2::uuid[], $3::uuid[], $4::uuid[], $5::uuid[], $6::int[], $7::boolean[],
            $8::float8[], $9::int[], $10::text[], $11::text[], $12::text[], $13::timestamptz[]
        ) AS a(
            id, job_id, store_id, integration_id, attempt, succeeded,
            processing_time, status_code, body, error_detail, status, next_attempt_at
        )
    ), logged AS (
        INSERT INTO integration_logs (
            id, store_id, integration_id, job_id, attempt, succeeded, processing_time,
            status_code, body, error_detail
        )
        SELECT id, store_id, integration_id, job_id, attempt, succeeded, processing_time,
               status_code, body, error_detail
        FROM attempts
    ), moved AS (
        UPDATE integration_jobs AS j
        SET status = a.status,
            attempts = a.attempt,
            next_attempt_at = a.next_attempt_at,
            last_error = CASE WHEN a.succeeded THEN NULL ELSE a.error_detail END,
            completed_at = CASE WHEN a.status IN ('succeeded', 'failed') THEN now() END,
            lease_owner = NULL,
            lease_expires_at = NULL,
            updated_at = now()
        FROM attempts AS a
        WHERE j.id = a.job_id AND j.status = 'delivering' AND j.lease_owner = $1
        RETURNING j.id
    ), recovered AS (
        UPDATE integrations SET failing_since = NULL
        WHERE id = ANY($14::uuid[]) AND failing_since IS NOT NULL
    ), failing AS (
        UPDATE integrations SET failing_since = now()
        WHERE id = ANY($15::uuid[]) AND (failing_since IS NULL OR id = ANY($16::uuid[]))
    )
    SELECT id, false FROM moved
    UNION ALL
    SELECT id, true
    FROM integrations
    WHERE id = ANY($15::uuid[]) AND NOT id = ANY($16::uuid[])
      AND enabled AND deleted_at IS NULL AND failing_since < now() - $17::interval
"""


async def resume_held(conn: AsyncConnection, integration_id: UUID) -> int:
    """Make the integration's held jobs pending again, due now (it was enabled again)."""
    result = await conn.execute(
        update(jobs)
        .where(jobs.c.integration_id == integration_id, jobs.c.status == _HELD)
        .values(status="pending", next_attempt_at=func.now(), updated_at=func.now())
    )
    if result.rowcount:
        await notify(conn)
    return result.rowcount


async def disable_integration(
    db: asyncpg.Connection, integration_id: UUID, reason: str, *, failing: bool
) -> None:
    """Switch an integration off with a visible reason (a 410) and cancel its pending jobs.

    `failing`: the recorded batch's last word for it was a failure, so the breaker's clock runs
    from now (as if it had been moved after the switch-off); otherwise it is stopped.
    """
    await db.execute(_DISABLE, integration_id, reason, failing)
    cancel = _cancel_pending_sql()
    values = {"of": integration_id, "reason": "the integration was disabled"}
    await db.execute(cancel.sql, *cancel.args(values))


_DISABLE = """
    UPDATE integrations
    SET enabled = false,
        disabled_reason = $2,
        failing_since = CASE WHEN $3::boolean THEN now() END,
        updated_at = now()
    WHERE id = $1
"""


async def cancel_pending(conn: AsyncConnection, integration_id: UUID, *, reason: str) -> int:
    """Cancel the integration's jobs that are waiting (or held); jobs in flight finish their
    attempt."""
    result = await conn.execute(
        _cancel_pending_template(), {"of": integration_id, "reason": reason}
    )
    return result.rowcount


@functools.cache
def _cancel_pending_template() -> Any:
    """`cancel_pending`'s statement: SQLAlchemy runs it for the API, asyncpg for a 410."""
    return (
        update(jobs)
        .where(
            jobs.c.integration_id == bindparam("of", type_=PG_UUID(as_uuid=True)),
            jobs.c.status.in_([_PENDING, _HELD]),
        )
        .values(
            status=literal_column("'cancelled'"),
            last_error=bindparam("reason", type_=String),
            next_attempt_at=null(),
            completed_at=func.now(),
            updated_at=func.now(),
        )
    )


@functools.cache
def _cancel_pending_sql() -> _Compiled:
    return _Compiled.of(_cancel_pending_template())


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


async def cancel_claimed(db: asyncpg.Connection, owner: str, job_ids: Sequence[UUID]) -> None:
    """Cancel claimed jobs whose integration went away before their attempt ran."""
    if job_ids:
        await db.execute(_CANCEL_CLAIMED, list(job_ids), owner)


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


async def retry_job(conn: AsyncConnection, job: JobRecord) -> JobRecord:
    """A new pending job for the same event and integration, pointing back with `retry_of`."""
    row = (
        await conn.execute(
            insert(jobs)
            .values(
                id=uuid7(),
                store_id=job.store_id,
                event_id=job.event_id,
                integration_id=job.integration_id,
                triggered_by=job.triggered_by,
                status="pending",
                attempts=0,
                next_attempt_at=func.now(),
                retry_of=job.id,
            )
            .returning(jobs)
        )
    ).one()
    await notify(conn)
    return job_record(row)
