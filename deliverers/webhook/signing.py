"""Standard Webhooks signing: every webhook request is signed, besides EP's `X-MOLTIN-*` headers.

The headers are `webhook-id` (the job id, so the same on every attempt), `webhook-timestamp`
(unix seconds) and `webhook-signature`, one `v1,<base64 HMAC-SHA256>` entry per signing secret,
separated by spaces, over `f"{webhook-id}.{webhook-timestamp}.{body}"`. More than one secret
signs during a rotation's grace period, so that receivers may switch at their own pace.
"""

from __future__ import annotations

import base64
import binascii
import functools
import hmac
from collections.abc import Sequence

_SECRET_PREFIX = "whsec_"  # noqa: S105 - a prefix, not a secret


def signature_header(secrets: Sequence[str], *, msg_id: str, timestamp: int, body: bytes) -> str:
    """The `webhook-signature` value: one signature per secret, in order, separated by spaces.

    Raises `ValueError` (naming the secret by position) if a secret is not a valid `whsec_` one.
    """
    signed = _signed_content(msg_id, timestamp, body)
    return " ".join(
        _signature(_signing_key(secret, position), signed)
        for position, secret in enumerate(secrets, start=1)
    )


def sign(secret: str, *, msg_id: str, timestamp: int, body: bytes, position: int = 1) -> str:
    """One Standard Webhooks `v1,<base64>` signature: HMAC-SHA256 of `{msg_id}.{timestamp}.{body}`.

    Raises `ValueError` (naming the secret by `position`, never by value) if `secret` is not
    a base64 key, with or without the `whsec_` prefix.
    """
    return _signature(_signing_key(secret, position), _signed_content(msg_id, timestamp, body))


def _signed_content(msg_id: str, timestamp: int, body: bytes) -> bytes:
    return b"%s.%d.%s" % (msg_id.encode(), timestamp, body)


def _signature(key: bytes, signed: bytes) -> str:
    return "v1," + base64.b64encode(hmac.digest(key, signed, "sha256")).decode()


def _signing_key(secret: str, position: int) -> bytes:
    key = _decode_secret(secret)
    if not key:
        raise ValueError(f"signing secret #{position} is not a valid whsec_ secret")
    return key


@functools.lru_cache(maxsize=4096)
def _decode_secret(secret: str) -> bytes:
    """The HMAC key of a `whsec_` secret (empty when it is none); decoded once per secret, as
    every delivery of an integration signs with the same ones."""
    encoded = secret.removeprefix(_SECRET_PREFIX)
    try:
        # The `==` accepts unpadded keys, as the reference library does.
        return base64.b64decode(encoded + "==")
    except binascii.Error:
        return b""


__all__ = ["sign", "signature_header"]
