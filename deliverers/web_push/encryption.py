"""The aes128gcm body of a push message for one subscription (RFC 8291 over RFC 8188).

A fresh ECDH key pair per message; the shared secret with the browser's `p256dh` key, mixed
with its `auth` secret, keys AES-128-GCM. The body is one record: a 86-byte header (salt, record
size, the message's public key) and the ciphertext with its tag, which is why the plaintext may
be at most 3993 bytes for the 4096 bytes every push service accepts (`message.MAX_PLAINTEXT`).
"""

from __future__ import annotations

import base64

import http_ece
from cryptography.hazmat.primitives.asymmetric import ec

from deliverers.config import PushKeys

#: The record size the body declares: one record holds the whole message.
RECORD_SIZE = 4096


def _decode(value: str) -> bytes:
    value = value.rstrip("=")
    return base64.urlsafe_b64decode(value + "=" * (-len(value) % 4))


def encrypt(plaintext: bytes, keys: PushKeys) -> bytes:
    """`plaintext` encrypted for the browser holding `keys` (aes128gcm)."""
    body: bytes = http_ece.encrypt(
        plaintext,
        private_key=ec.generate_private_key(ec.SECP256R1()),
        dh=_decode(keys.p256dh),
        auth_secret=_decode(keys.auth),
        version="aes128gcm",
        rs=RECORD_SIZE,
    )
    return body


__all__ = ["RECORD_SIZE", "encrypt"]
