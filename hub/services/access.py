"""Who is calling: the one key check behind every edge (the API, the AMQP ingest, the console's
sign-in and the CLI), and the access tokens that stand for a key.

`authenticate` turns a bearer credential, an API key (`hub_…`) or an access token (`hubt_…`),
into a `Principal` or refuses with a domain error, in this order: `Unauthenticated` for a
missing, malformed, unknown or revoked key, or an unknown or expired token or one whose key is
revoked (the digest compared in constant time); then the caller's `admit` hook (the API's
per-key rate limit, which must answer before the key's rights are judged, so that a throttled
key learns nothing more; a token counts against its key); then `PermissionDenied` when the
key's role lacks the permission, or a non-admin key names another store; `UnknownStore` when an
admin key names a store that does not exist.

`issue_token` is Elastic Path's `client_credentials` grant: the key's client id (its first 16
characters) and the key itself give a token of the same store and role, valid for the
configured time (`HUB_TOKEN_TTL`). A token is a row of its own, not a signed self-contained
value: revoking the key ends its tokens at the very next request, and no signing secret has to
be shared by every hub process.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta
from uuid import UUID

from sqlalchemy.ext.asyncio import AsyncConnection

from hub.auth import (
    Permission,
    Principal,
    client_id_prefix,
    generate_token,
    key_matches,
    key_prefix,
    token_prefix,
)
from hub.errors import (
    PermissionDenied,
    Unauthenticated,
    UnknownStore,
    UnsupportedGrant,
    ValidationFailed,
)
from hub.services.inputs import TokenRequest
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
    if store is None:
        return principal
    return await on_store(conn, principal, store)


async def on_store(conn: AsyncConnection, principal: Principal, store: str) -> Principal:
    """`principal` acting on the store named `store`: itself for its own store; for another,
    `PermissionDenied` unless its role may act on any store (admin), `UnknownStore` when no
    store has that name. The API's `X-Hub-Store` and the console's store switch both ask here."""
    if store == principal.store_name:
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
    """The principal of the key that `token` is, or that the access token `token` was issued
    for (its store, its role); else `Unauthenticated`."""
    prefix = key_prefix(token)
    if prefix is not None:
        found = await stores.find_active_key(await driver_of(conn), prefix)
    else:
        prefix = token_prefix(token)
        if prefix is None:
            raise Unauthenticated()
        found = await stores.find_active_token(await driver_of(conn), prefix)
    if found is None or not key_matches(token, found[1]):
        raise Unauthenticated()
    key = found[0]
    return Principal(key.id, key.role, key.store_id, key.store_name)


GRANT_TYPES = ("client_credentials",)
"""The grants `issue_token` serves."""
BAD_CLIENT = "The client_id and client_secret do not match an active API key"


@dataclass(frozen=True, slots=True)
class IssuedToken:
    """A new access token (shown once; only its digest is stored) and what it stands for."""

    token: str
    expires_at: datetime
    principal: Principal


async def issue_token(
    conn: AsyncConnection, request: TokenRequest, *, ttl: timedelta, admit: Admit | None = None
) -> IssuedToken:
    """A token for the key named by `request` (`client_credentials`), valid for `ttl`.

    Refuses with `UnsupportedGrant` for any other grant: `implicit` (a client id alone) would
    have to hand out a token for a key without its secret, and the hub gives none; with
    `Unauthenticated` when the client id is not a key's, the secret is not that key, or the key
    is revoked. `admit` (the key's rate limit) runs once the key is identified. `conn` must be
    in a transaction, which the token's row joins.
    """
    if request.grant_type == "implicit":
        raise UnsupportedGrant(
            "grant_type implicit is not supported: the hub issues tokens only for an API key, "
            "with grant_type=client_credentials, client_id (the key's first 16 characters) "
            "and client_secret (the key)",
            source="grant_type",
        )
    if request.grant_type not in GRANT_TYPES:
        raise UnsupportedGrant(
            f"grant_type {request.grant_type!r} is not supported; use client_credentials",
            source="grant_type",
        )
    if request.client_secret is None:
        raise ValidationFailed(
            [("client_secret is required for grant_type client_credentials", "client_secret")]
        )
    secret = request.client_secret
    prefix = client_id_prefix(request.client_id)
    if prefix is None or key_prefix(secret) != prefix:
        raise Unauthenticated(BAD_CLIENT)
    try:
        principal = await identify(conn, secret)
    except Unauthenticated:
        raise Unauthenticated(BAD_CLIENT) from None
    if admit is not None:
        admit(principal)
    new = generate_token()
    expires_at = await stores.insert_token(
        conn, key_id=principal.key_id, prefix=new.prefix, token_hash=new.digest, ttl=ttl
    )
    return IssuedToken(new.key, expires_at, principal)


async def still_active(conn: AsyncConnection, key_id: UUID, prefix: str) -> bool:
    """Is the key that signed a console session in still active (not revoked)?"""
    found = await stores.find_active_key(await driver_of(conn), prefix)
    return found is not None and found[0].id == key_id
