"""VAPID (RFC 8292): the store's key pair, and the `Authorization` header that signs a push.

The header is `vapid t=<JWT>, k=<public key>`: an ES256 JWT whose `aud` is the push service's
origin (scheme, host and port of the endpoint), `exp` a time within 24 hours, and `sub` the
operator's contact (`HUB_VAPID_SUBJECT`, `mailto:` or `https:`); `k` is the public key as
browsers were given it (`applicationServerKey`). A token is made with `exp` 12 hours ahead and
reused for an hour per (key, audience), so pushes to one service cost no signature each.
"""

from __future__ import annotations

import base64
import functools
import time
from dataclasses import dataclass

from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat
from py_vapid import Vapid02

from deliverers.base import VapidKey

#: How far ahead a token's `exp` is (RFC 8292 allows at most 24 hours).
TOKEN_LIFETIME = 12 * 3600
#: How long a token is reused before a fresh one is signed.
TOKEN_REUSE = 3600
#: Tokens kept, by (public key, audience).
_MEMO = 4096


def b64url(raw: bytes) -> str:
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode()


def generate_key_pair() -> VapidKey:
    """A new P-256 key pair, both halves in base64url (the private one as its raw scalar)."""
    private = ec.generate_private_key(ec.SECP256R1())
    public = private.public_key().public_bytes(Encoding.X962, PublicFormat.UncompressedPoint)
    scalar = private.private_numbers().private_value.to_bytes(32, "big")
    return VapidKey(public_key=b64url(public), private_key=b64url(scalar))


@functools.lru_cache(maxsize=256)
def _signer(private_key: str) -> Vapid02:
    return Vapid02.from_raw(private_key.encode())


@dataclass(frozen=True, slots=True)
class _Token:
    header: str
    made: float


class Signer:
    """Makes (and reuses) the `Authorization` header of pushes; see the module docstring."""

    def __init__(self, subject: str) -> None:
        self.subject = subject
        self._tokens: dict[tuple[str, str], _Token] = {}

    def authorization(self, key: VapidKey, audience: str) -> str:
        """`vapid t=…, k=…` for a push to the service at origin `audience`."""
        now = time.time()
        known = self._tokens.get((key.public_key, audience))
        if known is not None and now - known.made < TOKEN_REUSE:
            return known.header
        claims = {"aud": audience, "exp": int(now) + TOKEN_LIFETIME, "sub": self.subject}
        header: str = _signer(key.private_key).sign(claims)["Authorization"]
        if len(self._tokens) >= _MEMO:
            self._tokens.clear()
        self._tokens[(key.public_key, audience)] = _Token(header, now)
        return header


__all__ = ["TOKEN_LIFETIME", "TOKEN_REUSE", "Signer", "b64url", "generate_key_pair"]
