"""Micro-batching: concurrent sends to one queue share one `SendMessageBatch`.

**Batching.** `deliver` is called once per job, concurrently. Calls for the same client and queue
made within `batch_window` seconds of the first (the dispatcher starts every job of one claim in
the same event-loop turn) share one `SendMessageBatch` of up to 10 entries and 256 KiB; a lone
call uses `SendMessage`. Each job still gets its own result and duration. When SQS refuses a batch
as a whole for a reason that may be one entry's (an invalid parameter rather than credentials, a
missing queue, throttling or a server error), its entries are re-sent one by one, so that one bad
message never fails its neighbours.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field
from typing import Any

import structlog
from botocore.exceptions import BotoCoreError, ClientError  # type: ignore[import-untyped]

from deliverers.sqs.client import ClientKey
from deliverers.sqs.errors import Failed, botocore_error, client_error, entry_error
from deliverers.sqs.message import SqsMessage

logger = structlog.get_logger(__name__)

#: SQS's limits for all the messages of one batch together.
MAX_BATCH_BYTES = 256 * 1024
MAX_BATCH_ENTRIES = 10

_INTERRUPTED = "The send to SQS was interrupted or failed unexpectedly"


@dataclass(frozen=True, slots=True)
class Sent:
    """A message SQS took."""

    message_id: str
    sequence_number: str | None
    status_code: int | None


Outcome = Sent | Failed


@dataclass(slots=True)
class _Pending:
    message: SqsMessage
    future: asyncio.Future[Outcome]


@dataclass(slots=True)
class _Lane:
    """Messages waiting to go to one queue through one client, and when they will."""

    client: Any
    key: ClientKey
    queue_url: str
    entries: list[_Pending] = field(default_factory=list)
    size: int = 0
    timer: asyncio.TimerHandle | None = None


class Batches:
    """The lanes of messages waiting to be sent, and the sends in flight; see the docstring.

    `timeout` is the clients' (for the text of a timed-out send).
    """

    def __init__(self, *, window: float, timeout: float) -> None:
        self._window = window
        self._timeout = timeout
        self._lanes: dict[tuple[ClientKey, str], _Lane] = {}
        self._sending: set[asyncio.Task[None]] = set()

    def enqueue(
        self, key: ClientKey, client: Any, queue_url: str, message: SqsMessage
    ) -> asyncio.Future[Outcome]:
        """Queue `message` for `queue_url`; the future settles once SQS has answered for it."""
        lane_key = (key, queue_url)
        lane = self._lanes.get(lane_key)
        if lane is not None and lane.size + message.size > MAX_BATCH_BYTES:
            self._flush(lane_key)
            lane = None
        if lane is None:
            lane = self._lanes[lane_key] = _Lane(client, key, queue_url)
        future: asyncio.Future[Outcome] = asyncio.get_running_loop().create_future()
        lane.entries.append(_Pending(message, future))
        lane.size += message.size
        if len(lane.entries) >= MAX_BATCH_ENTRIES:
            self._flush(lane_key)
        elif lane.timer is None:
            lane.timer = asyncio.get_running_loop().call_later(self._window, self._flush, lane_key)
        return future

    async def drain(self) -> None:
        """Send what is waiting now and let every send in flight finish."""
        for lane_key in list(self._lanes):
            self._flush(lane_key)
        if self._sending:
            await asyncio.wait(list(self._sending))

    def _flush(self, lane_key: tuple[ClientKey, str]) -> None:
        lane = self._lanes.pop(lane_key, None)
        if lane is None:
            return
        if lane.timer is not None:
            lane.timer.cancel()
        task = asyncio.create_task(self._send(lane), name="hub-sqs-send")
        self._sending.add(task)
        task.add_done_callback(self._sending.discard)

    async def _send(self, lane: _Lane) -> None:
        """Send a lane's messages and settle every one's future, whatever happens."""
        entries = lane.entries
        try:
            if len(entries) == 1:
                _settle(entries[0], await self._send_one(lane, entries[0].message))
            else:
                await self._send_batch(lane)
        except Exception:
            logger.exception("sqs_send_crashed", queue=lane.queue_url, entries=len(entries))
        finally:
            for pending in entries:
                _settle(pending, Failed(_INTERRUPTED))

    async def _send_one(self, lane: _Lane, message: SqsMessage) -> Outcome:
        try:
            answer = await lane.client.send_message(QueueUrl=lane.queue_url, **message.params())
        except ClientError as error:
            return client_error(error, lane.queue_url, lane.key)
        except BotoCoreError as error:
            return botocore_error(error, lane.key.endpoint, self._timeout)
        return Sent(
            str(answer["MessageId"]),
            answer.get("SequenceNumber"),
            answer.get("ResponseMetadata", {}).get("HTTPStatusCode"),
        )

    async def _send_batch(self, lane: _Lane) -> None:
        entries = lane.entries
        request = [{"Id": str(i), **p.message.params()} for i, p in enumerate(entries)]
        try:
            answer = await lane.client.send_message_batch(QueueUrl=lane.queue_url, Entries=request)
        except ClientError as error:
            failure = client_error(error, lane.queue_url, lane.key)
            if failure.whole_queue:
                for pending in entries:
                    _settle(pending, failure)
                return
            logger.info(
                "sqs_batch_refused_sending_alone", detail=failure.detail, entries=len(entries)
            )
            outcomes = await asyncio.gather(*(self._send_one(lane, p.message) for p in entries))
            for pending, outcome in zip(entries, outcomes, strict=True):
                _settle(pending, outcome)
            return
        except BotoCoreError as error:
            failure = botocore_error(error, lane.key.endpoint, self._timeout)
            for pending in entries:
                _settle(pending, failure)
            return
        status = answer.get("ResponseMetadata", {}).get("HTTPStatusCode")
        for sent in answer.get("Successful", []):
            outcome = Sent(str(sent["MessageId"]), sent.get("SequenceNumber"), status)
            _settle(entries[int(sent["Id"])], outcome)
        for failed in answer.get("Failed", []):
            _settle(entries[int(failed["Id"])], entry_error(failed, lane.key))
        for pending in entries:
            _settle(pending, Failed("SQS's answer to the batch did not mention this message"))


def _settle(pending: _Pending, outcome: Outcome) -> None:
    if not pending.future.done():
        pending.future.set_result(outcome)


__all__ = ["MAX_BATCH_BYTES", "MAX_BATCH_ENTRIES", "Batches", "Outcome", "Sent"]
