"""API keys and roles.

A key reads ``hub_<prefix>_<secret>``: the 12-hex-digit prefix finds the key's row (and makes a
leaked key recognisable), the whole key's SHA-256 is what is stored, and the check compares
digests in constant time. Keys carry 256 bits of randomness, so a fast hash is the right one.
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


def generate_key() -> NewKey:
    """A fresh key; only its digest is ever stored."""
    prefix = secrets.token_hex(6)
    key = f"hub_{prefix}_{secrets.token_urlsafe(32)}"
    return NewKey(key=key, prefix=prefix, digest=digest(key))


def key_prefix(key: str) -> str | None:
    """The prefix of a well-formed key, else None."""
    match = KEY_RE.match(key)
    return None if match is None else match.group(1)


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
