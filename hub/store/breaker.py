"""The circuit breaker: its clock (`integrations.failing_since`), tripping, and holding an
integration's jobs. Part of recording attempts (`hub.store.attempts.record_attempts`), in its
transaction, on the driver connection (`hub.store.integrations.resume_held` undoes the hold when the
integration is enabled again).

The clock: set by the first failed attempt of a stretch, cleared by any success; a 429 answer
counts as neither (the endpoint is alive and asks us to slow down). When a failed attempt finds
the stretch older than `breaker_after`, the integration is switched off with a visible
`disabled_reason` and its pending jobs are held (not cancelled: enabling it resumes them).

`Clock` decides which way a batch of attempts moves the clock; the statement that records the
batch moves it and names the integrations whose stretch is older than `breaker_after`; `trip`
switches those off.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Protocol
from uuid import UUID

import asyncpg

from hub.store.records import SwitchedOff


class Attempt(Protocol):
    """What the clock needs of a recorded attempt."""

    @property
    def integration_id(self) -> UUID: ...
    @property
    def succeeded(self) -> bool: ...
    @property
    def status_code(self) -> int | None: ...


@dataclass(frozen=True, slots=True)
class Clock:
    """Which way a batch of attempts moves the clock, by each integration's last word in it."""

    recovered: list[UUID]
    """Last word a success: the clock stops (`failing_since` cleared)."""
    failing: list[UUID]
    """Last word a failure: the clock starts where it is not running."""
    restarted: list[UUID]
    """Of `failing`, those a success earlier in the batch ended a stretch of: a new one starts
    now, whether or not the clock was running."""

    @classmethod
    def of(cls, records: Sequence[Attempt]) -> Clock:
        last: dict[UUID, bool] = {}
        succeeded: set[UUID] = set()
        for r in records:  # in the order the attempts finished
            if not r.succeeded and r.status_code == 429:
                continue  # alive, asking us to slow down: neither a failure nor a recovery
            if r.succeeded:
                succeeded.add(r.integration_id)
            last[r.integration_id] = r.succeeded
        failing = [i for i, ok in last.items() if not ok]
        return cls(
            recovered=[i for i, ok in last.items() if ok],
            failing=failing,
            restarted=[i for i in failing if i in succeeded],
        )


def _duration(value: timedelta) -> str:
    seconds = int(value.total_seconds())
    for unit, size in (("day", 86400), ("hour", 3600), ("minute", 60)):
        if seconds >= size and seconds % size == 0:
            count = seconds // size
            return f"{count} {unit}{'s' if count != 1 else ''}"
    return f"{seconds} second{'s' if seconds != 1 else ''}"


def _reason(since: datetime, after: timedelta) -> str:
    shown = since.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
    return (
        f"Disabled by the circuit breaker: every delivery attempt since {shown} failed "
        f"(more than {_duration(after)}); its pending jobs are held until it is enabled again"
    )


async def trip(
    db: asyncpg.Connection, candidates: Sequence[UUID], after: timedelta
) -> list[SwitchedOff]:
    """Switch off those of `candidates` still enabled and failing for longer than `after`, and
    hold their pending jobs; returns them, each with its `disabled_reason`. The lock and the
    `enabled` test make one trip per failing stretch, however many workers record at once."""
    due = await db.fetch(_DUE, list(candidates), after)
    if not due:
        return []
    reasons = {row[0]: _reason(row[1], after) for row in due}
    rows = await db.fetch(_TRIP, list(reasons), list(reasons.values()))
    return [
        SwitchedOff(
            id=row["id"],
            store_id=row["store_id"],
            name=row["name"],
            integration_type=row["integration_type"],
            reason=reasons[row["id"]],
            by_breaker=True,
            at=row["updated_at"],
        )
        for row in rows
    ]


#: Locked, so that a concurrent change (enabling it, another worker tripping it) is seen.
_DUE = """
    SELECT id, failing_since
    FROM integrations
    WHERE id = ANY($1::uuid[]) AND enabled AND deleted_at IS NULL
      AND failing_since < now() - $2::interval
    FOR UPDATE
"""

_TRIP = """
    WITH switched_off AS (
        UPDATE integrations AS i
        SET enabled = false, disabled_reason = t.reason, updated_at = now()
        FROM unnest($1::uuid[], $2::text[]) AS t(id, reason)
        WHERE i.id = t.id
        RETURNING i.id, i.store_id, i.name, i.integration_type, i.updated_at
    ), held AS (
        UPDATE integration_jobs
        SET status = 'held', next_attempt_at = NULL, updated_at = now()
        WHERE integration_id = ANY($1::uuid[]) AND status = 'pending'
    )
    SELECT id, store_id, name, integration_type, updated_at FROM switched_off ORDER BY id
"""
