"""API keys, access tokens and roles.

A key reads ``hub_<prefix>_<secret>``: the 12-hex-digit prefix finds the key's row (and makes a
leaked key recognisable), the whole key's SHA-256 is what is stored, and the check compares
digests in constant time. Keys carry 256 bits of randomness, so a fast hash is the right one.
A key's *client id* is its first 16 characters, ``hub_<prefix>``: what an Elastic Path client
sends as `client_id` (with the key as `client_secret`) to get an access token.

An access token (`POST /oauth/access_token`) reads ``hubt_<prefix>_<secret>`` and is built and
stored the same way; it stands for its key (store and role) until it expires or the key is
revoked.
"""

from __future__ import annotations

import hashlib
import hmac
import re
import secrets
from dataclasses import dataclass
from enum import StrEnum
from uuid import UUID

KEY_RE = re.compile(r"^hub_([0-9a-f]{12})_([A-Za-z0-9_-]{43})$")
TOKEN_RE = re.compile(r"^hubt_([0-9a-f]{12})_([A-Za-z0-9_-]{43})$")
CLIENT_ID_RE = re.compile(r"^hub_([0-9a-f]{12})$")


class Permission(StrEnum):
    READ = "read"
    """See integrations, jobs, logs and events."""
    WRITE = "write"
    """Change integrations, read signing secrets, retry jobs."""
    PUBLISH = "publish"
    """Publish events (and read back the events published)."""
    READ_EVENTS = "read_events"
    """Read events back (publishers poll what they published)."""
    ANY_STORE = "any_store"
    """Act on any store, named by the `X-Hub-Store` header."""
    PUSH_KEY = "push_key"
    """Read the store's VAPID public key (public by nature: every role may)."""
    DEPLOYMENT = "deployment"
    """See the deployment as a whole: its processes and its queue (`GET /v2/status`)."""


ROLE_PERMISSIONS: dict[str, frozenset[Permission]] = {
    "view": frozenset({Permission.READ, Permission.READ_EVENTS, Permission.PUSH_KEY}),
    "manage": frozenset(
        {Permission.READ, Permission.WRITE, Permission.READ_EVENTS, Permission.PUSH_KEY}
    ),
    "publish": frozenset({Permission.PUBLISH, Permission.READ_EVENTS, Permission.PUSH_KEY}),
    "admin": frozenset(Permission),
}


@dataclass(frozen=True, slots=True)
class NewKey:
    key: str
    prefix: str
    digest: bytes


def digest(key: str) -> bytes:
    return hashlib.sha256(key.encode()).digest()


def _generate(kind: str) -> NewKey:
    prefix = secrets.token_hex(6)
    key = f"{kind}_{prefix}_{secrets.token_urlsafe(32)}"
    return NewKey(key=key, prefix=prefix, digest=digest(key))


def generate_key() -> NewKey:
    """A fresh API key; only its digest is ever stored."""
    return _generate("hub")


def generate_token() -> NewKey:
    """A fresh access token; only its digest is ever stored."""
    return _generate("hubt")


def key_prefix(key: str) -> str | None:
    """The prefix of a well-formed key, else None."""
    match = KEY_RE.match(key)
    return None if match is None else match.group(1)


def token_prefix(token: str) -> str | None:
    """The prefix of a well-formed access token, else None."""
    match = TOKEN_RE.match(token)
    return None if match is None else match.group(1)


def client_id_prefix(client_id: str) -> str | None:
    """The key prefix a client id (`hub_<prefix>`) names, else None."""
    match = CLIENT_ID_RE.match(client_id)
    return None if match is None else match.group(1)


def client_id(prefix: str) -> str:
    """The client id of the key with this prefix: the key's first 16 characters."""
    return f"hub_{prefix}"


def key_matches(key: str, stored_digest: bytes) -> bool:
    return hmac.compare_digest(digest(key), stored_digest)


@dataclass(frozen=True, slots=True)
class Principal:
    """Who is calling: the key, its role, and the store the request acts on."""

    key_id: UUID
    role: str
    store_id: UUID
    store_name: str

    def can(self, permission: Permission) -> bool:
        return permission in ROLE_PERMISSIONS[self.role]
