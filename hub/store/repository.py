"""The API's reads and writes of stores, keys, integrations, events, jobs and logs.

Every query that serves a request is scoped by `store_id`, so another store's rows are simply
not found. The queue's own SQL (enqueue, claim, record, release) lives in `hub.store.queue`.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, cast
from uuid import UUID

import asyncpg
from sqlalchemy import Table, func, insert, null, select, update
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.ext.asyncio import AsyncConnection

from deliverers.config import SECRET_FIELD_NAMES
from hub import crypto
from hub.ids import uuid7
from hub.store.models import ApiKey, Event, Integration, IntegrationJob, IntegrationLog, Store
from hub.store.records import (
    ApiKeyRecord,
    EventRecord,
    IntegrationRecord,
    IntegrationStatusRecord,
    JobRecord,
    LastErrorRecord,
    LogRecord,
    Page,
    StoreRecord,
)

stores = cast(Table, Store.__table__)
api_keys = cast(Table, ApiKey.__table__)
integrations = cast(Table, Integration.__table__)
events = cast(Table, Event.__table__)
jobs = cast(Table, IntegrationJob.__table__)
logs = cast(Table, IntegrationLog.__table__)


# --- stores and keys ---------------------------------------------------------------------------


async def ensure_store(conn: AsyncConnection, name: str) -> StoreRecord:
    """The store called `name`, created if it does not exist yet."""
    await conn.execute(
        pg_insert(stores)
        .values(id=uuid7(), name=name)
        .on_conflict_do_nothing(index_elements=["name"])
    )
    row = (await conn.execute(select(stores).where(stores.c.name == name))).one()
    return StoreRecord(id=row.id, name=row.name, created_at=row.created_at)


async def get_store_by_name(conn: AsyncConnection, name: str) -> StoreRecord | None:
    row = (await conn.execute(select(stores).where(stores.c.name == name))).first()
    return None if row is None else StoreRecord(id=row.id, name=row.name, created_at=row.created_at)


def _key(row: Any) -> ApiKeyRecord:
    return ApiKeyRecord(
        id=row.id,
        store_id=row.store_id,
        store_name=row.store_name,
        role=row.role,
        prefix=row.prefix,
        created_at=row.created_at,
        revoked_at=row.revoked_at,
    )


_KEY_COLUMNS = (
    api_keys.c.id,
    api_keys.c.store_id,
    stores.c.name.label("store_name"),
    api_keys.c.role,
    api_keys.c.prefix,
    api_keys.c.created_at,
    api_keys.c.revoked_at,
)


async def insert_key(
    conn: AsyncConnection, *, store_id: UUID, role: str, prefix: str, key_hash: bytes
) -> ApiKeyRecord:
    key_id = uuid7()
    await conn.execute(
        insert(api_keys).values(
            id=key_id, store_id=store_id, role=role, prefix=prefix, key_hash=key_hash
        )
    )
    row = (
        await conn.execute(
            select(*_KEY_COLUMNS)
            .join(stores, stores.c.id == api_keys.c.store_id)
            .where(api_keys.c.id == key_id)
        )
    ).one()
    return _key(row)


async def find_active_key(db: asyncpg.Connection, prefix: str) -> tuple[ApiKeyRecord, bytes] | None:
    """The unrevoked key with this prefix and its stored hash (on the driver connection: every
    request asks; see `hub.store.engine.driver`)."""
    row = await db.fetchrow(_FIND_ACTIVE_KEY, prefix)
    if row is None:
        return None
    key = ApiKeyRecord(
        id=row["id"],
        store_id=row["store_id"],
        store_name=row["store_name"],
        role=row["role"],
        prefix=row["prefix"],
        created_at=row["created_at"],
        revoked_at=row["revoked_at"],
    )
    return key, bytes(row["key_hash"])


_FIND_ACTIVE_KEY = """
    SELECT k.id, k.store_id, s.name AS store_name, k.role, k.prefix, k.created_at,
           k.revoked_at, k.key_hash
    FROM api_keys AS k JOIN stores AS s ON s.id = k.store_id
    WHERE k.prefix = $1 AND k.revoked_at IS NULL
