"""Recording attempts: one log row per attempt and the job moved on, in one statement, with the
circuit breaker's clock (`hub.store.breaker`) and the integration's last success, a 410's
switch-off, and the next job of a key let go when an ordered one ends (`hub.store.ordered`).
Job life, the breaker and ordering: `hub.store`. Per attempt, so on the driver connection as
prepared statements.
"""

from __future__ import annotations

from collections.abc import Collection, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from uuid import UUID

import asyncpg

from hub.ids import uuid7
from hub.store import breaker, ordered
from hub.store.integrations import cancel_pending_sql
from hub.store.records import FailedJobRecord, SwitchedOff


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
    failure: str | None = None
    """When the job fails: the retry policy's reason (for its `job.failed` event)."""
    ordering_value: str | None = None
    """The job's key value, when its integration orders deliveries (`hub.store.ordered`)."""

    @property
    def ends_key_turn(self) -> bool:
        """An ordered job that ends: the next one of its key may proceed."""
        return self.ordering_value is not None and self.status in ("succeeded", "failed")


@dataclass(frozen=True, slots=True)
class Recorded:
    """What a batch of records did beyond writing its logs."""

    moved: set[UUID]
    """The jobs moved on (the others' leases were lost meanwhile)."""
    switched_off: tuple[SwitchedOff, ...] = ()
    """Integrations this batch switched off (a 410, or the circuit breaker), each of which was
    enabled until this transaction."""
    proceeded: int = 0
    """Jobs let go because the ordered job before them in their key ended."""

    @property
    def tripped(self) -> dict[UUID, str]:
        """Integrations the circuit breaker switched off, with their `disabled_reason`."""
        return {s.id: s.reason for s in self.switched_off if s.by_breaker}


async def record_attempts(
    db: asyncpg.Connection,
    owner: str,
    records: Sequence[AttemptRecord],
    *,
    breaker_after: timedelta | None = None,
    observers: Collection[UUID] = (),
) -> Recorded:
    """Write one log per attempt and move each job on, atomically.

    A log is written for every attempt that ran, even when the lease was lost meanwhile; the
    job itself is only moved on while `owner` still holds it. The circuit breaker's clock moves
    in the same transaction; with `breaker_after` (None or zero: no breaker) an integration
    failing for longer is switched off and its pending jobs held.

    One statement (`_RECORD`) writes the logs, moves the jobs, the breaker's clock and each
    integration's `last_success_at`, and names the integrations failing for longer than
    `breaker_after`. That is all a batch whose integrations' last word was a success needs: on
    a connection in autocommit it runs alone, one round trip. A batch that may disable an
    integration (a 410, or a failure with the breaker on) takes more statements, in the
    caller's transaction or else one of its own.

    A batch in which ordered jobs end, or that disables an integration, first takes the queue
    locks of all its integrations (`ordered.lock_queues`: before any row lock, so that it never
    waits in a circle with a publish); after the record the next job of each ended job's key is
    let go, in the same transaction. Batches of unordered jobs never take these locks.

    `observers`: ordered integrations that the caller may queue jobs for later in its
    transaction (the operational events this batch causes, `hub.services.operational`); their
    queue locks are taken with the batch's, first, for the same reason. Given any, the caller
    must have begun a transaction.
    """
    if not records:
        return Recorded(set())
    clock = breaker.Clock.of(records)
    disabling = [(r.integration_id, r.disable_reason) for r in records if r.disable_reason]
    ending = [r for r in records if r.ends_key_turn]
    if disabling or ending or observers or (breaker_after and clock.failing):
        async with db.transaction():  # a savepoint inside the caller's transaction
            if disabling or ending or observers:
                await ordered.lock_queues(db, {r.integration_id for r in records} | {*observers})
            recorded = await _record(db, owner, records, clock, disabling, breaker_after)
            if not ending:
                return recorded
            proceeded = await ordered.let_next_proceed(
                db,
                (
                    (r.integration_id, r.ordering_value)
                    for r in ending
                    if r.ordering_value is not None and r.job_id in recorded.moved
                ),
            )
            return Recorded(recorded.moved, recorded.switched_off, proceeded)
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
        list({r.integration_id for r in records if r.succeeded}),
    )
    moved = {row[0] for row in rows if not row[1]}
    overdue = [row[0] for row in rows if row[1]]
    switched_off: list[SwitchedOff] = []
    for integration_id, reason in disabling:
        gone = await disable_integration(
            db, integration_id, reason, failing=integration_id in clock.failing
        )
        if gone is not None and gone.id not in {s.id for s in switched_off}:
            switched_off.append(gone)
    if overdue and breaker_after:
        switched_off += await breaker.trip(db, overdue, breaker_after)
    return Recorded(moved, tuple(switched_off))


