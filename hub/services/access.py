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

`KnownCredentials` lets a web process skip the database for a credential it verified in the
last few seconds (`HUB_KEY_CACHE_SECONDS`); a revocation still takes effect as soon as the
revocation's notice reaches the process, milliseconds after its commit (see the class).
"""

from __future__ import annotations

import hashlib
import time
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
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


class KnownCredentials:
    """Credentials this process verified lately and the principals they stand for: a hit
    spares the request the key's lookup and a pooled connection.

    Kept by the SHA-256 of the credential (never the credential itself), for `ttl` seconds at
    most and never past an access token's expiry; at most `size` of them, the least recently
    used forgotten first. Only what the database confirmed is kept: an unknown credential asks
    the database every time. Revoking a key notifies every process
    (`hub.store.stores.KEYS_CHANNEL`), which forgets everything (`forget_all`), so a revocation
    takes effect once the notice arrives (milliseconds after the revoking commit: a request
    that reaches the process in between may still pass); while the process cannot
    hear those notices (its listening connection is down) the cache is not used at all
    (`trust(False)`), and `ttl` bounds what a lost notice could cost. `ttl` 0: no cache.
    """

    def __init__(
        self, ttl: float, *, size: int = 10_000, clock: Callable[[], float] = time.monotonic
    ) -> None:
        self.ttl = ttl
        self.size = size
        self._clock = clock
        self._known: OrderedDict[bytes, tuple[Principal, float]] = OrderedDict()
        self._trusted = False

    @property
    def trusted(self) -> bool:
        """Whether the cache is in use (revocation notices can reach this process)."""
        return self._trusted

    def __len__(self) -> int:
        return len(self._known)

    def trust(self, listening: bool) -> None:
        """Whether revocation notices can reach this process now; either way, forget all."""
        self._trusted = listening and self.ttl > 0
        self._known.clear()

    def forget_all(self) -> None:
        self._known.clear()

    def get(self, credential: str) -> Principal | None:
        if not self._trusted:
            return None
        key = _fingerprint(credential)
        found = self._known.get(key)
        if found is None:
            return None
        principal, until = found
        if self._clock() >= until:
            del self._known[key]
            return None
        self._known.move_to_end(key)
        return principal

    def remember(
        self, credential: str, principal: Principal, *, expires_at: datetime | None = None
    ) -> None:
        if not self._trusted:
            return
        lifetime = self.ttl
        if expires_at is not None:
            lifetime = min(lifetime, (expires_at - datetime.now(UTC)).total_seconds())
        if lifetime <= 0:
            return
        key = _fingerprint(credential)
        self._known[key] = (principal, self._clock() + lifetime)
        self._known.move_to_end(key)
        while len(self._known) > self.size:
            self._known.popitem(last=False)


def _fingerprint(credential: str) -> bytes:
    return hashlib.sha256(credential.encode()).digest()


async def authenticate(
    conn: AsyncConnection,
    token: str,
    permission: Permission,
    *,
    store: str | None = None,
    admit: Admit | None = None,
    known: KnownCredentials | None = None,
) -> Principal:
    """The principal `token` stands for, acting on `store` (default: the key's own).

    The key's lookup is one prepared statement on the driver connection, in autocommit unless
    `conn` is in a transaction (then it joins it): no BEGIN or ROLLBACK round trips, and none of
    SQLAlchemy's per-statement work, on every request; none at all when `known` has it (an
    edge that holds no connection yet asks `known` first and `judge`s the principal itself).
    """
    principal = (known.get(token) if known is not None else None) or await identify(
        conn, token, known=known
    )
    judge(principal, permission, admit)
    if store is None:
        return principal
    return await on_store(conn, principal, store)


def judge(principal: Principal, permission: Permission, admit: Admit | None = None) -> None:
    """The checks of an identified principal, in `authenticate`'s order: `admit`, then the
    role's rights (`PermissionDenied`)."""
    if admit is not None:
        admit(principal)
    if not principal.can(permission):
        raise PermissionDenied(
            f"This key's role ({principal.role}) does not allow this action", role=principal.role
        )


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


async def identify(
    conn: AsyncConnection, token: str, *, known: KnownCredentials | None = None
) -> Principal:
    """The principal of the key that `token` is, or that the access token `token` was issued
    for (its store, its role); else `Unauthenticated`. Asks the database, and tells `known`."""
    expires_at: datetime | None = None
    prefix = key_prefix(token)
    if prefix is not None:
        found = await stores.find_active_key(await driver_of(conn), prefix)
    else:
        prefix = token_prefix(token)
        if prefix is None:
            raise Unauthenticated()
        found_token = await stores.find_active_token(await driver_of(conn), prefix)
        found = None if found_token is None else found_token[:2]
        expires_at = None if found_token is None else found_token[2]
    if found is None or not key_matches(token, found[1]):
        raise Unauthenticated()
    key = found[0]
    principal = Principal(key.id, key.role, key.store_id, key.store_name)
    if known is not None:
        known.remember(token, principal, expires_at=expires_at)
    return principal


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
