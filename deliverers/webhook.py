"""The webhook deliverer: POST each job, as EP's webhook body, to the integration's URL.

One shared `aiohttp.ClientSession` (a keep-alive connection pool) is created by `open` and
closed by `aclose`. Each attempt is one POST with a total timeout, redirects not followed, and
the outcome is always a `DeliveryResult`: a 2xx answer is a success, everything else (another
status, a timeout, a refused connection, a DNS or TLS failure) is a failure with a specific,
human-readable `error_detail`.

**SSRF guard.** The session's connector resolves host names through `hub.ssrf`'s
`GuardedResolver`, so the connection goes to vetted addresses only (no second lookup to rebind),
and a literal address in the URL is judged before the request. A refused target is a failed
attempt whose `error_detail` says why.

Besides EP's `X-MOLTIN-*` headers every request is signed the Standard Webhooks way:
`webhook-id` (the job id, so the same on every attempt), `webhook-timestamp` (unix seconds) and
`webhook-signature`, one `v1,<base64 HMAC-SHA256>` entry per signing secret, separated by
spaces, over `f"{webhook-id}.{webhook-timestamp}.{body}"`.
"""

from __future__ import annotations

import base64
import binascii
import codecs
import errno
import functools
import hmac
import ssl
import time
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from email.utils import parsedate_to_datetime
from typing import Any, ClassVar

import aiohttp
import orjson
import structlog
from aiohttp.abc import AbstractResolver
from yarl import URL

from deliverers.base import BODY_LIMIT, Delivery, DeliveryResult, truncate_body
from deliverers.config import WebhookConfig
from hub.errors import TargetRefused
from hub.ssrf import Network, SsrfGuard, parse_ip

logger = structlog.get_logger(__name__)

#: EP's `error_detail` for any answer outside 2xx (3xx included: redirects are not followed).
NON_2XX_DETAIL = "Received a status code outside of 2xx range - treating webhook as a fail"

#: The most bytes read from a response: enough for `BODY_LIMIT` characters of any UTF-8 text,
#: and no more, so a huge (or endless) answer costs nothing.
_MAX_BODY_BYTES = BODY_LIMIT * 4

_SECRET_PREFIX = "whsec_"  # noqa: S105 - a prefix, not a secret
_REASON_LIMIT = 200
#: Webhook URLs whose parsed and judged form a deliverer keeps (`WebhookDeliverer._endpoint`).
_ENDPOINT_MEMO = 4096


