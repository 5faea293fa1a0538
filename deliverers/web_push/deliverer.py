"""`WebPushDeliverer`: one encrypted, VAPID-signed POST per attempt to the subscription's
push service.

A 2xx answer (push services answer 201 Created) is a success. 404 and 410 mean the subscription
is gone: the result is marked `gone`, the job fails and the integration is disabled. 429 is a
failure whose `Retry-After` the retry policy honours. Anything else, and every request that got
no answer (timeout, refused connection, DNS, TLS), is a failure retried on the schedule.

**SSRF guard.** As for webhooks: the connector resolves through `hub.ssrf`'s `GuardedResolver`
and a literal address in the endpoint is judged before the request; redirects are not
followed and proxy variables are ignored.
"""

from __future__ import annotations

import ssl
from collections.abc import Sequence
from typing import Any, ClassVar

import aiohttp
import structlog
from aiohttp.abc import AbstractResolver
from yarl import URL

from deliverers.attempt import Attempt, WrongConfiguration, excerpt, log_fields
from deliverers.base import Delivery, DeliveryResult
from deliverers.config import WebPushConfig
from deliverers.web_push.encryption import encrypt
from deliverers.web_push.errors import GONE, WORDING, answer_detail
from deliverers.web_push.message import TooLarge, build_headers, push_document
from deliverers.web_push.vapid import Signer
from deliverers.webhook.endpoint import Endpoints
from deliverers.webhook.errors import failure_of
from deliverers.webhook.response import parse_retry_after, read_body
from hub.ssrf import Network, SsrfGuard

logger = structlog.get_logger(__name__)

_FAILED = "web_push_failed"

#: Why an attempt cannot be signed without a subject.
NO_SUBJECT = (
    "Cannot sign the push message: HUB_VAPID_SUBJECT is not set (a mailto: or https: contact "
    "that push services require)"
)


class WebPushDeliverer:
    """Delivers jobs to `web_push` integrations; see the package docstring.

    `subject` is the VAPID `sub` claim (`HUB_VAPID_SUBJECT`); without one every attempt fails
    saying so. `timeout` bounds a whole attempt. `ssl_context` checks the push services'
    certificates (default: the system's CAs). `allowed_networks` are the non-public networks
    endpoints may be in (`HUB_ALLOWED_NETWORKS`); `resolver` replaces the system's lookups
    under the guard (tests).
    """

    integration_type: ClassVar[str] = "web_push"

    def __init__(
        self,
        *,
        subject: str | None,
        timeout: float,
        ssl_context: ssl.SSLContext | None = None,
        user_agent: str = "hub-web-push/0.1",
        limit_per_host: int = 100,
        allowed_networks: Sequence[Network] = (),
        resolver: AbstractResolver | None = None,
    ) -> None:
        self._guard = SsrfGuard(tuple(allowed_networks))
        self._endpoints = Endpoints(self._guard)
        self._signer = Signer(subject) if subject else None
        self._timeout = timeout
        self._ssl_context = ssl_context
        self._user_agent = user_agent
        self._limit_per_host = limit_per_host
        self._resolver = resolver
        self._session: aiohttp.ClientSession | None = None

    async def open(self) -> None:
        """Create the shared session and its connection pool."""
        if self._session is not None:
            return
        connector = aiohttp.TCPConnector(
            limit=0,
            limit_per_host=self._limit_per_host,
            resolver=self._guard.resolver(self._resolver),
            ssl=self._ssl_context if self._ssl_context is not None else True,
        )
        self._session = aiohttp.ClientSession(
            connector=connector,
            timeout=aiohttp.ClientTimeout(total=self._timeout),
            cookie_jar=aiohttp.DummyCookieJar(),
            raise_for_status=False,
            headers={"User-Agent": self._user_agent},
        )

    async def aclose(self) -> None:
        """Close the session; safe to call more than once."""
        session, self._session = self._session, None
        if session is not None:
            await session.close()

    async def deliver(self, delivery: Delivery) -> DeliveryResult:
        """POST one attempt of `delivery` to its push service; never raises for a failure."""
        if self._session is None:
            raise RuntimeError("WebPushDeliverer.deliver() called before open()")
        attempt = Attempt(delivery)
        try:
            config = attempt.configuration(
                WebPushConfig, "Could not send the push message", "web_push"
            )
        except WrongConfiguration as wrong:
            return _failed(attempt, None, wrong.detail)
        endpoint = self._endpoints.judge(config.endpoint)
        if endpoint.refused is not None:
            return _failed(attempt, endpoint.host, endpoint.refused)
        key = delivery.target.vapid
        if key is None:
            detail = "Cannot sign the push message: the store has no VAPID key pair"
            return _failed(attempt, endpoint.host, detail)
        if self._signer is None:
            return _failed(attempt, endpoint.host, NO_SUBJECT)
        try:
            plaintext, trimmed = push_document(delivery)
        except TooLarge as error:
            return _failed(attempt, endpoint.host, str(error))
        url = endpoint.url
        audience = _origin(URL(config.endpoint))
        headers = build_headers(config, authorization=self._signer.authorization(key, audience))
        body = encrypt(plaintext, config.keys)
        try:
            async with self._session.post(
                url, data=body, headers=headers, allow_redirects=False
            ) as response:
                raw, complete = await read_body(response)
                text = excerpt(raw, complete=complete)
                status = response.status
                retry_after = parse_retry_after(response.headers.get("Retry-After"))
        except (aiohttp.ClientError, OSError) as error:
            failure = failure_of(error, url=url, timeout=self._timeout, wording=WORDING)
            return _failed(attempt, endpoint.host, failure.detail)
        duration = attempt.elapsed()
        fields = _log_fields(delivery, endpoint.host)
        if 200 <= status < 300:
            logger.info(
                "web_push_delivered",
                **fields,
                status_code=status,
                trimmed=list(trimmed) or None,
                duration=duration,
            )
            return DeliveryResult(succeeded=True, duration=duration, status_code=status, body=text)
        detail = answer_detail(status, retry_after)
        logger.warning(
            "web_push_rejected",
            **fields,
            status_code=status,
            error_detail=detail,
            retry_after=retry_after,
            duration=duration,
            audience=audience,
        )
        return DeliveryResult(
            succeeded=False,
            duration=duration,
            status_code=status,
            body=text,
            error_detail=detail,
            retry_after=retry_after,
            gone=status in GONE,
        )


def _origin(url: URL) -> str:
    """The endpoint's origin as the VAPID `aud` claim names it: scheme, host, and the port
    only when it is not the scheme's default."""
    host = url.host or ""
    if ":" in host:
        host = f"[{host}]"
    port = "" if url.port in (None, 443) else f":{url.port}"
    return f"{url.scheme}://{host}{port}"


def _failed(attempt: Attempt, host: str | None, detail: str) -> DeliveryResult:
    log = logger.bind(**_log_fields(attempt.delivery, host))
    return attempt.failed(log, _FAILED, detail)


def _log_fields(delivery: Delivery, host: str | None) -> dict[str, Any]:
    fields = log_fields(delivery)
    if host is not None:
        fields["host"] = host
    return fields


__all__ = ["NO_SUBJECT", "WebPushDeliverer"]
