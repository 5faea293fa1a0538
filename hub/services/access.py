"""Who is calling: the one key check behind every edge (the API, the AMQP ingest, the console's
sign-in and the CLI).

`authenticate` turns a bearer token into a `Principal` or refuses with a domain error, in this
order: `Unauthenticated` for a missing, malformed, unknown or revoked key (the digest compared in
constant time); then the caller's `admit` hook (the API's per-key rate limit, which must answer
before the key's rights are judged, so that a throttled key learns nothing more); then
`PermissionDenied` when the key's role lacks the permission, or a non-admin key names another
store; `UnknownStore` when an admin key names a store that does not exist.
"""

from __future__ import annotations

from collections.abc import Callable
from uuid import UUID

from sqlalchemy.ext.asyncio import AsyncConnection

from hub.auth import Permission, Principal, key_matches, key_prefix
from hub.errors import PermissionDenied, Unauthenticated, UnknownStore
from hub.store import stores
from hub.store.engine import driver_of

Admit = Callable[[Principal], None]
"""Called with the identified key before its rights are judged; raises to refuse."""


async def authenticate(
    conn: AsyncConnection,
    token: str,
    permission: Permission,
    *,
    store: str | None = None,
    admit: Admit | None = None,
) -> Principal:
    """The principal `token` stands for, acting on `store` (default: the key's own).

    The key's lookup is one prepared statement on the driver connection, in autocommit unless
    `conn` is in a transaction (then it joins it): no BEGIN or ROLLBACK round trips, and none of
    SQLAlchemy's per-statement work, on every request.
    """
    principal = await identify(conn, token)
    if admit is not None:
        admit(principal)
    if not principal.can(permission):
        raise PermissionDenied(
            f"This key's role ({principal.role}) does not allow this action", role=principal.role
        )
    if store is None or store == principal.store_name:
        return principal
    if not principal.can(Permission.ANY_STORE):
        raise PermissionDenied(
            "Only admin keys may act on another store", role=principal.role, other_store=True
        )
    found = await stores.get_store_by_name(conn, store)
    if found is None:
        raise UnknownStore(store)
    return Principal(principal.key_id, principal.role, found.id, found.name)


async def identify(conn: AsyncConnection, token: str) -> Principal:
    """The key's own principal (its store, its role), or `Unauthenticated`."""
    prefix = key_prefix(token)
    if prefix is None:
        raise Unauthenticated()
    found = await stores.find_active_key(await driver_of(conn), prefix)
    if found is None or not key_matches(token, found[1]):
        raise Unauthenticated()
    key = found[0]
    return Principal(key.id, key.role, key.store_id, key.store_name)


async def still_active(conn: AsyncConnection, key_id: UUID, prefix: str) -> bool:
    """Is the key that signed a console session in still active (not revoked)?"""
    found = await stores.find_active_key(await driver_of(conn), prefix)
    return found is not None and found[0].id == key_id
