"""The stores' VAPID key pairs (Web Push): one per store, made on first use, replaced by a
rotation. The private key is stored sealed (`hub.crypto`) and opened on read; the caller makes
the key pair (the store knows no cryptography beyond sealing)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any
from uuid import UUID

from sqlalchemy import func, select, update
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.ext.asyncio import AsyncConnection

from hub import crypto
from hub.store.models import integrations, vapid_keys
from hub.store.records import VapidKeyRecord

#: The integration type whose targets carry the store's key.
WEB_PUSH = "web_push"


def _record(row: Any) -> VapidKeyRecord:
    return VapidKeyRecord(
        store_id=row.store_id,
        public_key=row.public_key,
        private_key=crypto.open_text(row.private_key),
        created_at=row.created_at,
    )


async def get_vapid_key(conn: AsyncConnection, store_id: UUID) -> VapidKeyRecord | None:
    """The store's key pair; None when it has none yet."""
    row = (await conn.execute(select(vapid_keys).where(vapid_keys.c.store_id == store_id))).first()
    return None if row is None else _record(row)


async def add_vapid_key(
    conn: AsyncConnection, store_id: UUID, *, public_key: str, private_key: str
) -> VapidKeyRecord:
    """Store a key pair for a store that has none; if one was stored meanwhile (a concurrent
    first use), that one is kept and returned."""
    await conn.execute(
        pg_insert(vapid_keys)
        .values(store_id=store_id, public_key=public_key, private_key=crypto.seal_text(private_key))
        .on_conflict_do_nothing(index_elements=["store_id"])
    )
    found = await get_vapid_key(conn, store_id)
    assert found is not None
    return found


async def replace_vapid_key(
    conn: AsyncConnection, store_id: UUID, *, public_key: str, private_key: str
) -> VapidKeyRecord:
    """Make a new key pair the store's (a rotation). Its `web_push` integrations are marked
    changed (`updated_at`), so that workers rebuild their delivery targets with the new key."""
    sealed = crypto.seal_text(private_key)
    statement = pg_insert(vapid_keys).values(
        store_id=store_id, public_key=public_key, private_key=sealed
    )
    row = (
        await conn.execute(
            statement.on_conflict_do_update(
                index_elements=["store_id"],
                set_={"public_key": public_key, "private_key": sealed, "created_at": func.now()},
            ).returning(vapid_keys)
        )
    ).one()
    await conn.execute(
        update(integrations)
        .where(integrations.c.store_id == store_id, integrations.c.integration_type == WEB_PUSH)
        .values(updated_at=func.now())
    )
    return _record(row)


@dataclass(frozen=True, slots=True)
class SealedVapidKey:
    """A store's private key exactly as stored, for `hub secrets rotate`."""

    store_id: UUID
    private_key: str


async def sealed_vapid_keys(
    conn: AsyncConnection, *, after: UUID | None, limit: int
) -> list[SealedVapidKey]:
    """The next `limit` stored private keys by store id, locked for rewriting."""
    query = select(vapid_keys.c.store_id, vapid_keys.c.private_key)
    if after is not None:
        query = query.where(vapid_keys.c.store_id > after)
    rows = await conn.execute(query.order_by(vapid_keys.c.store_id).limit(limit).with_for_update())
    return [SealedVapidKey(r.store_id, r.private_key) for r in rows]


async def rewrite_vapid_key(conn: AsyncConnection, key: SealedVapidKey) -> None:
    """Store an already-sealed private key as it is."""
    await conn.execute(
        update(vapid_keys)
        .where(vapid_keys.c.store_id == key.store_id)
        .values(private_key=key.private_key)
    )