#: The logs, the jobs, the breaker's clock (`breaker.Clock`) and the integrations' last success
#: of a batch of attempts in one statement (data-modifying WITHs run whether or not the outer
#: query reads them), from arrays: one statement text whatever the batch size. It returns the
#: jobs moved on (`false`) and the integrations whose failing stretch is older than $17
#: (`true`: to be tripped). Every part of a statement sees the rows as they were before it;
#: the clock's update leaves a running stretch untouched unless it restarts, so the last part
#: reads the stretch the clock leaves. An integration's row is updated once (one UPDATE both
#: moves the clock and, for those with a success in the batch ($18), sets `last_success_at`
#: to `now()`, the `created_at` of the logs written: `greatest` keeps a later one that a
#: concurrent batch, begun after this one, has already committed).
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
    ), clocked AS (
        UPDATE integrations
        SET failing_since = CASE
                WHEN id = ANY($14::uuid[]) THEN NULL
                WHEN id = ANY($15::uuid[]) AND (failing_since IS NULL OR id = ANY($16::uuid[]))
                    THEN now()
                ELSE failing_since
            END,
            last_success_at = CASE
                WHEN id = ANY($18::uuid[]) THEN greatest(last_success_at, now())
                ELSE last_success_at
            END
        WHERE (id = ANY($14::uuid[]) AND failing_since IS NOT NULL)
           OR (id = ANY($15::uuid[]) AND (failing_since IS NULL OR id = ANY($16::uuid[])))
           OR id = ANY($18::uuid[])
    )
    SELECT id, false FROM moved
    UNION ALL
    SELECT id, true
    FROM integrations
    WHERE id = ANY($15::uuid[]) AND NOT id = ANY($16::uuid[])
      AND enabled AND deleted_at IS NULL AND failing_since < now() - $17::interval
"""


async def disable_integration(
    db: asyncpg.Connection, integration_id: UUID, reason: str, *, failing: bool
) -> SwitchedOff | None:
    """Switch an integration off with a visible reason (a 410) and cancel its pending jobs.

    Only an enabled integration is switched off (and returned): one already off keeps the
    reason it was switched off for, so two 410s recorded at once by two workers switch it off
    once (the second waits for the first's row lock, then finds it off).
    `failing`: the recorded batch's last word for it was a failure, so the breaker's clock runs
    from now (as if it had been moved after the switch-off); otherwise it is stopped.
    """
    row = await db.fetchrow(_DISABLE, integration_id, reason, failing)
    cancel = cancel_pending_sql()
    values = {"of": integration_id, "reason": "the integration was disabled"}
    await db.execute(cancel.sql, *cancel.args(values))
    if row is None:
        return None
    return SwitchedOff(
        id=integration_id,
        store_id=row["store_id"],
        name=row["name"],
        integration_type=row["integration_type"],
        reason=reason,
        by_breaker=False,
        at=row["updated_at"],
    )


_DISABLE = """
    UPDATE integrations
    SET enabled = false,
        disabled_reason = $2,
        failing_since = CASE WHEN $3::boolean THEN now() END,
        updated_at = now()
    WHERE id = $1 AND enabled AND deleted_at IS NULL
    RETURNING store_id, name, integration_type, updated_at
"""


async def failed_jobs(db: asyncpg.Connection, job_ids: Sequence[UUID]) -> list[FailedJobRecord]:
    """Those of these jobs that are `failed`, with their integrations' names (for the
    `job.failed` events of a batch just recorded, in its transaction)."""
    if not job_ids:
        return []
    rows = await db.fetch(_FAILED_JOBS, list(job_ids))
    return [
        FailedJobRecord(
            id=row["id"],
            store_id=row["store_id"],
            event_id=row["event_id"],
            triggered_by=row["triggered_by"],
            attempts=row["attempts"],
            integration_id=row["integration_id"],
            integration_name=row["name"],
            integration_type=row["integration_type"],
            completed_at=row["completed_at"],
        )
        for row in rows
    ]


_FAILED_JOBS = """
    SELECT j.id, j.store_id, j.event_id, j.triggered_by, j.attempts, j.integration_id,
           j.completed_at, i.name, i.integration_type
    FROM integration_jobs AS j
    JOIN integrations AS i ON i.id = j.integration_id
    WHERE j.id = ANY($1::uuid[]) AND j.status = 'failed'
    ORDER BY j.id
"""
