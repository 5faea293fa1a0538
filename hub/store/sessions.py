"""Console sessions: a row per signed-in browser, keyed by the SHA-256 of its session id.

The id itself lives only in the browser's cookie; the table holds its digest, the key that
signed in (its id, role and store), the session's CSRF token and its flash messages. Every API
process reads the same rows, so a session works on any of them and outlives restarts. Nothing
here runs per API request or per attempt: the expression language (`hub.store`'s SQL rule 1).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any
from uuid import UUID

from sqlalchemy import any_, delete, func, insert, select, update
from sqlalchemy.ext.asyncio import AsyncConnection

from hub.store.models import api_keys, console_sessions, stores


@dataclass(frozen=True, slots=True)
class SessionRecord:
    """A live session with what the console needs of its key and store."""

    key_id: UUID
    prefix: str
    role: str
    store_id: UUID
    store_name: str
    csrf: str
    flash: tuple[tuple[str, str], ...]
    created_at: datetime
    expires_at: datetime
    last_seen_at: datetime


async def insert_session(
    conn: AsyncConnection,
    *,
    id_hash: bytes,
    key_id: UUID,
    store_id: UUID,
    role: str,
    csrf: str,
    expires_at: datetime,
    cap: int,
) -> int:
    """Store a new session; then end the key's oldest sessions beyond the newest `cap`.
    Returns how many were ended. In the caller's transaction."""
    await conn.execute(
        insert(console_sessions).values(
            id_hash=id_hash,
            key_id=key_id,
            store_id=store_id,
            role=role,
            csrf=csrf,
            expires_at=expires_at,
        )
    )
    # Through ix_console_sessions_key_created: the key's sessions, newest first.
    beyond = (
        select(console_sessions.c.id_hash)
        .where(console_sessions.c.key_id == key_id)
        .order_by(console_sessions.c.created_at.desc(), console_sessions.c.id_hash.desc())
        .offset(cap)
        .scalar_subquery()
    )
    result = await conn.execute(
        delete(console_sessions).where(console_sessions.c.id_hash == any_(func.array(beyond)))
    )
    return result.rowcount


async def find_session(conn: AsyncConnection, id_hash: bytes) -> SessionRecord | None:
    """The unexpired session with this digest (whether its key is still active is the caller's
    check: `hub.services.access.still_active`)."""
    row = (
        await conn.execute(
            select(
                console_sessions,
                api_keys.c.prefix,
                stores.c.name.label("store_name"),
            )
            .join(api_keys, api_keys.c.id == console_sessions.c.key_id)
            .join(stores, stores.c.id == console_sessions.c.store_id)
            .where(
                console_sessions.c.id_hash == id_hash,
                console_sessions.c.expires_at > func.now(),
            )
        )
    ).first()
    if row is None:
        return None
    return SessionRecord(
        key_id=row.key_id,
        prefix=row.prefix,
        role=row.role,
        store_id=row.store_id,
        store_name=row.store_name,
        csrf=row.csrf,
        flash=tuple((str(kind), str(text)) for kind, text in row.flash),
        created_at=row.created_at,
        expires_at=row.expires_at,
        last_seen_at=row.last_seen_at,
    )


async def save_session(
    conn: AsyncConnection,
    id_hash: bytes,
    *,
    flash: list[tuple[str, str]] | None = None,
    seen: bool = False,
) -> None:
    """Replace the session's flash messages and/or mark it seen now."""
    values: dict[str, Any] = {}
    if flash is not None:
        values["flash"] = [list(item) for item in flash]
    if seen:
        values["last_seen_at"] = func.now()
    if values:
        await conn.execute(
            update(console_sessions).where(console_sessions.c.id_hash == id_hash).values(values)
        )


async def set_session_store(conn: AsyncConnection, id_hash: bytes, store_id: UUID) -> None:
    """Make the session act on another store (an admin key's switch, checked by the caller)."""
    await conn.execute(
        update(console_sessions)
        .where(console_sessions.c.id_hash == id_hash)
        .values(store_id=store_id)
    )


async def delete_session(conn: AsyncConnection, id_hash: bytes) -> None:
    await conn.execute(delete(console_sessions).where(console_sessions.c.id_hash == id_hash))


async def delete_key_sessions(conn: AsyncConnection, key_id: UUID) -> int:
    """End every session of a key (it was revoked)."""
    result = await conn.execute(delete(console_sessions).where(console_sessions.c.key_id == key_id))
    return result.rowcount


async def count_key_sessions(conn: AsyncConnection, key_id: UUID) -> int:
    return (
        await conn.execute(select(func.count()).where(console_sessions.c.key_id == key_id))
    ).scalar_one()