"""


async def list_keys(conn: AsyncConnection) -> list[ApiKeyRecord]:
    rows = await conn.execute(
        select(*_KEY_COLUMNS)
        .join(stores, stores.c.id == api_keys.c.store_id)
        .order_by(stores.c.name, api_keys.c.created_at)
    )
    return [_key(row) for row in rows]


async def revoke_key(conn: AsyncConnection, key_id: UUID) -> bool:
    result = await conn.execute(
        update(api_keys)
        .where(api_keys.c.id == key_id, api_keys.c.revoked_at.is_(None))
        .values(revoked_at=func.now())
    )
    return result.rowcount > 0


# --- integrations ------------------------------------------------------------------------------


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
    )


_LIVE = integrations.c.deleted_at.is_(None)


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
) -> IntegrationRecord:
    row = (
        await conn.execute(
            insert(integrations)
            .values(
                max_in_flight=max_in_flight,
                rate_limit=rate_limit,
                conditions=null() if conditions is None else dict(conditions),
                id=uuid7(),
                store_id=store_id,
                name=name,
                description=description,
                enabled=enabled,
                integration_type=integration_type,
                observes=list(observes),
                configuration=crypto.seal_configuration(configuration, SECRET_FIELD_NAMES),
                signing_secret=crypto.seal_text(signing_secret),
            )
            .returning(integrations)
        )
    ).one()
    return _integration(row)


@dataclass(frozen=True, slots=True)
class IntegrationFilter:
    enabled: bool | None = None
    integration_type: str | None = None
    observes_any: tuple[str, ...] | None = None
    """Integrations whose `observes` shares an entry with these."""


async def list_integrations(
    conn: AsyncConnection, store_id: UUID, flt: IntegrationFilter, *, limit: int, offset: int
) -> Page[IntegrationRecord]:
    where = [integrations.c.store_id == store_id, _LIVE]
    if flt.enabled is not None:
        where.append(integrations.c.enabled.is_(flt.enabled))
    if flt.integration_type is not None:
        where.append(integrations.c.integration_type == flt.integration_type)
    if flt.observes_any is not None:
        where.append(integrations.c.observes.overlap(list(flt.observes_any)))
    total = (
        await conn.execute(select(func.count()).select_from(integrations).where(*where))
    ).scalar_one()
    rows = await conn.execute(
        select(integrations)
        .where(*where)
        .order_by(integrations.c.created_at.desc(), integrations.c.id.desc())
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
    conn: AsyncConnection, store_id: UUID, integration_id: UUID, changes: Mapping[str, Any]
) -> IntegrationRecord | None:
    """Apply `changes` (column → value) to a live integration; None when there is none.

    `conditions: None` stores SQL NULL (no filter), not a JSON null.
    """
    if "conditions" in changes and changes["conditions"] is None:
        changes = {**changes, "conditions": null()}
    if "configuration" in changes:  # secrets are stored encrypted (`hub.crypto`)
        sealed = crypto.seal_configuration(changes["configuration"], SECRET_FIELD_NAMES)
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


async def stored_secrets(
    conn: AsyncConnection, *, after: UUID | None, limit: int
) -> list[StoredSecrets]:
    """The next `limit` integrations by id (deleted ones too), locked for rewriting."""
    query = select(
        integrations.c.id,
        integrations.c.configuration,
        integrations.c.signing_secret,
        integrations.c.previous_signing_secret,
    )
    if after is not None:
        query = query.where(integrations.c.id > after)
    rows = await conn.execute(query.order_by(integrations.c.id).limit(limit).with_for_update())
    return [
        StoredSecrets(r.id, dict(r.configuration), r.signing_secret, r.previous_signing_secret)
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


@dataclass(frozen=True, slots=True)
class FanoutTarget:
    """What publishing needs of an integration to decide whether it gets a job (no secrets)."""

    id: UUID
    observes: tuple[str, ...]
    conditions: dict[str, Any] | None


async def live_integrations_observing(
    db: asyncpg.Connection, store_id: UUID, candidates: Sequence[str]
) -> list[FanoutTarget]:
    """Enabled, live integrations of the store whose `observes` overlaps `candidates`.

    Only the columns fan-out needs: no configuration or secrets, so nothing is decrypted.
    """
    rows = await db.fetch(_FANOUT_TARGETS, store_id, list(candidates))
    return [FanoutTarget(r[0], tuple(r[1]), r[2]) for r in rows]


#: Its predicate matches the partial GIN index `ix_integrations_observes_live`.
_FANOUT_TARGETS = """
    SELECT id, observes, conditions FROM integrations
    WHERE store_id = $1 AND enabled AND deleted_at IS NULL AND observes && $2::text[]
