"""Publishing the hub's operational events (`hub.operational`) in the transaction of the state
change that causes them, through the one publish path (`hub.services.events.write`).

Two places change what they report, each in its own transaction, and publish there:

* recording a batch of attempts (`record_attempts`, the dispatcher's recorder): a job moved to
  ``failed`` (``job.failed``, unless its event is operational) and an integration switched off by
  a 410 or by the circuit breaker (``integration.disabled``);
* an operator's update of an integration (`hub.services.integrations.update`):
  ``integration.disabled`` or ``integration.enabled`` (`switched_by_operator`).

**Locks.** A transaction that appends to an ordered integration's queues takes their lock before
any row lock (`hub.store.ordered.lock_queues`). Which integrations will get jobs is known only
once the state has changed, after row locks; so these transactions first read which *ordered*
integrations observe the keys they may publish (`observers_to_lock`, one read on fan-out's
index) and take those queue locks with their own. An ordered observer created meanwhile is
locked late, as a deadlock PostgreSQL would break by failing one transaction (a recorder's
batch is written again), never by a wrong queue.
"""

from __future__ import annotations

from collections.abc import Collection, Iterable, Sequence
from datetime import timedelta
from uuid import UUID

import structlog
from sqlalchemy.ext.asyncio import AsyncConnection

from hub.errors import DomainError
from hub.events import INTEGRATION_DISABLED, INTEGRATION_ENABLED, JOB_FAILED, match_candidates
from hub.operational import (
    Cause,
    FailedJob,
    OperationalEvent,
    Subject,
    emits_job_failed,
    integration_disabled,
    integration_enabled,
    job_failed,
)
from hub.services import events as event_service
from hub.store import attempts, integrations
from hub.store.engine import driver_of
from hub.store.records import IntegrationRecord

log = structlog.get_logger(__name__)

#: What recording a batch may publish.
AFTER_RECORDING = (JOB_FAILED, INTEGRATION_DISABLED)
#: What an operator's switch may publish.
AFTER_SWITCHING = (INTEGRATION_DISABLED, INTEGRATION_ENABLED)


def may_publish(records: Iterable[attempts.AttemptRecord], *, breaker_on: bool) -> bool:
    """Whether recording `records` may publish operational events: a job ends failed, an answer
    switches its integration off, or (with the breaker on) a failure may trip the breaker. A
    batch of successes (and 429s) may not, and keeps its one-statement path."""
    return any(
        r.status == "failed"
        or r.disable_reason is not None
        or (breaker_on and not r.succeeded and r.status_code != 429)
        for r in records
    )


async def observers_to_lock(
    conn: AsyncConnection, store_ids: Collection[UUID], keys: Sequence[str]
) -> set[UUID]:
    """The ordered integrations of these stores that events keyed `keys` would go to."""
    candidates = sorted({c for key in keys for c in match_candidates(key)})
    return await integrations.ordered_integrations_observing(
        await driver_of(conn), sorted(store_ids), candidates
    )


async def publish(conn: AsyncConnection, own: Sequence[OperationalEvent]) -> int:
    """Write the hub's events (of any stores) and their jobs, in `conn`'s transaction; how many
    were new (a repeat of one already written, by its client id, creates nothing)."""
    if not own:
        return 0
    by_store: dict[UUID, list[OperationalEvent]] = {}
    for event in own:
        by_store.setdefault(event.store_id, []).append(event)
    requests = [event_service.prepare_own(store_id, of) for store_id, of in by_store.items()]
    created: dict[str, int] = {}
    jobs = 0
    for outcome in await event_service.write(conn, requests):
        if isinstance(outcome, DomainError):
            # Only a client id's conflict can refuse it: the same change reported differently.
            log.warning("operational_event_not_published", error=str(outcome))
            continue
        for published in outcome:
            if published.created:
                key = published.event.triggered_by
                created[key] = created.get(key, 0) + 1
                jobs += published.jobs_total
    if created:
        # One line per transaction, not per event: a burst of failures stays readable.
        log.info("operational_events_published", jobs=jobs, **created)
    return sum(created.values())


async def record_attempts(
    conn: AsyncConnection,
    owner: str,
    records: Sequence[attempts.AttemptRecord],
    *,
    breaker_after: timedelta | None,
) -> tuple[attempts.Recorded, list[OperationalEvent]]:
    """Record a batch (`hub.store.attempts.record_attempts`) and publish what it changed, in
    `conn`'s transaction (the caller has begun it): ``job.failed`` for each job it moved to
    ``failed`` whose event is not operational, ``integration.disabled`` for each integration it
    switched off. Only the worker that moves a job (it holds its lease) and the transaction that
    switches an integration off (it finds it enabled, row-locked) publish: one event per change,
    however many workers record at once."""
    db = await driver_of(conn)
    observers = await observers_to_lock(conn, {r.store_id for r in records}, AFTER_RECORDING)
    recorded = await attempts.record_attempts(
        db, owner, records, breaker_after=breaker_after, observers=observers
    )
    own = await _caused_by(conn, records, recorded)
    await publish(conn, own)
    return recorded, own


async def _caused_by(
    conn: AsyncConnection, records: Sequence[attempts.AttemptRecord], recorded: attempts.Recorded
) -> list[OperationalEvent]:
    last = {r.job_id: r for r in records if r.status == "failed" and r.job_id in recorded.moved}
    own: list[OperationalEvent] = []
    for job in await attempts.failed_jobs(await driver_of(conn), list(last)):
        if not emits_job_failed(job.triggered_by):
            continue  # the no-loop rule: an operational event's job fails quietly
        record = last[job.id]
        subject = Subject(
            job.integration_id, job.store_id, job.integration_name, job.integration_type
        )
        failed = FailedJob(
            id=job.id,
            event_id=job.event_id,
            triggered_by=job.triggered_by,
            attempts=job.attempts,
            integration=subject,
            reason=record.failure or "failed",
            status_code=record.status_code,
            error_detail=record.error_detail,
            body=record.body,
            processing_time=record.processing_time,
        )
        own.append(job_failed(failed, at=job.completed_at))
    for switched in recorded.switched_off:
        subject = Subject(switched.id, switched.store_id, switched.name, switched.integration_type)
        cause = Cause.CIRCUIT_BREAKER if switched.by_breaker else Cause.GONE
        own.append(
            integration_disabled(subject, cause=cause, reason=switched.reason, at=switched.at)
        )
    return own


def _by_operator(verb: str, via: str | None, key_id: UUID | None) -> str:
    through = "" if via is None else f" through {via}"
    return f"{verb} by an operator{through}" + ("" if key_id is None else f" (key {key_id})")


async def switched_by_operator(
    conn: AsyncConnection,
    record: IntegrationRecord,
    *,
    key_id: UUID | None,
    via: str | None,
    resumed_jobs: int = 0,
) -> None:
    """Publish ``integration.enabled`` or ``integration.disabled`` for `record`, which an
    operator has just switched on or off (in `conn`'s transaction, which locked its row)."""
    subject = Subject(record.id, record.store_id, record.name, record.integration_type)
    if record.enabled:
        event = integration_enabled(
            subject,
            reason=_by_operator("Enabled", via, key_id),
            at=record.updated_at,
            key_id=key_id,
            resumed_jobs=resumed_jobs,
        )
    else:
        event = integration_disabled(
            subject,
            cause=Cause.OPERATOR,
            reason=_by_operator("Disabled", via, key_id),
            at=record.updated_at,
            key_id=key_id,
        )
    await publish(conn, [event])
