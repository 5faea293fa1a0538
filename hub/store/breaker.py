"""The circuit breaker's SQL: its clock (`integrations.failing_since`), tripping, and holding
an integration's jobs. Called by `hub.store.queue` in the transaction that records
attempts (`hub.store.queue.resume_held` undoes the hold when the integration is enabled again).

The clock: set by the first failed attempt of a stretch, cleared by any success; a 429 answer
counts as neither (the endpoint is alive and asks us to slow down). When a failed attempt finds
the stretch older than `breaker_after`, the integration is switched off with a visible
`disabled_reason` and its pending jobs are held (not cancelled: enabling it resumes them).
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, timedelta
from typing import Any, Protocol, cast
from uuid import UUID

from sqlalchemy import Table, any_, bindparam, func, literal_column, select, update
from sqlalchemy.dialects.postgresql import ARRAY
from sqlalchemy.dialects.postgresql import UUID as PG_UUID
from sqlalchemy.ext.asyncio import AsyncConnection
from sqlalchemy.sql.elements import ColumnClause

from hub.store.models import Integration, IntegrationJob

jobs = cast(Table, IntegrationJob.__table__)
integrations = cast(Table, Integration.__table__)

_PENDING: ColumnClause[str] = literal_column("'pending'")


class Attempt(Protocol):
    """What the clock needs of a recorded attempt."""

    @property
    def integration_id(self) -> UUID: ...
    @property
    def succeeded(self) -> bool: ...
    @property
    def status_code(self) -> int | None: ...


def _ids(name: str, values: Sequence[UUID]) -> Any:
    return bindparam(name, value=list(values), type_=ARRAY(PG_UUID(as_uuid=True)))


async def move_clock(conn: AsyncConnection, records: Sequence[Attempt]) -> list[UUID]:
    """Clear `failing_since` where the batch's last word was a success, start it where it was
    a failure; returns the integrations whose last word was a failure."""
    last: dict[UUID, bool] = {}
    recovered: set[UUID] = set()
    for r in records:  # in the order the attempts finished
        if not r.succeeded and r.status_code == 429:
            continue  # alive, asking us to slow down: neither a failure nor a recovery
        if r.succeeded:
            recovered.add(r.integration_id)
        last[r.integration_id] = r.succeeded
    ok = [i for i, succeeded in last.items() if succeeded]
    failing = [i for i, succeeded in last.items() if not succeeded]
    if ok:
        await conn.execute(
            update(integrations)
            .where(
                integrations.c.id == any_(_ids("ok", ok)), integrations.c.failing_since.is_not(None)
            )
            .values(failing_since=None)
        )
    if failing:
        # A success earlier in this very batch ended the previous stretch: a new one starts now.
        restarted = [i for i in failing if i in recovered]
        await conn.execute(
            update(integrations)
            .where(
                integrations.c.id == any_(_ids("failing", failing)),
                integrations.c.failing_since.is_(None)
                | (integrations.c.id == any_(_ids("restarted", restarted))),
            )
            .values(failing_since=func.now())
        )
    return failing


def _duration(value: timedelta) -> str:
    seconds = int(value.total_seconds())
    for unit, size in (("day", 86400), ("hour", 3600), ("minute", 60)):
        if seconds >= size and seconds % size == 0:
            count = seconds // size
            return f"{count} {unit}{'s' if count != 1 else ''}"
    return f"{seconds} second{'s' if seconds != 1 else ''}"


async def trip(conn: AsyncConnection, failing: Sequence[UUID], after: timedelta) -> dict[UUID, str]:
    due = await conn.execute(
        select(integrations.c.id, integrations.c.failing_since)
        .where(
            integrations.c.id == any_(_ids("failing", failing)),
            integrations.c.enabled.is_(True),
            integrations.c.deleted_at.is_(None),
            integrations.c.failing_since < func.now() - after,
        )
        .with_for_update()
    )
    tripped: dict[UUID, str] = {}
    for row in due:
        since = row.failing_since.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
        reason = (
            f"Disabled by the circuit breaker: every delivery attempt since {since} failed "
            f"(more than {_duration(after)}); its pending jobs are held until it is enabled again"
        )
        await conn.execute(
            update(integrations)
            .where(integrations.c.id == row.id)
            .values(enabled=False, disabled_reason=reason, updated_at=func.now())
        )
        await hold_pending(conn, row.id)
        tripped[row.id] = reason
    return tripped


async def hold_pending(conn: AsyncConnection, integration_id: UUID) -> int:
    """Hold the integration's waiting jobs (the circuit breaker switched it off)."""
    result = await conn.execute(
        update(jobs)
        .where(jobs.c.integration_id == integration_id, jobs.c.status == _PENDING)
        .values(status="held", next_attempt_at=None, updated_at=func.now())
    )
    return result.rowcount
