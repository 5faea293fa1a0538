"""Integrations: the API's reads and writes, publishing's fan-out read, the signing secrets and
the secrets at rest, and what switching an integration off or on does to its waiting jobs.

Every query that serves a request is scoped by `store_id`, so another store's rows are simply
not found. Secrets are encrypted on write and decrypted on read (`hub.crypto`); which
configuration fields are secrets the caller says (`secret_fields`), as it knows the transports'
configuration models.
"""

from __future__ import annotations

import functools
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any
from uuid import UUID

import asyncpg
from sqlalchemy import String, bindparam, case, func, insert, null, select, update
from sqlalchemy.dialects.postgresql import UUID as PG_UUID
from sqlalchemy.ext.asyncio import AsyncConnection

from hub import crypto
from hub.ids import uuid7
from hub.store import listing
from hub.store.compiled import CANCELLED, HELD, PENDING, Compiled
from hub.store.enqueue import notify
from hub.store.listing import NEWEST_FIRST, Condition, Order
from hub.store.models import integrations, jobs, stores
from hub.store.records import IntegrationRecord, Page


def _integration(row: Any) -> IntegrationRecord:
    return IntegrationRecord(
        id=row.id,
        store_id=row.store_id,
        name=row.name,
        description=row.description,
        enabled=row.enabled,
        integration_type=row.integration_type,
        observes=tuple(row.observes),
        configuration=crypto.open_configuration(row.configuration),
        signing_secret=crypto.open_text(row.signing_secret),
        disabled_reason=row.disabled_reason,
        created_at=row.created_at,
        updated_at=row.updated_at,
        conditions=row.conditions,
        max_in_flight=row.max_in_flight,
        rate_limit=row.rate_limit,
        failing_since=row.failing_since,
        ordering_key=row.ordering_key,
    )


_LIVE = integrations.c.deleted_at.is_(None)


integration_record = _integration
"""A row of `integrations` as its record (for the store's other lists of integrations)."""


async def count_live_locked(conn: AsyncConnection, store_id: UUID) -> int:
    """How many integrations the store has (deleted ones aside), its row locked until the
    caller's transaction ends so that concurrent creates count one after the other.

    `FOR NO KEY UPDATE` (SQLAlchemy's `key_share=True`): it excludes another such lock, not the
    key-share locks that inserts referencing the store take, so publishing goes on meanwhile.
    """
    await conn.execute(
        select(stores.c.id).where(stores.c.id == store_id).with_for_update(key_share=True)
    )
    live = (
        select(func.count())
        .select_from(integrations)
        .where(integrations.c.store_id == store_id, _LIVE)
    )
    count: int = (await conn.execute(live)).scalar_one()
    return count


async def insert_integration(
    conn: AsyncConnection,
    *,
    store_id: UUID,
    name: str,
    description: str | None,
    enabled: bool,
    integration_type: str,
    observes: Sequence[str],
    configuration: Mapping[str, Any],
    signing_secret: str,
    conditions: Mapping[str, Any] | None = None,
    max_in_flight: int | None = None,
    rate_limit: float | None = None,
    ordering_key: str | None = None,
    secret_fields: Iterable[str],
) -> IntegrationRecord:
    """`secret_fields`: the configuration fields stored encrypted (`hub.crypto`)."""
    row = (
        await conn.execute(
            insert(integrations)
            .values(
                max_in_flight=max_in_flight,
                rate_limit=rate_limit,
                ordering_key=ordering_key,
                conditions=null() if conditions is None else dict(conditions),
                id=uuid7(),
                store_id=store_id,
                name=name,
                description=description,
                enabled=enabled,
                integration_type=integration_type,
                observes=list(observes),
                configuration=crypto.seal_configuration(configuration, secret_fields),
                signing_secret=crypto.seal_text(signing_secret),
            )
            .returning(integrations)
        )
    ).one()
    return _integration(row)


#: What an integration list can be filtered on (`hub.store.listing`).
FILTERABLE = {
    "name": integrations.c.name,
    "description": integrations.c.description,
    "enabled": integrations.c.enabled,
    "integration_type": integrations.c.integration_type,
    "observes": integrations.c.observes,
    "created_at": integrations.c.created_at,
    "updated_at": integrations.c.updated_at,
}
#: …and sorted on.
SORTABLE = {
    "name": integrations.c.name,
    "created_at": integrations.c.created_at,
    "updated_at": integrations.c.updated_at,
}


async def list_integrations(
    conn: AsyncConnection,
    store_id: UUID,
    conditions: Sequence[Condition] = (),
    *,
    order: Order = NEWEST_FIRST,
    limit: int,
    offset: int,
) -> Page[IntegrationRecord]:
    """The store's live integrations that meet every condition, a page in `order`."""
    where = [integrations.c.store_id == store_id, _LIVE, *listing.where(conditions, FILTERABLE)]
    total = (
        await conn.execute(select(func.count()).select_from(integrations).where(*where))
    ).scalar_one()
    rows = await conn.execute(
        select(integrations)
        .where(*where)
        .order_by(*listing.order_by(order, SORTABLE, integrations.c.id))
        .limit(limit)
        .offset(offset)
    )
    return Page([_integration(r) for r in rows], total)