class WebhookDeliverer:
    """Delivers jobs to `webhook` integrations over HTTP(S); see the module docstring.

    `timeout` bounds a whole attempt (connecting, sending, and reading the answer). The session
    keeps no cookies: one pool serves every store's endpoints, and nothing one endpoint sets may
    reach another. `allowed_networks` are the non-public networks deliveries may reach
    (`HUB_ALLOWED_NETWORKS`; none by default); `resolver` replaces the system's lookups under the
    guard (tests).
    """

    integration_type: ClassVar[str] = "webhook"

    def __init__(
        self,
        *,
        timeout: float,
        user_agent: str = "hub-webhooks/0.1",
        limit_per_host: int = 100,
        ttl_dns_cache: int = 60,
        allowed_networks: Sequence[Network] = (),
        resolver: AbstractResolver | None = None,
    ) -> None:
        self._guard = SsrfGuard(tuple(allowed_networks))
        self._resolver = resolver
        self._timeout = timeout
        self._user_agent = user_agent
        self._limit_per_host = limit_per_host
        self._ttl_dns_cache = ttl_dns_cache
        self._session: aiohttp.ClientSession | None = None
        self._endpoints: dict[str, _Endpoint] = {}

    async def open(self) -> None:
        """Create the shared session and its connection pool."""
        if self._session is not None:
            return
        connector = aiohttp.TCPConnector(
            # The dispatcher's concurrency bounds the total; only one host is limited, so that a
            # single endpoint cannot hold every connection.
            limit=0,
            limit_per_host=self._limit_per_host,
            ttl_dns_cache=self._ttl_dns_cache,
            resolver=self._guard.resolver(self._resolver),
        )
        self._session = aiohttp.ClientSession(
            connector=connector,
            timeout=aiohttp.ClientTimeout(total=self._timeout),
            cookie_jar=aiohttp.DummyCookieJar(),
            raise_for_status=False,
        )

    async def aclose(self) -> None:
        """Close the session; safe to call more than once."""
        session, self._session = self._session, None
        if session is not None:
            await session.close()

    async def deliver(self, delivery: Delivery) -> DeliveryResult:
        """POST one attempt of `delivery`; never raises for a delivery failure."""
        if self._session is None:
            raise RuntimeError("WebhookDeliverer.deliver() called before open()")
        session = self._session
        target = delivery.target
        started = time.perf_counter()

        config = target.configuration
        if not isinstance(config, WebhookConfig):
            return self._failed(
                delivery,
                None,
                started,
                f"Could not deliver the webhook: the integration is configured as "
                f"{target.integration_type!r}, not as a webhook",
            )
        endpoint = self._endpoint(config.url)
        if endpoint.refused is not None:
            return self._failed(delivery, endpoint.host, started, endpoint.refused)
        url = endpoint.url

        msg_id = str(delivery.job_id)
        body = build_body(delivery, msg_id=msg_id)
        try:
            headers = build_headers(
                delivery,
                config,
                body,
                timestamp=int(time.time()),
                user_agent=self._user_agent,
                msg_id=msg_id,
            )
        except ValueError as error:
            return self._failed(
                delivery, endpoint.host, started, f"Could not sign the webhook: {error}"
            )

        try:
            # The session's timeout (`timeout` seconds in all) bounds the attempt.
            async with session.post(
                url, data=body, headers=headers, allow_redirects=False
            ) as response:
                text = await _read_body(response)
                status = response.status
                retry_after = parse_retry_after(response.headers.get("Retry-After"))
        except aiohttp.ClientSSLError as error:
            detail = f"TLS handshake with {_hostport(error.host, error.port)} failed: "
            detail += _tls_reason(error)
            return self._failed(delivery, endpoint.host, started, detail, config.secret_key)
        except aiohttp.ClientConnectorDNSError as error:
            if isinstance(error.os_error, TargetRefused):
                return self._failed(delivery, endpoint.host, started, error.os_error.reason)
            detail = f"Could not resolve host {error.host}"
            return self._failed(delivery, endpoint.host, started, detail)
        except aiohttp.ClientConnectorError as error:
            where = _hostport(error.host, error.port)
            if _is_refused(error.os_error):
                detail = f"Connection refused by {where}"
            else:
                reason = error.strerror or _reason(error.os_error)
                detail = f"Could not deliver the webhook: cannot connect to {where} ({reason})"
            return self._failed(delivery, endpoint.host, started, detail, config.secret_key)
        except TimeoutError:
            # (`asyncio.TimeoutError` on 3.11+.) Before `ClientError` and `OSError`: aiohttp's
            # timeouts are both.
            detail = f"Timed out after {float(self._timeout)} s waiting for the webhook to respond"
            return self._failed(delivery, endpoint.host, started, detail)
        except ssl.SSLError as error:
            # Before `OSError`: a TLS failure after the handshake, raised bare.
            where = _hostport(url.host or "", url.port)
            detail = f"TLS handshake with {where} failed: {_tls_reason(error)}"
            return self._failed(delivery, endpoint.host, started, detail, config.secret_key)
        except (aiohttp.ClientError, OSError) as error:
            detail = f"Could not deliver the webhook: {_reason(error)}"
            return self._failed(delivery, endpoint.host, started, detail, config.secret_key)

        duration = time.perf_counter() - started
        succeeded = 200 <= status < 300
        result = DeliveryResult(
            succeeded=succeeded,
            duration=duration,
            status_code=status,
            # An endpoint may echo the request back; the secret it was sent is not kept.
            body=text.replace(config.secret_key, "****") if config.secret_key else text,
            error_detail=None if succeeded else NON_2XX_DETAIL,
            retry_after=retry_after,
        )
        if succeeded:
            logger.info(
                "webhook_delivered",
                **_log_fields(delivery, endpoint.host),
                status_code=status,
                duration=duration,
            )
        else:
            logger.warning(
                "webhook_rejected",
                **_log_fields(delivery, endpoint.host),
                status_code=status,
                duration=duration,
                retry_after=retry_after,
            )
        return result

    def _endpoint(self, url_text: str) -> _Endpoint:
        """`url_text` parsed and, when its host is a literal address, judged by the guard.

        Remembered per URL (bounded): both are pure functions of the text. A host name is left
        to the connector's `GuardedResolver`, which looks it up and judges the answers on every
        new connection (DNS rebinding); nothing about a name is remembered here.
        """
        endpoint = self._endpoints.get(url_text)
        if endpoint is not None:
            return endpoint
        url = URL(url_text)
        host = url.host
        endpoint = _Endpoint(url, host, None)
        literal = parse_ip(host or "")
        if literal is not None:
            try:
                self._guard.check(host or "", literal)
            except TargetRefused as refused:
                endpoint = _Endpoint(url, host, refused.reason)
            else:
                # Connect to the address as judged, whatever its spelling (`127.1`, `0x7f.1`).
                endpoint = _Endpoint(url.with_host(str(literal)), host, None)
        if len(self._endpoints) >= _ENDPOINT_MEMO:
            self._endpoints.clear()
        self._endpoints[url_text] = endpoint
        return endpoint

    def _failed(
        self,
        delivery: Delivery,
        host: str | None,
        started: float,
        detail: str,
        secret_key: str | None = None,
    ) -> DeliveryResult:
        if secret_key:
            # Error texts come partly from libraries; make sure the secret can never ride along.
            detail = detail.replace(secret_key, "****")
        duration = time.perf_counter() - started
        logger.warning(
            "webhook_failed", **_log_fields(delivery, host), error_detail=detail, duration=duration
        )
        return DeliveryResult(succeeded=False, duration=duration, error_detail=detail)


