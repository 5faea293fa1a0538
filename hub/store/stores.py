"""Stores (the tenants), their API keys, and the keys' access tokens.

The key check (`find_active_key`, `find_active_token`) runs for every request and every
consumed message: each is one prepared statement on the driver connection (`hub.store`'s SQL
rule). The web processes remember the credentials they verified lately
(`hub.services.access.KnownCredentials`); revoking a key notifies `KEYS_CHANNEL` at its commit,
so that every process forgets them at once.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any
from uuid import UUID

import asyncpg
from sqlalchemy import func, insert, select, update
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.ext.asyncio import AsyncConnection

from hub.ids import uuid7
from hub.store.models import access_tokens, api_keys, stores
from hub.store.records import ApiKeyRecord, StoreRecord

#: The channel notified when a key is revoked.
KEYS_CHANNEL = "hub_keys"


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


async def list_stores(
    conn: AsyncConnection, *, name_contains: str = "", limit: int = 100
) -> list[StoreRecord]:
    """Stores by name (those whose name contains `name_contains`, case-insensitively), at most
    `limit` of them: what an admin picks from."""
    query = select(stores).order_by(stores.c.name).limit(limit)
    if name_contains:
        query = query.where(stores.c.name.icontains(name_contains, autoescape=True))
    rows = await conn.execute(query)
    return [StoreRecord(id=r.id, name=r.name, created_at=r.created_at) for r in rows]


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


async def insert_token(
    conn: AsyncConnection, *, key_id: UUID, prefix: str, token_hash: bytes, ttl: timedelta
) -> datetime:
    """Store a new access token of the key, valid for `ttl` from the database's clock (the one
    the lookup compares with); its expiry."""
    expires_at: datetime = (
        await conn.execute(
            insert(access_tokens)
            .values(
                id=uuid7(),
                key_id=key_id,
                prefix=prefix,
                token_hash=token_hash,
                expires_at=func.now() + ttl,
            )
            .returning(access_tokens.c.expires_at)
        )
    ).scalar_one()
    return expires_at


async def find_active_token(
    db: asyncpg.Connection, prefix: str
) -> tuple[ApiKeyRecord, bytes, datetime] | None:
    """The key of the unexpired token with this prefix, if that key is not revoked, the
    token's stored hash and its expiry (on the driver connection, like `find_active_key`)."""
    row = await db.fetchrow(_FIND_ACCESS, prefix)
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
    return key, bytes(row["token_hash"]), row["expires_at"]


_FIND_ACCESS = """
    SELECT k.id, k.store_id, s.name AS store_name, k.role, k.prefix, k.created_at,
           k.revoked_at, t.token_hash, t.expires_at
    FROM access_tokens AS t
    JOIN api_keys AS k ON k.id = t.key_id
    JOIN stores AS s ON s.id = k.store_id
    WHERE t.prefix = $1 AND t.expires_at > now() AND k.revoked_at IS NULL
"""


async def list_keys(conn: AsyncConnection) -> list[ApiKeyRecord]:
    rows = await conn.execute(
        select(*_KEY_COLUMNS)
        .join(stores, stores.c.id == api_keys.c.store_id)
        .order_by(stores.c.name, api_keys.c.created_at)
    )
    return [_key(row) for row in rows]


async def revoke_key(conn: AsyncConnection, key_id: UUID) -> bool:
    """Revoke the key (False if there is no active key `key_id`), and notify `KEYS_CHANNEL`
    at the commit of `conn`'s transaction."""
    result = await conn.execute(
        update(api_keys)
        .where(api_keys.c.id == key_id, api_keys.c.revoked_at.is_(None))
        .values(revoked_at=func.now())
    )
    if result.rowcount == 0:
        return False
    await conn.execute(select(func.pg_notify(KEYS_CHANNEL, "")))
    return True