"""


# --- events ------------------------------------------------------------------------------------


def _event(row: Any) -> EventRecord:
    return EventRecord(
        id=row.id,
        store_id=row.store_id,
        client_id=row.client_id,
        triggered_by=row.triggered_by,
        payload=row.payload,
        created_at=row.created_at,
    )


@dataclass(frozen=True, slots=True)
class NewEvent:
    id: UUID
    client_id: str | None
    triggered_by: str
    payload: dict[str, Any]
    payload_json: str
    """`payload` as JSON text, as stored."""


async def events_by_client_id(
    conn: AsyncConnection, store_id: UUID, client_ids: Sequence[str]
) -> dict[str, EventRecord]:
    if not client_ids:
        return {}
    rows = await conn.execute(
        select(events).where(events.c.store_id == store_id, events.c.client_id.in_(client_ids))
    )
    return {row.client_id: _event(row) for row in rows}


async def get_event(conn: AsyncConnection, store_id: UUID, event_id: UUID) -> EventRecord | None:
    row = (
        await conn.execute(
            select(events).where(events.c.id == event_id, events.c.store_id == store_id)
        )
    ).first()
    return None if row is None else _event(row)


async def job_counts_by_event(conn: AsyncConnection, event_ids: Sequence[UUID]) -> dict[UUID, int]:
    if not event_ids:
        return {}
    rows = await conn.execute(
        select(jobs.c.event_id, func.count())
        .where(jobs.c.event_id.in_(list(event_ids)))
        .group_by(jobs.c.event_id)
    )
    return {row[0]: row[1] for row in rows}


# --- jobs and logs -----------------------------------------------------------------------------


def job_record(row: Any) -> JobRecord:
    return JobRecord(
        id=row.id,
        store_id=row.store_id,
        event_id=row.event_id,
        integration_id=row.integration_id,
        triggered_by=row.triggered_by,
        status=row.status,
        attempts=row.attempts,
        next_attempt_at=row.next_attempt_at,
        last_error=row.last_error,
        retry_of=row.retry_of,
        created_at=row.created_at,
        updated_at=row.updated_at,
        completed_at=row.completed_at,
    )


@dataclass(frozen=True, slots=True)
class JobFilter:
    status: tuple[str, ...] | None = None
    triggered_by: tuple[str, ...] | None = None
    created_gte: datetime | None = None
    created_lte: datetime | None = None


async def list_jobs(
    conn: AsyncConnection,
    store_id: UUID,
    integration_id: UUID,
    flt: JobFilter,
    *,
    limit: int,
    offset: int,
) -> Page[JobRecord]:
    where = [jobs.c.store_id == store_id, jobs.c.integration_id == integration_id]
    if flt.status:
        where.append(jobs.c.status.in_(flt.status))
    if flt.triggered_by:
        where.append(jobs.c.triggered_by.in_(flt.triggered_by))
    if flt.created_gte is not None:
        where.append(jobs.c.created_at >= flt.created_gte)
    if flt.created_lte is not None:
        where.append(jobs.c.created_at <= flt.created_lte)
    total = (await conn.execute(select(func.count()).select_from(jobs).where(*where))).scalar_one()
    rows = await conn.execute(
        select(jobs)
        .where(*where)
        .order_by(jobs.c.created_at.desc(), jobs.c.id.desc())
        .limit(limit)
        .offset(offset)
    )
    return Page([job_record(r) for r in rows], total)


async def jobs_of_event(conn: AsyncConnection, event_id: UUID, *, limit: int) -> list[JobRecord]:
    rows = await conn.execute(
        select(jobs)
        .where(jobs.c.event_id == event_id)
        .order_by(jobs.c.created_at.desc(), jobs.c.id.desc())
        .limit(limit)
    )
    return [job_record(r) for r in rows]


async def get_job(
    conn: AsyncConnection, store_id: UUID, integration_id: UUID, job_id: UUID
) -> JobRecord | None:
    row = (
        await conn.execute(
            select(jobs).where(
                jobs.c.id == job_id,
                jobs.c.store_id == store_id,
                jobs.c.integration_id == integration_id,
            )
        )
    ).first()
    return None if row is None else job_record(row)


def _log(row: Any) -> LogRecord:
    return LogRecord(
        id=row.id,
        store_id=row.store_id,
        integration_id=row.integration_id,
        job_id=row.job_id,
        attempt=row.attempt,
        succeeded=row.succeeded,
        processing_time=row.processing_time,
        status_code=row.status_code,
        body=row.body,
        error_detail=row.error_detail,
        created_at=row.created_at,
    )


@dataclass(frozen=True, slots=True)
class LogFilter:
    integration_id: UUID | None = None
    job_id: UUID | None = None
    succeeded: bool | None = None


async def list_logs(
    conn: AsyncConnection, store_id: UUID, flt: LogFilter, *, limit: int, offset: int
) -> Page[LogRecord]:
    where = [logs.c.store_id == store_id]
    if flt.integration_id is not None:
        where.append(logs.c.integration_id == flt.integration_id)
    if flt.job_id is not None:
        where.append(logs.c.job_id == flt.job_id)
    if flt.succeeded is not None:
        where.append(logs.c.succeeded.is_(flt.succeeded))
    total = (await conn.execute(select(func.count()).select_from(logs).where(*where))).scalar_one()
    order = (
        (logs.c.attempt.desc(), logs.c.id.desc())
        if flt.job_id is not None
        else (logs.c.created_at.desc(), logs.c.id.desc())
    )
    rows = await conn.execute(
        select(logs).where(*where).order_by(*order).limit(limit).offset(offset)
    )
    return Page([_log(r) for r in rows], total)


# --- integration status ------------------------------------------------------------------------


async def integration_status(
    conn: AsyncConnection, integration: IntegrationRecord, *, window: timedelta
) -> IntegrationStatusRecord:
    """Job counts by status and the attempts' story: last attempt, success, error, recent rate.

    Served by the indexes on jobs (integration_id, status) and logs (integration_id,
    created_at DESC, id DESC); `window` is how far back the recent counts look.
    """
    job_counts = {
        status: count
        for status, count in await conn.execute(
            select(jobs.c.status, func.count())
            .where(jobs.c.integration_id == integration.id)
            .group_by(jobs.c.status)
        )
    }
    mine = logs.c.integration_id == integration.id
    newest = (logs.c.created_at.desc(), logs.c.id.desc())
    recent = (
        select(
            func.count().label("attempts"),
            func.count().filter(logs.c.succeeded).label("succeeded"),
        )
        .where(mine, logs.c.created_at >= func.now() - window)
        .subquery()
    )
    summary = (
        await conn.execute(
            select(
                select(logs.c.created_at).where(mine).order_by(*newest).limit(1).scalar_subquery(),
                select(logs.c.created_at)
                .where(mine, logs.c.succeeded)
                .order_by(*newest)
                .limit(1)
                .scalar_subquery(),
                recent.c.attempts,
                recent.c.succeeded,
            )
        )
    ).one()
    failure = (
        await conn.execute(
            select(logs.c.created_at, logs.c.error_detail, logs.c.status_code)
            .where(mine, logs.c.succeeded.is_(False))
            .order_by(*newest)
            .limit(1)
        )
    ).first()
    return IntegrationStatusRecord(
        integration=integration,
        jobs=job_counts,
        last_attempt_at=summary[0],
        last_success_at=summary[1],
        last_error=None
        if failure is None
        else LastErrorRecord(
            at=failure.created_at, detail=failure.error_detail, status_code=failure.status_code
        ),
        recent_attempts=summary[2],
        recent_successes=summary[3],
    )
