"""`AmqpDeliverer`: each attempt is one publish, a success only once the broker confirms it.

The channel is in publisher-confirm mode and every message is published `mandatory`: the
attempt succeeds on the broker's `basic.ack` within `timeout` (which bounds the whole attempt,
connecting included), and `DeliveryResult.body` is then `confirmed`. A message the broker
returns as unroutable (no queue bound for its routing key), a `basic.nack`, a missing exchange,
a refused login, a lost connection or no confirm in time fails the attempt with a specific
`error_detail`, and the job is retried. The password is never in a detail or a log line.
"""

from __future__ import annotations

import asyncio
import ssl
from collections.abc import Sequence
from typing import ClassVar

import structlog
from aiohttp.abc import AbstractResolver

from deliverers.amqp.connections import Broker, Connections, Route, Session
from deliverers.amqp.errors import connect_failure, publish_failure, where
from deliverers.amqp.message import build_message, routing_key
from deliverers.amqp.transport import GuardedTransport
from deliverers.attempt import Attempt, WrongConfiguration, log_fields
from deliverers.base import Delivery, DeliveryResult
from deliverers.config import AmqpConfig
from hub.ssrf import Network, SsrfGuard

logger = structlog.get_logger(__name__)

_FAILED = "amqp_failed"
CONFIRMED = "confirmed"


class AmqpDeliverer:
    """Delivers jobs to `amqp` integrations; see the package docstring.

    `source` is the CloudEvents `source` (the hub's public URL); `timeout` bounds each attempt.
    `ssl_context` checks `amqps://` brokers (default: the system's CAs, host name checked).
    `allowed_networks` are the non-public networks brokers may be in (`HUB_ALLOWED_NETWORKS`);
    `resolver` replaces the system's lookups under the guard (tests).
    """

    integration_type: ClassVar[str] = "amqp"

    def __init__(
        self,
        *,
        source: str,
        timeout: float,
        ssl_context: ssl.SSLContext | None = None,
        idle_timeout: float = 300.0,
        allowed_networks: Sequence[Network] = (),
        resolver: AbstractResolver | None = None,
    ) -> None:
        self._source = source
        self._timeout = timeout
        self._connections = Connections(
            transport=GuardedTransport(SsrfGuard(tuple(allowed_networks)), resolver),
            timeout=timeout,
            ssl_context=ssl_context,
            idle_timeout=idle_timeout,
        )
        self._open = False

    async def open(self) -> None:
        """Nothing to connect yet: each connection opens with the first delivery needing it."""
        self._open = True

    async def aclose(self) -> None:
        """Close every connection; safe to call more than once."""
        self._open = False
        await self._connections.aclose()

    def is_connected(self, config: AmqpConfig) -> bool:
        """Whether the connection for `config`'s URL is open."""
        return self._connections.is_connected(Broker.of(config))

    async def deliver(self, delivery: Delivery) -> DeliveryResult:
        """Publish one attempt of `delivery` and wait for the broker's confirm."""
        if not self._open:
            raise RuntimeError("AmqpDeliverer.deliver() called before open()")
        attempt = Attempt(delivery)
        log = logger.bind(**log_fields(delivery))
        try:
            config = attempt.configuration(AmqpConfig, "Could not publish to AMQP", "amqp")
        except WrongConfiguration as wrong:
            return attempt.failed(log, _FAILED, wrong.detail)
        broker, route = Broker.of(config), Route.of(config)
        key = routing_key(delivery, config)
        log = log.bind(broker=broker.address, vhost=broker.vhost, exchange=route.exchange)
        message = build_message(delivery, config, source=self._source)
        session: Session | None = None
        try:
            async with asyncio.timeout(self._timeout):
                session = await self._connections.session(broker)
                exchange = await session.exchange(route)
                await exchange.publish(message, key, mandatory=True)
        except TimeoutError:
            if session is None:
                detail = f"Could not connect to the AMQP broker at {where(broker)} within "
            else:
                detail = f"No publisher confirm from the AMQP broker at {where(broker)} within "
            return self._failed(attempt, log, broker, detail + f"{self._timeout:g} s")
        except asyncio.CancelledError:
            task = asyncio.current_task()
            if task is not None and task.cancelling():
                raise  # the worker is stopping: its own cancellation, not the broker's
            lost = session.lost if session is not None else None
            detail = publish_failure(ConnectionError(), broker, route, key, lost or "cancelled")
            return self._failed(attempt, log, broker, detail)
        except Exception as error:
            if session is None:
                detail = connect_failure(error, broker)
            else:
                detail = publish_failure(error, broker, route, key, session.lost)
            return self._failed(attempt, log, broker, detail)
        duration = attempt.elapsed()
        log.info("amqp_delivered", routing_key=key, duration=duration)
        return DeliveryResult(succeeded=True, duration=duration, body=CONFIRMED)

    @staticmethod
    def _failed(attempt: Attempt, log: object, broker: Broker, detail: str) -> DeliveryResult:
        return attempt.failed(log, _FAILED, detail, secrets=broker.secrets)


__all__ = ["CONFIRMED", "AmqpDeliverer"]