@dataclass(frozen=True, slots=True)
class _Endpoint:
    """A webhook URL as the deliverer connects to it."""

    url: URL
    """With a literal address in its canonical spelling."""
    host: str | None
    """As the integration spells it, for logs."""
    refused: str | None
    """Why the SSRF guard refuses the literal address, if it does."""


def _log_fields(delivery: Delivery, host: str | None) -> dict[str, Any]:
    """The ids every line about an attempt carries; built only when a line is logged."""
    fields: dict[str, Any] = {
        "job_id": str(delivery.job_id),
        "integration_id": str(delivery.target.id),
        "attempt": delivery.attempt,
        "triggered_by": delivery.triggered_by,
    }
    if host is not None:
        fields["host"] = host
    return fields


def build_body(delivery: Delivery, *, msg_id: str | None = None) -> bytes:
    """The JSON document EP posts to a webhook, as bytes (`msg_id`: the job id as text).

    `resources` is EP's deprecated copy of `payload`: a JSON-encoded *string* of it, except for
    `*.deleted` events, where EP sends the payload object itself. We do the same, so consumers
    written against EP parse both shapes unchanged.
    """
    target = delivery.target
    payload = delivery.payload
    resources: object
    if delivery.triggered_by.endswith(".deleted"):
        resources = payload
    else:
        resources = orjson.dumps(payload).decode()
    document = {
        "id": msg_id if msg_id is not None else str(delivery.job_id),
        "triggered_by": delivery.triggered_by,
        "attempt": delivery.attempt,
        "integration": {
            "id": str(target.id),
            "integration_type": target.integration_type,
            "name": target.name,
            "description": target.description,
        },
        "payload": payload,
        "resources": resources,
    }
    return orjson.dumps(document)


