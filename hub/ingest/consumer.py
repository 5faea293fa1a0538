"""The AMQP consumer: one message → one event and its jobs, committed before the ack.

Topology, declared (idempotently) at start and again after every reconnect:

* ``HUB_AMQP_EXCHANGE`` (default ``hub.events``): a durable **topic** exchange services publish
  to, routing key = event key;
* ``HUB_AMQP_QUEUE`` (default ``hub.ingest``): the hub's durable queue, bound with
  ``HUB_AMQP_BINDING`` (default ``#``), its ``x-dead-letter-exchange`` set to
* ``HUB_AMQP_DEAD_LETTER_EXCHANGE`` (default ``hub.ingest.dlx``), a durable fanout exchange
  feeding the durable queue ``HUB_AMQP_DEAD_LETTER_QUEUE`` (default ``hub.ingest.dead``).

Up to ``HUB_AMQP_PREFETCH`` messages are in hand at once. What has arrived is handled in batches
of up to `MAX_BATCH` (one transaction each, so that commits, not messages, are the unit of cost),
by `BATCH_LOOPS` loops so that one batch is written while another commits. A batch that breaks a
rule is split and its messages handled one by one, so that only the culprit is rejected. Each
message has one outcome:

* **stored** (or a **repeat** of a stored client id): the event and its jobs are written by
  `hub.services.events.publish` (the code behind ``POST /v2/events``) in one transaction, *then*
  the message is acked. A crash between the two leaves the message unacked, so the broker
  redelivers it; its `message_id` is the event's client id, so the redelivery is recognised and
  stores nothing twice.
* **rejected** (it can never be stored: malformed, invalid, unauthorised): RabbitMQ cannot add a
  header when it dead-letters a rejected message, so the hub publishes a copy itself to the
  dead-letter exchange, with the reason in ``x-hub-rejected-reason`` (and without the
  ``x-hub-key`` header: a key does not belong in a queue operators browse), waits for the
  broker's confirm, and only then acks the original. Should that publish fail, the message is
  requeued instead: it is never dropped.
* **requeued**: the database is unavailable; after ``HUB_AMQP_REQUEUE_DELAY`` seconds the message
  is nacked with requeue, never dead-lettered.

`stop()` cancels the consumer, lets the messages in hand finish (``HUB_WORKER_GRACE_SECONDS`` at
most; what is cut short stays unacked and is redelivered) and closes the connection.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any
from uuid import UUID

import aio_pika
import structlog
from aio_pika.abc import (
    AbstractChannel,
    AbstractExchange,
    AbstractIncomingMessage,
    AbstractQueue,
    AbstractRobustConnection,
)
from prometheus_client import Counter
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from hub.auth import Permission
from hub.errors import DomainError, MessageRejected, PermissionDenied, Unauthenticated, UnknownStore
from hub.events import EventCatalogue
from hub.ingest.messages import (
    KEY_HEADER,
    MAX_REASON,
    REASON_HEADER,
    IngestMessage,
    decode,
)
from hub.services import access
from hub.services import events as event_service
from hub.services.inputs import EventIn
from hub.settings import Settings
from hub.store import stores
from hub.store.engine import distrust_connections, storage_unavailable
from hub.store.records import Published

log = structlog.get_logger(__name__)

MESSAGES = Counter(
    "hub_amqp_messages_total",
    "AMQP messages handled by the ingest, by outcome",
    ["outcome"],  # stored | repeat | rejected | requeued
)

#: Messages stored in one transaction at most (as many as have arrived, up to this).
MAX_BATCH = 100
#: Batches handled at once: one can commit while the next is being written.
BATCH_LOOPS = 2


@dataclass(frozen=True, slots=True)
class Topology:
    queue: AbstractQueue
    """The hub's queue, consumed."""
    dead_exchange: AbstractExchange
    """Where rejected messages are published, with their reason."""