async def get_integration(
    conn: AsyncConnection, store_id: UUID, integration_id: UUID, *, for_update: bool = False
) -> IntegrationRecord | None:
    query = select(integrations).where(
        integrations.c.id == integration_id, integrations.c.store_id == store_id, _LIVE
    )
    if for_update:
        query = query.with_for_update()
    row = (await conn.execute(query)).first()
    return None if row is None else _integration(row)


async def integration_exists(conn: AsyncConnection, store_id: UUID, integration_id: UUID) -> bool:
    """True for a live integration of the store."""
    query = select(integrations.c.id).where(
        integrations.c.id == integration_id, integrations.c.store_id == store_id, _LIVE
    )
    return (await conn.execute(query)).first() is not None


async def update_integration(
    conn: AsyncConnection,
    store_id: UUID,
    integration_id: UUID,
    changes: Mapping[str, Any],
    *,
    secret_fields: Iterable[str],
) -> IntegrationRecord | None:
    """Apply `changes` (column → value) to a live integration; None when there is none.

    `conditions: None` stores SQL NULL (no filter), not a JSON null; a new `configuration` has
    its `secret_fields` stored encrypted.
    """
    if "conditions" in changes and changes["conditions"] is None:
        changes = {**changes, "conditions": null()}
    if "configuration" in changes:  # secrets are stored encrypted (`hub.crypto`)
        sealed = crypto.seal_configuration(changes["configuration"], secret_fields)
        changes = {**changes, "configuration": sealed}
    if "signing_secret" in changes:
        changes = {**changes, "signing_secret": crypto.seal_text(changes["signing_secret"])}
    row = (
        await conn.execute(
            update(integrations)
            .where(integrations.c.id == integration_id, integrations.c.store_id == store_id, _LIVE)
            .values(**changes, updated_at=func.now())
            .returning(integrations)
        )
    ).first()
    return None if row is None else _integration(row)


async def delete_integration(conn: AsyncConnection, store_id: UUID, integration_id: UUID) -> bool:
    """Soft-delete: the row stays so that its jobs and logs keep their relationships."""
    result = await conn.execute(
        update(integrations)
        .where(integrations.c.id == integration_id, integrations.c.store_id == store_id, _LIVE)
        .values(deleted_at=func.now(), enabled=False, updated_at=func.now())
    )
    return result.rowcount > 0


# --- publishing's fan-out ----------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class FanoutTarget:
    """What publishing needs of an integration to decide whether it gets a job (no secrets)."""

    id: UUID
    observes: tuple[str, ...]
    conditions: dict[str, Any] | None
    ordering_key: str | None = None
    """The payload path whose value orders its jobs (`hub.ordering`); None: unordered."""


async def live_integrations_observing(
    db: asyncpg.Connection, store_id: UUID, candidates: Sequence[str]
) -> list[FanoutTarget]:
    """Enabled, live integrations of the store whose `observes` overlaps `candidates`.

    Only the columns fan-out needs: no configuration or secrets, so nothing is decrypted.
    """
    rows = await db.fetch(_FANOUT_TARGETS, store_id, list(candidates))
    return [FanoutTarget(r[0], tuple(r[1]), r[2], r[3]) for r in rows]


#: Its predicate matches the partial GIN index `ix_integrations_observes_live`.
_FANOUT_TARGETS = """
    SELECT id, observes, conditions, ordering_key FROM integrations
    WHERE store_id = $1 AND enabled AND deleted_at IS NULL AND observes && $2::text[]
"""


async def ordered_integrations_observing(
    db: asyncpg.Connection, store_ids: Sequence[UUID], candidates: Sequence[str]
) -> set[UUID]:
    """Those of the stores' enabled, live integrations whose `observes` overlaps `candidates`
    and that order their jobs: the queues that a transaction about to publish such events must
    lock before any row lock (`hub.store.ordered.lock_queues`)."""
    rows = await db.fetch(_ORDERED_OBSERVERS, list(store_ids), list(candidates))
    return {row[0] for row in rows}


#: On the partial GIN index `ix_integrations_observes_live`, as fan-out.
_ORDERED_OBSERVERS = """
    SELECT id FROM integrations
    WHERE store_id = ANY($1::uuid[]) AND enabled AND deleted_at IS NULL
      AND observes && $2::text[] AND ordering_key IS NOT NULL
"""


# --- signing secrets and secrets at rest --------------------------------------------------------


@dataclass(frozen=True, slots=True)
class SigningSecrets:
    """An integration's signing secret and, during a rotation's grace period, the previous one."""

    current: str
    previous: str | None
    previous_expires_at: datetime | None


