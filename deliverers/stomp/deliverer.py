"""`StompDeliverer`: each attempt is one SEND, confirmed by the broker's RECEIPT.

An attempt succeeds only when the broker answers its SEND with a RECEIPT within `timeout`, which
bounds the whole attempt, connecting included; `DeliveryResult.body` is then `receipt <id>`.
Anything else (no connection, a refused login, a TLS failure, an ERROR frame, the connection
lost before the RECEIPT, no RECEIPT in time) fails the attempt with a specific `error_detail`,
and the job is retried. Sending runs in a worker thread (`asyncio.to_thread`).
"""

from __future__ import annotations

import asyncio
import ssl
import time
import uuid
from collections.abc import Sequence
from typing import ClassVar

import stomp.exception
import structlog

from deliverers.attempt import Attempt, WrongConfiguration, log_fields, reason
from deliverers.base import Delivery, DeliveryResult
from deliverers.config import StompConfig
from deliverers.stomp.connections import Connections, Key
from deliverers.stomp.errors import ConnectFailed
from deliverers.stomp.message import build_body, build_headers
from deliverers.stomp.session import Session, send
from hub.ssrf import Network, SsrfGuard

logger = structlog.get_logger(__name__)

_FAILED = "stomp_failed"


class StompDeliverer:
    """Delivers jobs to `stomp` integrations; see the package docstring.

    `source` is the CloudEvents `source` (the hub's public URL); `timeout` bounds each attempt.
    `ssl_context` checks `stomp+ssl://` brokers (default: the system's CAs, hostname checked).
    `allowed_networks` are the non-public networks brokers may be in (`HUB_ALLOWED_NETWORKS`):
    each address is resolved and judged by `hub.ssrf` and the socket goes to a vetted address.
    """

    integration_type: ClassVar[str] = "stomp"

    def __init__(
        self,
        *,
        source: str,
        timeout: float,
        heartbeats: tuple[int, int] = (10_000, 10_000),
        virtual_host: str | None = "/",
        ssl_context: ssl.SSLContext | None = None,
        idle_timeout: float = 300.0,
        allowed_networks: Sequence[Network] = (),
    ) -> None:
        self._source = source
        self._timeout = timeout
        self._connections = Connections(
            guard=SsrfGuard(tuple(allowed_networks)),
            heartbeats=heartbeats,
            virtual_host=virtual_host,
            ssl_context=ssl_context,
            idle_timeout=idle_timeout,
        )
        self._loop: asyncio.AbstractEventLoop | None = None

    async def open(self) -> None:
        """Nothing to connect yet: each connection opens with the first delivery needing it."""
        self._loop = asyncio.get_running_loop()
        self._connections.open()

    async def aclose(self) -> None:
        """Close every connection (DISCONNECT, then the socket); safe to call more than once."""
        await self._connections.aclose()

    def is_connected(self, config: StompConfig) -> bool:
        """Whether the connection for `config`'s addresses and credentials is open."""
        return self._connections.is_connected(Key.of(config))

    async def deliver(self, delivery: Delivery) -> DeliveryResult:
        """SEND one attempt of `delivery` and wait for its RECEIPT; never raises for a failure."""
        if self._loop is None:
            raise RuntimeError("StompDeliverer.deliver() called before open()")
        log = logger.bind(**log_fields(delivery))
        attempt = Attempt(delivery)
        deadline = time.monotonic() + self._timeout
        try:
            config = attempt.configuration(StompConfig, "Could not deliver to STOMP", "stomp")
        except WrongConfiguration as wrong:
            return attempt.failed(log, _FAILED, wrong.detail)
        log = log.bind(destination=config.destination)
        secrets = (config.password,)
        body = build_body(delivery, source=self._source)
        headers = build_headers(delivery)

        key = Key.of(config)
        link = self._connections.link(key)
        session: Session | None = None
        receipt = ""
        # A second go only if the connection turned out closed before the frame left.
        for _ in range(2):
            try:
                session = await self._connections.session(link, key, deadline)
            except ConnectFailed as error:
                return attempt.failed(log, _FAILED, error.detail, secrets=secrets)
            except TimeoutError:
                detail = (
                    f"Timed out after {self._timeout:g} s connecting to the STOMP broker at "
                    f"{', '.join(config.addresses)}"
                )
                return attempt.failed(log, _FAILED, detail)
            log = log.bind(address=session.address.url)
            receipt = uuid.uuid4().hex
            answer = session.expect(receipt)
            try:
                await asyncio.to_thread(send, session, config.destination, body, headers, receipt)
            except (stomp.exception.StompException, OSError) as error:
                session.withdraw(receipt)
                session.broken = True
                log.info("stomp_send_failed", error=reason(error))
                session = None
                continue
            break
        if session is None:
            detail = "Could not send to the STOMP broker: the connection closed twice in a row"
            return attempt.failed(log, _FAILED, detail, secrets=secrets)

        try:
            async with asyncio.timeout(max(deadline - time.monotonic(), 0.0)):
                problem = await answer
        except TimeoutError:
            suspected = session.give_up(receipt)
            detail = (
                f"The STOMP broker at {session.address.url} did not confirm the message "
                f"(no RECEIPT) within {self._timeout:g} s"
            )
            if suspected is not None:
                detail += f"; meanwhile: {suspected}"
            return attempt.failed(log, _FAILED, detail, secrets=secrets)
        finally:
            session.give_up(receipt)  # cancelled, say; a no-op once answered
        if problem is not None:
            return attempt.failed(log, _FAILED, problem, secrets=secrets)

        duration = attempt.elapsed()
        log.info("stomp_delivered", receipt=receipt, duration=duration)
        return DeliveryResult(succeeded=True, duration=duration, body=f"receipt {receipt}")


__all__ = ["StompDeliverer"]