async def declare_topology(channel: AbstractChannel, settings: Settings) -> Topology:
    """Declare the exchanges and queues of the module docstring."""
    exchange = await channel.declare_exchange(
        settings.amqp_exchange, aio_pika.ExchangeType.TOPIC, durable=True
    )
    dead_exchange = await channel.declare_exchange(
        settings.amqp_dead_letter_exchange, aio_pika.ExchangeType.FANOUT, durable=True
    )
    dead_queue = await channel.declare_queue(settings.amqp_dead_letter_queue, durable=True)
    await dead_queue.bind(dead_exchange)
    queue = await channel.declare_queue(
        settings.amqp_queue,
        durable=True,
        arguments={"x-dead-letter-exchange": settings.amqp_dead_letter_exchange},
    )
    await queue.bind(exchange, routing_key=settings.amqp_binding)
    return Topology(queue, dead_exchange)


class AmqpIngest:
    """Consumes the hub's queue until `stop()`; see the module docstring."""

    def __init__(self, settings: Settings, engine: AsyncEngine, catalogue: EventCatalogue) -> None:
        if not settings.amqp_url:
            raise ValueError("AmqpIngest needs settings.amqp_url")
        self.settings = settings
        self.engine = engine
        self.catalogue = catalogue
        self.ready = asyncio.Event()
        """Set once the topology is declared and the consumer is registered."""
        self.stopped = asyncio.Event()
        """Set once `run` has returned (or crashed)."""
        self._stopping = asyncio.Event()
        self._incoming: asyncio.Queue[AbstractIncomingMessage] = asyncio.Queue()
        self._dead_exchange: AbstractExchange | None = None
        self._trusted_store: UUID | None = None

    def stop(self) -> None:
        self._stopping.set()

    async def run(self) -> None:
        try:
            connection = await self._connect()
            if connection is None:
                return
            try:
                await self._consume(connection)
            finally:
                await connection.close()
                log.info("amqp_ingest_stopped")
        finally:
            self.stopped.set()

    async def _connect(self) -> AbstractRobustConnection | None:
        """The broker's connection, retried with backoff until it works or `stop()`."""
        assert self.settings.amqp_url
        delay = 0.5
        while not self._stopping.is_set():
            try:
                return await aio_pika.connect_robust(self.settings.amqp_url, timeout=10)
            except (OSError, TimeoutError, aio_pika.exceptions.AMQPError) as exc:
                # The URL may hold a password: only the error's type and text are logged.
                log.warning("amqp_connect_failed", error=str(exc) or type(exc).__name__)
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._stopping.wait(), delay)
            delay = min(delay * 2, 30.0)
        return None

    async def _consume(self, connection: AbstractRobustConnection) -> None:
        settings = self.settings
        channel = await connection.channel(publisher_confirms=True, on_return_raises=True)
        await channel.set_qos(prefetch_count=settings.amqp_prefetch)
        topology = await declare_topology(channel, settings)
        self._dead_exchange = topology.dead_exchange
        loops = [
            asyncio.create_task(self._batch_loop(), name=f"hub-amqp-batches-{n}")
            for n in range(BATCH_LOOPS)
        ]
        try:
            tag = await topology.queue.consume(self._on_message)
            log.info(
                "amqp_ingest_started",
                exchange=settings.amqp_exchange,
                queue=settings.amqp_queue,
                prefetch=settings.amqp_prefetch,
            )
            self.ready.set()
            stopping = asyncio.ensure_future(self._stopping.wait())
            done, _ = await asyncio.wait([stopping, *loops], return_when=asyncio.FIRST_COMPLETED)
            stopping.cancel()
            for task in done:
                if task is not stopping:
                    task.result()  # a loop that ended crashed: stop the process, loudly
            with contextlib.suppress(Exception):
                await topology.queue.cancel(tag)
            # Deliveries already on their way when the cancel landed still arrive and are
            # handled too; what the grace period cuts short stays unacked and is redelivered.
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._incoming.join(), settings.worker_grace_seconds)
        finally:
            for task in loops:
                task.cancel()
            await asyncio.gather(*loops, return_exceptions=True)

    async def _on_message(self, message: AbstractIncomingMessage) -> None:
        self._incoming.put_nowait(message)  # bounded by the prefetch count

    async def _batch_loop(self) -> None:
        """Handle what has arrived, up to `MAX_BATCH` messages at a time: under load, the
        messages that came in while the previous batch was committing share one transaction."""
        while True:
            batch = [await self._incoming.get()]
            while len(batch) < MAX_BATCH and not self._incoming.empty():
                batch.append(self._incoming.get_nowait())
            try:
                await self._handle_batch(batch)
            finally:
                for _ in batch:
                    self._incoming.task_done()

    def _decode(self, message: AbstractIncomingMessage) -> IngestMessage:
        return decode(
            message.body,
            routing_key=message.routing_key,
            message_id=message.message_id,
            headers=message.headers,
            max_body_bytes=self.settings.max_body_bytes,
        )

    async def _handle_batch(self, messages: list[AbstractIncomingMessage]) -> None:
        ready: list[tuple[AbstractIncomingMessage, IngestMessage]] = []
        for message in messages:
            try:
                ready.append((message, self._decode(message)))
            except MessageRejected as exc:
                await self._dead_letter(message, exc.reason)
        if len(ready) <= 1:
            for message, decoded in ready:
                await self._handle_one(message, decoded)
            return
        try:
            async with self.engine.begin() as conn:
                published, refused = await self._publish_together(conn, ready)
        except Exception as exc:
            if storage_unavailable(exc):
                distrust_connections()
                await self._requeue([message for message, _ in ready], exc)
                return
            # A message broke a rule (or tripped a bug): one by one, so that only it is
            # dead-lettered and the others are stored.
            log.info("amqp_batch_split", size=len(ready), error=type(exc).__name__)
            for message, decoded in ready:
                await self._handle_one(message, decoded)
            return
        await asyncio.gather(*(self._stored(message, result) for message, result in published))
        for message, rejection in refused:
            await self._dead_letter(message, rejection.reason)

    async def _publish_together(
        self, conn: AsyncConnection, ready: list[tuple[AbstractIncomingMessage, IngestMessage]]
    ) -> tuple[
        list[tuple[AbstractIncomingMessage, Published]],
        list[tuple[AbstractIncomingMessage, MessageRejected]],
    ]:
        """Publish the messages in the caller's transaction, one batch per store; messages
        whose key does not authorise them come back refused."""
        stores: dict[tuple[str | None, str | None], UUID | MessageRejected] = {}
        groups: dict[UUID, list[tuple[AbstractIncomingMessage, EventIn]]] = {}
        refused: list[tuple[AbstractIncomingMessage, MessageRejected]] = []
        for message, decoded in ready:
            credentials = (decoded.key, decoded.store)
            if credentials not in stores:
                try:
                    stores[credentials] = await self._store_for(conn, decoded)
                except MessageRejected as exc:
                    stores[credentials] = exc
            store = stores[credentials]
            if isinstance(store, MessageRejected):
                refused.append((message, store))
                continue
            event = decoded.event
            if event.id is None and decoded.idempotency_key is not None:
                event = event.model_copy(update={"id": decoded.idempotency_key})
            groups.setdefault(store, []).append((message, event))
        published: list[tuple[AbstractIncomingMessage, Published]] = []
        for store_id, group in groups.items():
            results = await event_service.publish(
                conn,
                self.catalogue,
                store_id,
                [event for _, event in group],
                batch=True,
                idempotency_key=None,
                max_event_bytes=self.settings.max_event_bytes,
                # Each message is a publish request of its own: its limit, once per message.
                max_jobs=self.settings.max_jobs_per_publish * len(group),
            )
            published += zip([message for message, _ in group], results, strict=True)
        return published, refused

    async def _handle_one(self, message: AbstractIncomingMessage, decoded: IngestMessage) -> None:
        try:
            async with self.engine.begin() as conn:
                store_id = await self._store_for(conn, decoded)
                [result] = await event_service.publish(
                    conn,
                    self.catalogue,
                    store_id,
                    [decoded.event],
                    batch=False,
                    idempotency_key=decoded.idempotency_key,
                    max_event_bytes=self.settings.max_event_bytes,
                    max_jobs=self.settings.max_jobs_per_publish,
                    key_name="message_id",
                )
        except MessageRejected as exc:
            await self._dead_letter(message, exc.reason)
            return
        except DomainError as exc:
            await self._dead_letter(message, exc.detail)
            return
        except Exception as exc:
            if storage_unavailable(exc):
                distrust_connections()
                await self._requeue([message], exc)
                return
            _log(message).exception("amqp_message_failed")
            await self._dead_letter(
                message, f"the hub failed to store it ({type(exc).__name__}); see its logs"
            )
            return
        await self._stored(message, result)

    async def _stored(self, message: AbstractIncomingMessage, result: Published) -> None:
        outcome = "stored" if result.created else "repeat"
        MESSAGES.labels(outcome).inc()
        _log(message).debug("amqp_event_" + outcome, event_id=str(result.event.id))
        await self._settle(message)

    async def _requeue(self, messages: list[AbstractIncomingMessage], exc: Exception) -> None:
        """The database is down: give the messages back after a pause, never dead-letter them."""
        log.warning("amqp_storage_unavailable", error=type(exc).__name__, messages=len(messages))
        await asyncio.sleep(self.settings.amqp_requeue_delay)
        for message in messages:
            await self._settle(message, requeue=True)
        MESSAGES.labels("requeued").inc(len(messages))

    async def _store_for(self, conn: AsyncConnection, message: IngestMessage) -> UUID:
        """The store the message publishes to, authorised by its key or the queue's binding."""
        if message.key is not None:
            try:
                principal = await access.authenticate(
                    conn, message.key, Permission.PUBLISH, store=message.store
                )
            except Unauthenticated:
                raise MessageRejected(f"the {KEY_HEADER} header is not a valid API key") from None
            except PermissionDenied as exc:
                if exc.other_store:
                    raise MessageRejected(
                        "only admin keys may publish to another store (x-hub-store)"
                    ) from None
                raise MessageRejected(
                    f"the key's role ({exc.role}) does not allow publishing"
                ) from None
            except UnknownStore as exc:
                raise MessageRejected(f"there is no store named {exc.name!r}") from None
            return principal.store_id
        trusted = self.settings.amqp_store
        if trusted is None:
            raise MessageRejected(
                f"the message has no {KEY_HEADER} header and this hub binds its queue to no "
                "store (HUB_AMQP_STORE)"
            )
        if message.store is not None and message.store != trusted:
            raise MessageRejected(
                f"this queue is bound to the store {trusted!r}; x-hub-store names "
                f"{message.store!r} without an {KEY_HEADER}"
            )
        if self._trusted_store is None:
            self._trusted_store = (await stores.ensure_store(conn, trusted)).id
        return self._trusted_store

    async def _dead_letter(self, message: AbstractIncomingMessage, reason: str) -> None:
        """Publish a copy with the reason to the dead-letter exchange (confirmed), then ack."""
        reason = reason if len(reason) <= MAX_REASON else reason[: MAX_REASON - 1] + "…"
        _log(message).warning("amqp_message_rejected", reason=reason)
        headers: dict[str, Any] = {
            k: v for k, v in _headers(message.headers).items() if k != KEY_HEADER
        }
        headers[REASON_HEADER] = reason
        headers["x-hub-original-exchange"] = message.exchange or ""
        headers["x-hub-original-routing-key"] = message.routing_key or ""
        copy = aio_pika.Message(
            message.body,
            headers=headers,
            content_type=message.content_type,
            content_encoding=message.content_encoding,
            message_id=message.message_id,
            correlation_id=message.correlation_id,
            timestamp=message.timestamp,
            app_id=message.app_id,
            type=message.type,
            delivery_mode=aio_pika.DeliveryMode.PERSISTENT,
        )
        try:
            assert self._dead_exchange is not None
            await self._dead_exchange.publish(copy, routing_key=message.routing_key or "")
        except Exception as exc:
            _log(message).error("amqp_dead_letter_failed", error=str(exc) or type(exc).__name__)
            await asyncio.sleep(self.settings.amqp_requeue_delay)
            await self._settle(message, requeue=True)
            MESSAGES.labels("requeued").inc()
            return
        MESSAGES.labels("rejected").inc()
        await self._settle(message)

    async def _settle(
        self, message: AbstractIncomingMessage, *, requeue: bool | None = None
    ) -> None:
        """Ack (`requeue` None) or nack. A lost channel is not an error: the broker redelivers
        every unacked message, and a stored one is recognised by its client id."""
        try:
            if requeue is None:
                await message.ack()
            else:
                await message.nack(requeue=requeue)
        except Exception as exc:
            _log(message).warning("amqp_settle_failed", error=str(exc) or type(exc).__name__)


def _headers(headers: Mapping[str, Any] | None) -> dict[str, Any]:
    return dict(headers or {})


def _log(message: AbstractIncomingMessage) -> Any:
    return log.bind(message_id=message.message_id, routing_key=message.routing_key)