def build_headers(
    delivery: Delivery,
    config: WebhookConfig,
    body: bytes,
    *,
    timestamp: int,
    user_agent: str,
    msg_id: str | None = None,
) -> dict[str, str]:
    """EP's headers plus the Standard Webhooks signature headers (`msg_id`: the job id as text).

    Raises `ValueError` if a signing secret is not a valid `whsec_` secret.
    """
    if msg_id is None:
        msg_id = str(delivery.job_id)
    headers = {
        "Content-Type": "application/json",
        "User-Agent": user_agent,
        "X-MOLTIN-INTEGRATION-TRIGGER": delivery.triggered_by,
        "webhook-id": msg_id,
        "webhook-timestamp": str(timestamp),
    }
    if config.secret_key:
        headers["X-MOLTIN-SECRET-KEY"] = config.secret_key
    secrets = delivery.target.signing_secrets
    if secrets:
        signed = _signed_content(msg_id, timestamp, body)
        headers["webhook-signature"] = " ".join(
            _signature(_signing_key(secret, position), signed)
            for position, secret in enumerate(secrets, start=1)
        )
    return headers


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


def parse_retry_after(value: str | None, *, now: datetime | None = None) -> float | None:
    """Seconds from `now` that a `Retry-After` header asks for, at least 0; None if absent or bad.

    Both forms of RFC 9110 are understood: delta-seconds (`120`) and an HTTP-date.
    """
    if value is None:
        return None
    value = value.strip()
    if value.isascii() and value.isdigit():
        return float(int(value))
    try:
        when = parsedate_to_datetime(value)
    except (TypeError, ValueError, IndexError):
        return None
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)
    seconds = (when - (now or datetime.now(UTC))).total_seconds()
    return max(seconds, 0.0)


async def _read_body(response: aiohttp.ClientResponse) -> str:
    """Up to `BODY_LIMIT` characters of the answer, reading at most `_MAX_BODY_BYTES` bytes."""
    content = response.content
    raw = b""
    while len(raw) < _MAX_BODY_BYTES and not content.at_eof():
        chunk = await content.read(_MAX_BODY_BYTES - len(raw))
        if not chunk:
            break
        raw += chunk
    charset = response.charset or "utf-8"
    if content.at_eof():
        try:
            text = raw.decode(charset, errors="replace")
        except LookupError:
            text = raw.decode("utf-8", errors="replace")
        return truncate_body(text) or ""
    try:
        decoder = codecs.getincrementaldecoder(charset)(errors="replace")
    except LookupError:
        decoder = codecs.getincrementaldecoder("utf-8")(errors="replace")
    # `final=False` drops a character cut in half by the byte limit instead of mangling it.
    return truncate_body(decoder.decode(raw, final=False)) or ""


def _is_refused(error: OSError) -> bool:
    # Happy Eyeballs merges the errors of every address tried into one `OSError`, which keeps
    # the errno when all of them agree.
    return isinstance(error, ConnectionRefusedError) or error.errno == errno.ECONNREFUSED


def _tls_reason(error: BaseException) -> str:
    if isinstance(error, aiohttp.ClientConnectorCertificateError):
        error = error.certificate_error
    elif isinstance(error, aiohttp.ClientConnectorError):
        error = error.os_error
    if isinstance(error, ssl.SSLCertVerificationError) and error.verify_message:
        return f"certificate verify failed: {error.verify_message}"
    if isinstance(error, ssl.SSLError) and error.reason:
        return str(error.reason)
    return _reason(error)


def _reason(error: BaseException) -> str:
    text = str(error).strip() or type(error).__name__
    if len(text) > _REASON_LIMIT:
        text = text[: _REASON_LIMIT - 1] + "…"
    return text


def _hostport(host: str, port: int | None) -> str:
    if ":" in host:
        host = f"[{host}]"
    return host if port is None else f"{host}:{port}"


__all__ = [
    "NON_2XX_DETAIL",
    "WebhookDeliverer",
    "build_body",
    "build_headers",
    "parse_retry_after",
    "sign",
]
