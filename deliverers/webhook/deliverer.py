"""`WebhookDeliverer`: one POST per attempt, through one shared, guarded connection pool.

**SSRF guard.** The session's connector resolves host names through `hub.ssrf`'s
`GuardedResolver`, so the connection goes to vetted addresses only (no second lookup to rebind),
and a literal address in the URL is judged before the request (`deliverers.webhook.endpoint`).
A refused target is a failed attempt whose `error_detail` says why.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from typing import Any, ClassVar

import aiohttp
import structlog
from aiohttp.abc import AbstractResolver

from deliverers.attempt import Attempt, WrongConfiguration, excerpt, log_fields
from deliverers.base import Delivery, DeliveryResult
from deliverers.config import WebhookConfig
from deliverers.webhook.endpoint import Endpoints
from deliverers.webhook.errors import NON_2XX_DETAIL, failure_of
from deliverers.webhook.message import build_body, build_headers
from deliverers.webhook.response import parse_retry_after, read_body
from hub.ssrf import Network, SsrfGuard

logger = structlog.get_logger(__name__)


class WebhookDeliverer:
    """Delivers jobs to `webhook` integrations over HTTP(S); see the package docstring.

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
        self._endpoints = Endpoints(self._guard)

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
        attempt = Attempt(delivery)

        try:
            config = attempt.configuration(
                WebhookConfig, "Could not deliver the webhook", "a webhook"
            )
        except WrongConfiguration as wrong:
            return _failed(attempt, None, wrong.detail)
        endpoint = self._endpoints.judge(config.url)
        if endpoint.refused is not None:
            return _failed(attempt, endpoint.host, endpoint.refused)
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
            return _failed(attempt, endpoint.host, f"Could not sign the webhook: {error}")

        try:
            # The session's timeout (`timeout` seconds in all) bounds the attempt.
            async with session.post(
                url, data=body, headers=headers, allow_redirects=False
            ) as response:
                text, complete = await read_body(response)
                status = response.status
                retry_after = parse_retry_after(response.headers.get("Retry-After"))
        except (aiohttp.ClientError, OSError) as error:
            failure = failure_of(error, url=url, timeout=self._timeout)
            secret = config.secret_key if failure.quotes_library else None
            return _failed(attempt, endpoint.host, failure.detail, secret)

        duration = attempt.elapsed()
        succeeded = 200 <= status < 300
        result = DeliveryResult(
            succeeded=succeeded,
            duration=duration,
            status_code=status,
            # An endpoint may echo the request back; the secret it was sent is not kept.
            body=excerpt(text, config.secret_key, complete=complete),
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


def _failed(
    attempt: Attempt, host: str | None, detail: str, secret_key: str | None = None
) -> DeliveryResult:
    log = logger.bind(**_log_fields(attempt.delivery, host))
    return attempt.failed(log, "webhook_failed", detail, secrets=(secret_key,))


def _log_fields(delivery: Delivery, host: str | None) -> dict[str, Any]:
    """The ids every line about an attempt carries; built only when a line is logged."""
    fields = log_fields(delivery)
    if host is not None:
        fields["host"] = host
    return fields


__all__ = ["WebhookDeliverer"]
