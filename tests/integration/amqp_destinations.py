"""Shared pieces of the `amqp` destination's tests: deliveries built by hand, and exchanges,
queues, vhosts and users of a test's own on the real RabbitMQ (127.0.0.1:5672)."""

from __future__ import annotations

import contextlib
import secrets
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any
from uuid import uuid4

import aio_pika
from aio_pika.abc import AbstractChannel, AbstractIncomingMessage, AbstractQueue

from deliverers.base import Delivery, Target
from deliverers.config import AmqpConfig
from tests.integration.amqp_helpers import AMQP_URL, BROKER_HOST

PAYLOAD: dict[str, Any] = {
    "data": {"type": "order", "id": "o-1", "status": "paid"},
    "included": {"items": [{"type": "cart_item", "id": "i-1"}]},
}


def amqp_url(user: str = "guest", password: str = "guest", vhost: str = "") -> str:  # noqa: S107
    return f"amqp://{user}:{password}@{BROKER_HOST}:5672/{vhost}"


def delivery(config: AmqpConfig, *, key: str = "order.paid", attempt: int = 1) -> Delivery:
    return Delivery(
        job_id=uuid4(),
        attempt=attempt,
        event_id=uuid4(),
        triggered_by=key,
        payload=PAYLOAD,
        event_time=datetime(2026, 12, 2, 10, 0, 0, 125000, tzinfo=UTC),
        target=Target(
            id=uuid4(),
            store_id=uuid4(),
            name="Orders to the bus",
            description=None,
            integration_type="amqp",
            configuration=config,
            signing_secrets=(),
        ),
    )


@dataclass
class Exchange:
    """A topic exchange of the test's own with one queue bound to `binding`."""

    name: str
    queue: AbstractQueue
    channel: AbstractChannel

    async def take(self, count: int, *, timeout: float = 10) -> list[AbstractIncomingMessage]:
        """The next `count` messages of the queue (acked), waiting up to `timeout` seconds."""
        out: list[AbstractIncomingMessage] = []
        async with self.queue.iterator(timeout=timeout) as messages:
            async for message in messages:
                await message.ack()
                out.append(message)
                if len(out) >= count:
                    break
        return out

    async def depth(self) -> int:
        declared = await self.channel.declare_queue(self.queue.name, passive=True)
        count = declared.declaration_result.message_count
        return int(count or 0)


@contextlib.asynccontextmanager
async def own_exchange(binding: str = "order.#") -> AsyncIterator[Exchange]:
    """An exchange and a queue bound to it, both deleted afterwards."""
    name = f"hub-dest-{secrets.token_hex(5)}"
    connection = await aio_pika.connect(AMQP_URL)
    try:
        channel = await connection.channel()
        exchange = await channel.declare_exchange(name, aio_pika.ExchangeType.TOPIC)
        queue = await channel.declare_queue(f"{name}.q")
        await queue.bind(exchange, binding)
        try:
            yield Exchange(name, queue, channel)
        finally:
            await queue.delete(if_unused=False, if_empty=False)
            await exchange.delete()
    finally:
        await connection.close()


async def delete_exchange(name: str) -> None:
    connection = await aio_pika.connect(AMQP_URL)
    try:
        channel = await connection.channel()
        await channel.exchange_delete(name)
    finally:
        await connection.close()