def _signing_secrets(row: Any) -> SigningSecrets:
    live = row.previous_signing_secret_expires_at is not None and row.previous_live
    return SigningSecrets(
        current=crypto.open_text(row.signing_secret),
        previous=crypto.open_text(row.previous_signing_secret) if live else None,
        previous_expires_at=row.previous_signing_secret_expires_at if live else None,
    )


_SECRET_COLUMNS = (
    integrations.c.signing_secret,
    integrations.c.previous_signing_secret,
    integrations.c.previous_signing_secret_expires_at,
    (integrations.c.previous_signing_secret_expires_at > func.now()).label("previous_live"),
)


async def get_signing_secrets(
    conn: AsyncConnection, store_id: UUID, integration_id: UUID
) -> SigningSecrets | None:
    row = (
        await conn.execute(
            select(*_SECRET_COLUMNS).where(
                integrations.c.id == integration_id, integrations.c.store_id == store_id, _LIVE
            )
        )
    ).first()
    return None if row is None else _signing_secrets(row)


async def rotate_signing_secret(
    conn: AsyncConnection, store_id: UUID, integration_id: UUID, new: str, *, grace: timedelta
) -> SigningSecrets | None:
    """Make `new` the signing secret; the current one stays valid for `grace` (none if zero)."""
    keep = grace > timedelta(0)
    row = (
        await conn.execute(
            update(integrations)
            .where(integrations.c.id == integration_id, integrations.c.store_id == store_id, _LIVE)
            .values(
                previous_signing_secret=integrations.c.signing_secret if keep else null(),
                previous_signing_secret_expires_at=func.now() + grace if keep else null(),
                signing_secret=crypto.seal_text(new),
                updated_at=func.now(),
            )
            .returning(*_SECRET_COLUMNS)
        )
    ).first()
    return None if row is None else _signing_secrets(row)


@dataclass(frozen=True, slots=True)
class StoredSecrets:
    """An integration's secret-bearing columns exactly as stored (encrypted or not)."""

    id: UUID
    configuration: dict[str, Any]
    signing_secret: str
    previous_signing_secret: str | None
    integration_type: str = ""
    """Which fields of `configuration` are secrets depends on it (read only)."""


async def stored_secrets(
    conn: AsyncConnection, *, after: UUID | None, limit: int
) -> list[StoredSecrets]:
    """The next `limit` integrations by id (deleted ones too), locked for rewriting."""
    query = select(
        integrations.c.id,
        integrations.c.configuration,
        integrations.c.signing_secret,
        integrations.c.previous_signing_secret,
        integrations.c.integration_type,
    )
    if after is not None:
        query = query.where(integrations.c.id > after)
    rows = await conn.execute(query.order_by(integrations.c.id).limit(limit).with_for_update())
    return [
        StoredSecrets(
            r.id,
            dict(r.configuration),
            r.signing_secret,
            r.previous_signing_secret,
            r.integration_type,
        )
        for r in rows
    ]


async def sealed_signing_secret_samples(conn: AsyncConnection) -> list[str]:
    """The oldest and the newest encrypted signing secrets, to check the keys at start."""
    sealed = integrations.c.signing_secret.startswith(crypto.TEXT_PREFIX, autoescape=True)
    out = []
    for order in (integrations.c.created_at.asc(), integrations.c.created_at.desc()):
        value = (
            await conn.execute(
                select(integrations.c.signing_secret).where(sealed).order_by(order).limit(1)
            )
        ).scalar_one_or_none()
        if value is not None:
            out.append(value)
    return out


async def rewrite_stored_secrets(conn: AsyncConnection, secrets: StoredSecrets) -> None:
    """Store already-encrypted values as they are (for `hub secrets rotate`)."""
    await conn.execute(
        update(integrations)
        .where(integrations.c.id == secrets.id)
        .values(
            configuration=secrets.configuration,
            signing_secret=secrets.signing_secret,
            previous_signing_secret=secrets.previous_signing_secret,
        )
    )


# --- its waiting jobs, when it is switched off or on ---------------------------------------------


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
            jobs.c.status.in_([PENDING, HELD]),
        )
        .values(
            status=CANCELLED,
            last_error=bindparam("reason", type_=String),
            next_attempt_at=null(),
            blocked_by=null(),
            completed_at=func.now(),
            updated_at=func.now(),
        )
    )


@functools.cache
def cancel_pending_sql() -> Compiled:
    """`cancel_pending`'s statement compiled for the driver connection (`hub.store.attempts`)."""
    return Compiled.of(_cancel_pending_template())


async def resume_held(conn: AsyncConnection, integration_id: UUID) -> int:
    """Make the integration's held jobs pending again, due now (it was enabled again); one that
    waits for an earlier job of its key goes on waiting (`hub.store.ordered`)."""
    result = await conn.execute(
        update(jobs)
        .where(jobs.c.integration_id == integration_id, jobs.c.status == HELD)
        .values(
            status="pending",
            next_attempt_at=case((jobs.c.blocked_by.is_(None), func.now()), else_=null()),
            updated_at=func.now(),
        )
    )
    if result.rowcount:
        await notify(conn)
    return result.rowcount
