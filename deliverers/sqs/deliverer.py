"""`SqsDeliverer`: each attempt is one message to the integration's queue.

**SSRF guard.** The endpoint's host names are resolved through `hub.ssrf`'s `GuardedResolver`
(the connection goes to the vetted addresses), and a literal address is judged before the first
request; a refused endpoint is a failed attempt saying why.

**Results.** Success: `body` is `MessageId: …` (plus `SequenceNumber: …` on FIFO queues) and
`status_code` SQS's HTTP status. Failure: a readable `error_detail` naming the AWS error code, and
`status_code` the HTTP status of SQS's error answer, as `deliverers.sqs.errors` says.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, ClassVar
from urllib.parse import urlsplit

import orjson
import structlog
from aiobotocore.session import AioSession

from deliverers.attempt import Attempt, WrongConfiguration, excerpt, log_fields, one_line
from deliverers.base import Delivery, DeliveryResult
from deliverers.config import SqsConfig
from deliverers.sqs.batching import Batches
from deliverers.sqs.client import ClientKey, Clients
from deliverers.sqs.errors import Failed, scrub_credentials
from deliverers.sqs.message import MessageTooLarge, build_message, endpoint_of
from hub.errors import TargetRefused
from hub.ssrf import Network, SsrfGuard

logger = structlog.get_logger(__name__)


class SqsDeliverer:
    """Delivers jobs to `aws_sqs` integrations; see the package docstring.

    `source` is the CloudEvents `source` (the hub's public URL). `session` may be given to share
    an aiobotocore session (its event hooks apply to every client this deliverer creates).
    `allowed_networks` are the non-public networks endpoints may be in (`HUB_ALLOWED_NETWORKS`).
    """

    integration_type: ClassVar[str] = "aws_sqs"

    def __init__(
        self,
        *,
        source: str,
        timeout: float = 10.0,
        max_attempts: int = 2,
        batch_window: float = 0.002,
        max_pool_connections: int = 50,
        session: AioSession | None = None,
        allowed_networks: Sequence[Network] = (),
    ) -> None:
        self._guard = SsrfGuard(tuple(allowed_networks))
        self._source = source
        self._clients = Clients(
            timeout=timeout,
            max_attempts=max_attempts,
            max_pool_connections=max_pool_connections,
            resolver=self._guard.resolver(),
            session=session,
        )
        self._batches = Batches(window=batch_window, timeout=timeout)
        self._open = False

    async def open(self) -> None:
        """Prepare the session; clients are created on first use of each credential set."""
        if self._open:
            return
        self._clients.open()
        self._open = True

    async def aclose(self) -> None:
        """Send what is waiting, let sends in flight finish, close every client."""
        if not self._open:
            return
        self._open = False
        await self._batches.drain()
        await self._clients.aclose()

    async def deliver(self, delivery: Delivery) -> DeliveryResult:
        """Send one attempt of `delivery`; never raises for a delivery failure."""
        if not self._open:
            raise RuntimeError("SqsDeliverer.deliver() called before open()")
        attempt = Attempt(delivery)
        log = logger.bind(**log_fields(delivery))
        try:
            config = attempt.configuration(SqsConfig, "Could not deliver to SQS", "aws_sqs")
        except WrongConfiguration as wrong:
            return _failed(attempt, log, Failed(wrong.detail), None)
        log = log.bind(queue=config.url)

        try:
            message = build_message(delivery, config, source=self._source)
        except MessageTooLarge as error:
            return _failed(attempt, log, Failed(str(error)), config)
        except orjson.JSONEncodeError as error:
            detail = f"Could not encode the event as JSON: {error}"
            return _failed(attempt, log, Failed(detail), config)
        if message.includes_elided:
            log.info("sqs_includes_elided", size=message.size)

        key = ClientKey(
            config.aws_access_key_id,
            config.aws_secret_access_key,
            config.region,
            endpoint_of(config.url),
        )
        try:  # names are judged by the connector's resolver; it is not asked about addresses
            self._guard.check_literal(urlsplit(config.url).hostname or "")
        except TargetRefused as refused:
            return _failed(attempt, log, Failed(refused.reason), config)
        try:
            client = await self._clients.get(key)
        except Exception as error:  # invalid endpoint or region: botocore raises several types
            detail = f"Could not create an SQS client for {key.endpoint}: {one_line(str(error))}"
            return _failed(attempt, log, Failed(detail), config)

        outcome = await self._batches.enqueue(key, client, config.url, message)
        if isinstance(outcome, Failed):
            return _failed(attempt, log, outcome, config)
        duration = attempt.elapsed()
        body = f"MessageId: {outcome.message_id}"
        if outcome.sequence_number is not None:
            body += f", SequenceNumber: {outcome.sequence_number}"
        log.info("sqs_delivered", message_id=outcome.message_id, duration=duration)
        return DeliveryResult(
            succeeded=True,
            duration=duration,
            status_code=outcome.status_code,
            body=excerpt(body),
        )


def _failed(
    attempt: Attempt, log: Any, failure: Failed, config: SqsConfig | None
) -> DeliveryResult:
    detail = failure.detail
    if config is not None:
        # Error texts come partly from AWS and libraries; keep the credentials out regardless.
        detail = scrub_credentials(detail, config.aws_access_key_id, config.aws_secret_access_key)
    return attempt.failed(log, "sqs_failed", detail, status_code=failure.status_code)


__all__ = ["SqsDeliverer"]
