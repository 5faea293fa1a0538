"""A loopback push service for the Web Push tests, served over TLS on 127.0.0.1.

It plays both ends a push service sees: the browser, whose subscription it makes (a P-256 key
pair and an authentication secret of its own), and the service, which checks every push as a
real one would, without using the libraries the hub sends with:

* the VAPID header (RFC 8292): `vapid t=<JWT>, k=<key>`, the JWT signed ES256 by `k`, `aud` the
  endpoint's origin, `exp` in the future and within 24 hours, `sub` the expected contact;
* the body (RFC 8291, aes128gcm): decrypted with the browser's private key and auth secret, by
  hand from the RFC, one record of at most 4096 bytes;

and answers what the test tells it to (`answer`): 201 by default, 410, 429 with `Retry-After`.
A push that fails a check is answered 400 and kept in `refused` with the reason.
"""

from __future__ import annotations

import base64
import contextlib
import json
import os
import ssl
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from aiohttp import web
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.asymmetric.utils import encode_dss_signature
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.kdf.hkdf import HKDF
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat

from tests.tls import self_signed_certificate


def b64url(raw: bytes) -> str:
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode()


def unb64url(text: str) -> bytes:
    text = text.rstrip("=")
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


class Refused(Exception):
    """A push that a real push service would refuse."""


@dataclass(frozen=True)
class Push:
    """One push the service accepted: its headers, JWT claims and decrypted JSON."""

    path: str
    headers: dict[str, str]
    claims: dict[str, Any]
    plaintext: bytes
    body_size: int

    @property
    def document(self) -> Any:
        return json.loads(self.plaintext)


@dataclass
class Browser:
    """The browser's end of a subscription: its ECDH key pair and authentication secret."""

    private_key: ec.EllipticCurvePrivateKey = field(
        default_factory=lambda: ec.generate_private_key(ec.SECP256R1())
    )
    auth: bytes = field(default_factory=lambda: os.urandom(16))

    @property
    def p256dh(self) -> bytes:
        return self.private_key.public_key().public_bytes(
            Encoding.X962, PublicFormat.UncompressedPoint
        )

    def decrypt(self, body: bytes) -> bytes:
        """RFC 8291 §3.4 and RFC 8188 §2, one record."""
        salt, rs, idlen = body[:16], int.from_bytes(body[16:20], "big"), body[20]
        server_key, ciphertext = body[21 : 21 + idlen], body[21 + idlen :]
        if idlen != 65 or len(ciphertext) > rs or rs != 4096:
            raise Refused(f"bad aes128gcm header (idlen {idlen}, rs {rs}, {len(ciphertext)})")
        shared = self.private_key.exchange(
            ec.ECDH(), ec.EllipticCurvePublicKey.from_encoded_point(ec.SECP256R1(), server_key)
        )
        info = b"WebPush: info\x00" + self.p256dh + server_key
        ikm = HKDF(hashes.SHA256(), 32, salt=self.auth, info=info).derive(shared)
        cek = HKDF(hashes.SHA256(), 16, salt=salt, info=b"Content-Encoding: aes128gcm\x00")
        nonce = HKDF(hashes.SHA256(), 12, salt=salt, info=b"Content-Encoding: nonce\x00")
        record = AESGCM(cek.derive(ikm)).decrypt(nonce.derive(ikm), ciphertext, None)
        padded = record.rstrip(b"\x00")
        if not padded.endswith(b"\x02"):
            raise Refused("the last record does not end with the 0x02 delimiter")
        return padded[:-1]


@dataclass
class PushService:
    """See the module docstring. `vapid_key` (base64url) is the key pushes must be signed with;
    None accepts any key (and the test checks `pushes[i].headers` itself)."""

    subject: str
    vapid_key: str | None = None
    answer: tuple[int, dict[str, str]] = (201, {})
    browser: Browser = field(default_factory=Browser)
    pushes: list[Push] = field(default_factory=list)
    refused: list[str] = field(default_factory=list)
    origin: str = ""

    def subscription(self, path: str = "/push/sub-1", **options: Any) -> dict[str, Any]:
        """The `PushSubscription.toJSON()` a browser would give, plus integration options."""
        return {
            "endpoint": f"{self.origin}{path}",
            "expirationTime": None,
            "keys": {"p256dh": b64url(self.browser.p256dh), "auth": b64url(self.browser.auth)},
            **options,
        }

    async def handle(self, request: web.Request) -> web.Response:
        body = await request.read()
        try:
            claims = self._check_vapid(request.headers.get("Authorization", ""))
            if request.headers.get("Content-Encoding") != "aes128gcm":
                raise Refused("Content-Encoding is not aes128gcm")
            if "TTL" not in request.headers:
                raise Refused("no TTL header")
            if len(body) > 4096:
                raise Refused(f"body of {len(body)} bytes")
            plaintext = self.browser.decrypt(body)
        except (Refused, ValueError, InvalidSignature) as error:
            self.refused.append(f"{type(error).__name__}: {error}")
            return web.Response(status=400, text=str(error))
        self.pushes.append(Push(request.path, dict(request.headers), claims, plaintext, len(body)))
        status, headers = self.answer
        return web.Response(status=status, headers=headers)

    def _check_vapid(self, header: str) -> dict[str, Any]:
        scheme, _, rest = header.partition(" ")
        if scheme.lower() != "vapid":
            raise Refused(f"Authorization scheme {scheme!r}")
        params = dict(part.strip().split("=", 1) for part in rest.split(","))
        token, key = params["t"], params["k"]
        if self.vapid_key is not None and key != self.vapid_key:
            raise Refused("signed with another key than the subscription's")
        head, payload, signature = token.split(".")
        if json.loads(unb64url(head)) != {"typ": "JWT", "alg": "ES256"}:
            raise Refused(f"JWT header {unb64url(head)!r}")
        raw = unb64url(signature)
        public = ec.EllipticCurvePublicKey.from_encoded_point(ec.SECP256R1(), unb64url(key))
        der = encode_dss_signature(int.from_bytes(raw[:32], "big"), int.from_bytes(raw[32:], "big"))
        public.verify(der, f"{head}.{payload}".encode(), ec.ECDSA(hashes.SHA256()))
        claims: dict[str, Any] = json.loads(unb64url(payload))
        if claims.get("aud") != self.origin:
            raise Refused(f"aud {claims.get('aud')!r} is not {self.origin!r}")
        now = time.time()
        if not now < claims.get("exp", 0) <= now + 24 * 3600:
            raise Refused(f"exp {claims.get('exp')} is not within 24 h from now")
        if claims.get("sub") != self.subject:
            raise Refused(f"sub {claims.get('sub')!r}")
        return claims


@contextlib.asynccontextmanager
async def push_service(
    directory: Path, *, subject: str = "mailto:ops@hub.test"
) -> AsyncIterator[tuple[PushService, ssl.SSLContext]]:
    """A `PushService` on https://127.0.0.1:<port>, and an SSL context that trusts it."""
    cert, key = self_signed_certificate(directory)
    server_context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    server_context.load_cert_chain(cert, key)
    client_context = ssl.create_default_context(cafile=str(cert))
    service = PushService(subject=subject)
    app = web.Application()
    app.router.add_post("/push/{id}", service.handle)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0, ssl_context=server_context)
    await site.start()
    service.origin = f"https://127.0.0.1:{runner.addresses[0][1]}"
    try:
        yield service, client_context
    finally:
        await runner.cleanup()
