"""The real RabbitMQ for the AMQP ingest tests: names of a test's own, publishing, reading queues.

Every test gets its own exchange and queues (settings `amqp_*`), so parallel tests and leftover
messages of earlier runs never meet; `Broker.cleanup` deletes them.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import secrets
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any

import aio_pika
import orjson
from aio_pika.abc import (
    AbstractChannel,
    AbstractConnection,
    AbstractExchange,
    AbstractIncomingMessage,
)

BROKER_HOST = os.environ.get("RABBITMQ_HOST", "127.0.0.1")
AMQP_URL = f"amqp://guest:guest@{BROKER_HOST}:{os.environ.get('RABBITMQ_PORT', '5672')}/"


def amqp_settings() -> dict[str, Any]:
    """`Settings` overrides naming an exchange and queues of this test's own."""
    prefix = f"hub-test-{secrets.token_hex(4)}"
    return {
        "amqp_url": AMQP_URL,
        "amqp_exchange": f"{prefix}.events",
        "amqp_queue": f"{prefix}.ingest",
        "amqp_dead_letter_exchange": f"{prefix}.dlx",
        "amqp_dead_letter_queue": f"{prefix}.dead",
    }


def env_of(settings: dict[str, Any]) -> dict[str, str]:
    """The same overrides as `HUB_*` environment variables, for a `hub` process."""
    return {f"HUB_{name.upper()}": str(value) for name, value in settings.items()}


@dataclass
class Broker:
    """A test's connection to RabbitMQ and the names it works with."""

    channel: AbstractChannel
    names: dict[str, Any]
    _exchange: AbstractExchange | None = None

    async def publish(
        self,
        body: Any,
        *,
        routing_key: str = "order.paid",
        headers: dict[str, Any] | None = None,
        message_id: str | None = None,
    ) -> None:
        """Publish to the hub's exchange and wait for the broker's confirm."""
        raw = body if isinstance(body, bytes) else orjson.dumps(body)
        if self._exchange is None:
            self._exchange = await self.channel.get_exchange(self.names["amqp_exchange"])
        await self._exchange.publish(
            aio_pika.Message(
                raw,
                headers=headers or {},
                message_id=message_id,
                content_type="application/json",
                delivery_mode=aio_pika.DeliveryMode.PERSISTENT,
            ),
            routing_key=routing_key,
        )

    async def ready_count(self, setting: str) -> int:
        """Messages ready (not delivered, or given back) in the queue named by `setting`."""
        queue = await self.channel.declare_queue(self.names[setting], passive=True)
        count = queue.declaration_result.message_count
        assert count is not None
        return count

    async def take(
        self, setting: str, count: int, timeout: float = 10
    ) -> list[AbstractIncomingMessage]:
        """`count` messages from the queue named by `setting` (acked); fails after `timeout`."""
        queue = await self.channel.get_queue(self.names[setting])
        taken: list[AbstractIncomingMessage] = []
        deadline = time.monotonic() + timeout
        while len(taken) < count:
            message = await queue.get(fail=False)
            if message is None:
                if time.monotonic() > deadline:
                    raise AssertionError(f"{len(taken)} of {count} messages within {timeout} s")
                await asyncio.sleep(0.05)
                continue
            await message.ack()
            taken.append(message)
        return taken

    async def cleanup(self) -> None:
        for setting in ("amqp_queue", "amqp_dead_letter_queue"):
            with contextlib.suppress(Exception):
                await self.channel.queue_delete(self.names[setting])
        for setting in ("amqp_exchange", "amqp_dead_letter_exchange"):
            with contextlib.suppress(Exception):
                await self.channel.exchange_delete(self.names[setting])


@contextlib.asynccontextmanager
async def broker(names: dict[str, Any]) -> AsyncIterator[Broker]:
    """A connection to RabbitMQ that declares the hub's topology up front (so nothing published
    before the hub consumes is unroutable) and deletes it on exit."""
    from hub.ingest import declare_topology
    from hub.settings import Settings

    # Not robust: a robust channel answers a passive declare from its cache (stale counts).
    connection: AbstractConnection = await aio_pika.connect(AMQP_URL, timeout=10)
    try:
        channel = await connection.channel(publisher_confirms=True, on_return_raises=True)
        await declare_topology(channel, Settings(_env_file=None, **names))
        test_broker = Broker(channel, names)
        try:
            yield test_broker
        finally:
            await test_broker.cleanup()
    finally:
        await connection.close()
