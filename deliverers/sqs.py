"""The AWS SQS deliverer: each job goes to the integration's queue as a CloudEvent message.

**Where.** The endpoint is the queue URL's scheme and host (`https://sqs.eu-west-1.amazonaws.com`,
or `http://127.0.0.1:4566` for moto or ElasticMQ), so one code path serves AWS and compatible
servers. One aiobotocore client per (access key, secret, region, endpoint) is created on first
use and kept until `aclose`, with connect and read timeouts of `timeout` seconds each and at most
`max_attempts` tries per request (default 2: one quick retry by botocore, for a dropped connection
or a throttle; the hub's own retries are the durable ones).

**What.** The body is `build_cloudevent`'s document. Three String message attributes let
consumers filter without parsing the body:

* `hub-event-type`: the event key (`order.paid`), the CloudEvent's `type`;
* `hub-job-id`: the job id, the CloudEvent's `id`, the same on every attempt;
* `hub-attempt`: the attempt number, `1` for the first.

FIFO queues (the URL ends with `.fifo`) get `MessageGroupId` = the integration id, or, when the
configuration has a `message_group_key` such as `data.customer.id`, the string or number at that
dotted path of the payload (the integration id when it is missing, null, empty or not a scalar;
SQS itself judges the value's characters and length), and `MessageDeduplicationId` =
`{job_id}-{attempt}`.

**Size.** Measured as SQS does: the UTF-8 body plus every attribute's name, type and value. Over
256 KiB, `included` is replaced by `{"meta": {"includes_elided": true}}`; if that is still too
large the attempt fails without calling SQS.

**Batching.** `deliver` is called once per job, concurrently. Calls for the same client and queue
made within `batch_window` seconds of the first (the dispatcher starts every job of one claim in
the same event-loop turn) share one `SendMessageBatch` of up to 10 entries and 256 KiB; a lone
call uses `SendMessage`. Each job still gets its own result and duration. When SQS refuses a batch
as a whole for a reason that may be one entry's (an invalid parameter rather than credentials, a
missing queue, throttling or a server error), its entries are re-sent one by one, so that one bad
message never fails its neighbours.

**SSRF guard.** The endpoint's host names are resolved through `hub.ssrf`'s `GuardedResolver`
(the connection goes to the vetted addresses), and a literal address is judged before the first
request; a refused endpoint is a failed attempt saying why.

**Results.** Success: `body` is `MessageId: …` (plus `SequenceNumber: …` on FIFO queues) and
`status_code` SQS's HTTP status. Failure: a readable `error_detail` naming the AWS error code, and
`status_code` the HTTP status of SQS's error answer; it is None when there was no answer (the
endpoint unreachable, a timeout) and for an entry that failed inside an accepted batch (SQS gives
such entries no status of their own). Secrets never appear in a detail or a log line: the secret
key is scrubbed and the access key id shown masked.
"""

from __future__ import annotations

import asyncio
import contextlib
import re
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, ClassVar
from urllib.parse import urlsplit

import orjson
import structlog
from aiobotocore.config import AioConfig
from aiobotocore.session import AioSession, get_session
from botocore.exceptions import (  # type: ignore[import-untyped]
    BotoCoreError,
    ClientError,
    ConnectTimeoutError,
    EndpointConnectionError,
    ReadTimeoutError,
)

from deliverers.base import Delivery, DeliveryResult, truncate_body
from deliverers.cloudevent import build_cloudevent, encode
from deliverers.config import SqsConfig, mask
from hub.errors import TargetRefused
from hub.ssrf import Network, SsrfGuard

logger = structlog.get_logger(__name__)

ATTR_EVENT_TYPE = "hub-event-type"
ATTR_JOB_ID = "hub-job-id"
ATTR_ATTEMPT = "hub-attempt"

#: SQS's limit for one message, and for all the messages of one batch together.
MAX_MESSAGE_BYTES = 256 * 1024
MAX_BATCH_BYTES = 256 * 1024
MAX_BATCH_ENTRIES = 10
INCLUDES_ELIDED: dict[str, Any] = {"meta": {"includes_elided": True}}

_NONEXISTENT_QUEUE = {"AWS.SimpleQueueService.NonExistentQueue", "QueueDoesNotExist"}
_BAD_KEY_ID = {"InvalidClientTokenId", "UnrecognizedClientException", "InvalidAccessKeyId"}
_BAD_SIGNATURE = {"SignatureDoesNotMatch", "IncompleteSignature"}
_EXPIRED = {"ExpiredToken", "ExpiredTokenException", "RequestExpired"}
_ACCESS_DENIED = {"AccessDenied", "AccessDeniedException", "KMS.AccessDeniedException"}
_THROTTLED = {
    "Throttling",
    "ThrottlingException",
    "RequestThrottled",
    "RequestThrottledException",
    "TooManyRequestsException",
    "KMS.ThrottlingException",
}
#: Batch errors that every entry would meet alone as well: not worth re-sending one by one.
_WHOLE_QUEUE = _NONEXISTENT_QUEUE | _BAD_KEY_ID | _BAD_SIGNATURE | _EXPIRED | _ACCESS_DENIED
_WHOLE_QUEUE |= _THROTTLED

#: Code points XML 1.0 (and so SQS) refuses; JSON can carry them escaped.
_NONCHARACTERS = str.maketrans({"\ufffe": "\\ufffe", "\uffff": "\\uffff"})
_XML_ERROR = re.compile(r"<Code>([^<]+)</Code>\s*<Message>([^<]*)</Message>")
_REASON_LIMIT = 300
_SCRUB_MIN = 8
_INTERRUPTED = "The send to SQS was interrupted or failed unexpectedly"


# --- the message -------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class SqsMessage:
    """One job as SQS will receive it; `params()` are `SendMessage`'s arguments."""

    body: str
    attributes: dict[str, dict[str, str]]
    group_id: str | None = None
    deduplication_id: str | None = None
    size: int = 0
    """Bytes as SQS counts them: the body plus attribute names, types and values."""
    includes_elided: bool = False

    def params(self) -> dict[str, Any]:
        params: dict[str, Any] = {"MessageBody": self.body, "MessageAttributes": self.attributes}
        if self.group_id is not None:
            params["MessageGroupId"] = self.group_id
        if self.deduplication_id is not None:
            params["MessageDeduplicationId"] = self.deduplication_id
        return params


class MessageTooLarge(ValueError):
    """The message is over `MAX_MESSAGE_BYTES` even with `included` elided."""


def sqs_size(body: str, attributes: dict[str, dict[str, str]]) -> int:
    """A message's size as SQS measures it against its limit."""
    size = len(body.encode())
    for name, value in attributes.items():
        size += len(name.encode()) + len(value["DataType"].encode())
        size += len(value.get("StringValue", "").encode())
    return size


def is_fifo(queue_url: str) -> bool:
    return urlsplit(queue_url).path.endswith(".fifo")


def endpoint_of(queue_url: str) -> str:
    """The endpoint a queue URL is served from: its scheme and host[:port]."""
    parts = urlsplit(queue_url)
    return f"{parts.scheme}://{parts.netloc}"


def message_group_id(payload: dict[str, Any], key: str | None, default: str) -> str:
    """The value at dotted path `key` of `payload` if it is a non-empty string or a number."""
    if not key:
        return default
    value: Any = payload
    for part in key.split("."):
        if not isinstance(value, dict) or part not in value:
            return default
        value = value[part]
    if isinstance(value, bool) or not isinstance(value, str | int | float):
        return default
    return str(value) or default


def build_message(delivery: Delivery, config: SqsConfig, *, source: str) -> SqsMessage:
    """The SQS message of one delivery; raises `MessageTooLarge`."""
    attributes = {
        ATTR_EVENT_TYPE: {"DataType": "String", "StringValue": delivery.triggered_by},
        ATTR_JOB_ID: {"DataType": "String", "StringValue": str(delivery.job_id)},
        ATTR_ATTEMPT: {"DataType": "String", "StringValue": str(delivery.attempt)},
    }
    document = build_cloudevent(delivery, source=source)
    body = _json(document)
    size = sqs_size(body, attributes)
    elided = False
    if size > MAX_MESSAGE_BYTES and "included" in document:
        document["included"] = INCLUDES_ELIDED
        body, elided = _json(document), True
        size = sqs_size(body, attributes)
    if size > MAX_MESSAGE_BYTES:
        how = " even with `included` elided" if elided else ""
        raise MessageTooLarge(
            f"The message is {size} bytes{how}, over SQS's limit of {MAX_MESSAGE_BYTES} bytes; "
            "it was not sent"
        )
    group_id = dedup_id = None
    if is_fifo(config.url):
        default = str(delivery.target.id)
        group_id = message_group_id(delivery.payload, config.message_group_key, default)
        dedup_id = f"{delivery.job_id}-{delivery.attempt}"
    return SqsMessage(body, attributes, group_id, dedup_id, size, elided)


def _json(document: dict[str, Any]) -> str:
    return encode(document).decode().translate(_NONCHARACTERS)


# --- outcomes and error texts ------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class _ClientKey:
    access_key_id: str
    secret_access_key: str = field(repr=False)
    region: str
    endpoint: str


@dataclass(frozen=True, slots=True)
class _Sent:
    message_id: str
    sequence_number: str | None
    status_code: int | None


@dataclass(frozen=True, slots=True)
class _Failed:
    detail: str
    status_code: int | None = None
    whole_queue: bool = True
    """Whether every message to this queue would fail the same way (no point re-sending alone)."""


_Outcome = _Sent | _Failed


def _client_error(error: Any, queue_url: str, key: _ClientKey) -> _Failed:
    response: dict[str, Any] = getattr(error, "response", {}) or {}
    info: dict[str, Any] = response.get("Error", {}) or {}
    status = response.get("ResponseMetadata", {}).get("HTTPStatusCode")
    # Over the JSON protocol `Code` is the query-compatible code
    # (`AWS.SimpleQueueService.NonExistentQueue`) and `QueryErrorCode` the error's shape name
    # (`QueueDoesNotExist`); either may be what a caller knows.
    code = str(info.get("Code") or info.get("QueryErrorCode") or "")
    codes = {code, str(info.get("QueryErrorCode") or "")}
    message = str(info.get("Message") or "")
    # Some SQS-compatible servers (moto) answer JSON requests with the query protocol's XML
    # error document, which botocore then reports as code "403" with the XML as the message.
    if found := _XML_ERROR.search(message):
        code, message = found.group(1), found.group(2)
        codes = {code}
    return _failed_for_codes(code, codes, _reason(message), status, queue_url, key)


def _failed_for_codes(
    code: str, codes: set[str], message: str, status: int | None, queue_url: str, key: _ClientKey
) -> _Failed:
    key_id = mask(key.access_key_id)
    if codes & _NONEXISTENT_QUEUE:
        detail = f"The SQS queue {queue_url} does not exist in region {key.region} ({code})"
    elif codes & _BAD_KEY_ID:
        detail = (
            f"AWS does not recognise the access key id {key_id}: check aws_access_key_id ({code})"
        )
    elif codes & _BAD_SIGNATURE:
        detail = (
            f"AWS rejected the request signature: aws_secret_access_key does not match the "
            f"access key id {key_id} ({code})"
        )
    elif codes & _EXPIRED:
        detail = f"AWS rejected the credentials of access key id {key_id} as expired ({code})"
    elif codes & _ACCESS_DENIED:
        detail = (
            f"Access denied: access key id {key_id} may not send messages to {queue_url} ({code})"
        )
        if message:
            detail += f": {message}"
    elif codes & _THROTTLED:
        detail = f"SQS throttled the request to {queue_url} ({code})"
    elif code.isdigit() or not code:
        # No AWS error code: whatever answered is probably not SQS (a proxy, a wrong URL).
        detail = f"The endpoint {key.endpoint} answered HTTP {status or code or '?'}"
        detail += f": {message}" if message else ", not as SQS does"
    else:
        verb = "failed to take" if status is not None and status >= 500 else "refused"
        detail = f"SQS {verb} the message ({code})" + (f": {message}" if message else "")
    whole = bool(codes & _WHOLE_QUEUE) or status is None or status >= 500
    return _Failed(_scrub(detail, key), status, whole_queue=whole)


def _botocore_error(error: BaseException, endpoint: str, timeout: float) -> _Failed:
    if isinstance(error, ConnectTimeoutError):
        return _Failed(f"Timed out after {timeout} s connecting to the SQS endpoint {endpoint}")
    if isinstance(error, ReadTimeoutError):
        return _Failed(f"Timed out after {timeout} s waiting for the SQS endpoint {endpoint}")
    if isinstance(error, EndpointConnectionError):
        cause = getattr(error, "kwargs", {}).get("error")
        refused = getattr(cause, "os_error", None)
        if isinstance(refused, TargetRefused):
            return _Failed(refused.reason)
        if isinstance(getattr(cause, "os_error", None), ConnectionRefusedError):
            return _Failed(f"Connection refused by the SQS endpoint {endpoint}")
        reason = f": {_reason(str(cause))}" if cause is not None else ""
        return _Failed(f"Could not connect to the SQS endpoint {endpoint}{reason}")
    return _Failed(f"Could not send the message to SQS at {endpoint}: {_reason(str(error))}")


def _scrub(text: str, key: _ClientKey) -> str:
    """`text` without the secret key, and with the access key id masked."""
    return _scrub_values(text, key.access_key_id, key.secret_access_key)


def _scrub_values(text: str, access_key_id: str, secret_access_key: str) -> str:
    # Values this short are no secret worth the name, and replacing them would garble the text.
    if len(secret_access_key) >= _SCRUB_MIN:
        text = text.replace(secret_access_key, "****")
    if len(access_key_id) >= _SCRUB_MIN:
        text = text.replace(access_key_id, mask(access_key_id))
    return text


def _reason(text: str) -> str:
    text = " ".join(text.split())
    return text if len(text) <= _REASON_LIMIT else text[: _REASON_LIMIT - 1] + "…"


# --- the deliverer -----------------------------------------------------------------------------


@dataclass(slots=True)
class _Pending:
    message: SqsMessage
    future: asyncio.Future[_Outcome]


@dataclass(slots=True)
class _Lane:
    """Messages waiting to go to one queue through one client, and when they will."""

    client: Any
    key: _ClientKey
    queue_url: str
    entries: list[_Pending] = field(default_factory=list)
    size: int = 0
    timer: asyncio.TimerHandle | None = None


class SqsDeliverer:
    """Delivers jobs to `aws_sqs` integrations; see the module docstring.

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
        self._timeout = timeout
        self._batch_window = batch_window
        self._config = AioConfig(
            connect_timeout=timeout,
            read_timeout=timeout,
            # botocore's `max_attempts` counts retries only; `total_max_attempts` counts tries.
            retries={"total_max_attempts": max_attempts, "mode": "standard"},
            max_pool_connections=max_pool_connections,
            user_agent_extra="hub-sqs",
            connector_args={"resolver": self._guard.resolver()},
        )
        self._given_session = session
        self._session: AioSession | None = None
        self._stack: contextlib.AsyncExitStack | None = None
        self._clients: dict[_ClientKey, Any] = {}
        self._creating: dict[_ClientKey, asyncio.Future[Any]] = {}
        self._lanes: dict[tuple[_ClientKey, str], _Lane] = {}
        self._sending: set[asyncio.Task[None]] = set()

    async def open(self) -> None:
        """Prepare the session; clients are created on first use of each credential set."""
        if self._stack is not None:
            return
        self._session = self._given_session or get_session()
        self._stack = contextlib.AsyncExitStack()

    async def aclose(self) -> None:
        """Send what is waiting, let sends in flight finish, close every client."""
        stack, self._stack = self._stack, None
        if stack is None:
            return
        for lane_key in list(self._lanes):
            self._flush(lane_key)
        if self._sending:
            await asyncio.wait(list(self._sending))
        for creating in self._creating.values():
            creating.cancel()
        self._creating.clear()
        self._clients.clear()
        await stack.aclose()

    async def deliver(self, delivery: Delivery) -> DeliveryResult:
        """Send one attempt of `delivery`; never raises for a delivery failure."""
        if self._stack is None:
            raise RuntimeError("SqsDeliverer.deliver() called before open()")
        started = time.perf_counter()
        target = delivery.target
        log = logger.bind(
            job_id=str(delivery.job_id),
            integration_id=str(target.id),
            attempt=delivery.attempt,
            triggered_by=delivery.triggered_by,
        )
        config = target.configuration
        if not isinstance(config, SqsConfig):
            detail = (
                f"Could not deliver to SQS: the integration is configured as "
                f"{target.integration_type!r}, not as aws_sqs"
            )
            return self._failed(log, started, _Failed(detail), None)
        log = log.bind(queue=config.url)

        try:
            message = build_message(delivery, config, source=self._source)
        except MessageTooLarge as error:
            return self._failed(log, started, _Failed(str(error)), config)
        except orjson.JSONEncodeError as error:
            detail = f"Could not encode the event as JSON: {error}"
            return self._failed(log, started, _Failed(detail), config)
        if message.includes_elided:
            log.info("sqs_includes_elided", size=message.size)

        key = _ClientKey(
            config.aws_access_key_id,
            config.aws_secret_access_key,
            config.region,
            endpoint_of(config.url),
        )
        try:  # names are judged by the connector's resolver; it is not asked about addresses
            self._guard.check_literal(urlsplit(config.url).hostname or "")
        except TargetRefused as refused:
            return self._failed(log, started, _Failed(refused.reason), config)
        try:
            client = await self._client(key)
        except Exception as error:  # invalid endpoint or region: botocore raises several types
            detail = f"Could not create an SQS client for {key.endpoint}: {_reason(str(error))}"
            return self._failed(log, started, _Failed(detail), config)

        outcome = await self._enqueue(key, client, config.url, message)
        if isinstance(outcome, _Failed):
            return self._failed(log, started, outcome, config)
        duration = time.perf_counter() - started
        body = f"MessageId: {outcome.message_id}"
        if outcome.sequence_number is not None:
            body += f", SequenceNumber: {outcome.sequence_number}"
        log.info("sqs_delivered", message_id=outcome.message_id, duration=duration)
        return DeliveryResult(
            succeeded=True,
            duration=duration,
            status_code=outcome.status_code,
            body=truncate_body(body),
        )

    def _failed(
        self, log: Any, started: float, failure: _Failed, config: SqsConfig | None
    ) -> DeliveryResult:
        detail = failure.detail
        if config is not None:
            # Error texts come partly from AWS and libraries; keep the credentials out regardless.
            detail = _scrub_values(detail, config.aws_access_key_id, config.aws_secret_access_key)
        duration = time.perf_counter() - started
        log.warning(
            "sqs_failed", error_detail=detail, status_code=failure.status_code, duration=duration
        )
        return DeliveryResult(
            succeeded=False, duration=duration, status_code=failure.status_code, error_detail=detail
        )

    # --- clients -------------------------------------------------------------------------------

    async def _client(self, key: _ClientKey) -> Any:
        client = self._clients.get(key)
        if client is not None:
            return client
        creating = self._creating.get(key)
        if creating is None:
            # One creation per key, shared by every caller: all of them resume together, in
            # the same loop turn, and so still meet in one batch.
            creating = asyncio.ensure_future(self._create_client(key))
            self._creating[key] = creating
        return await asyncio.shield(creating)

    async def _create_client(self, key: _ClientKey) -> Any:
        try:
            assert self._session is not None
            assert self._stack is not None
            client = await self._stack.enter_async_context(
                self._session.create_client(
                    "sqs",
                    region_name=key.region,
                    endpoint_url=key.endpoint,
                    aws_access_key_id=key.access_key_id,
                    aws_secret_access_key=key.secret_access_key,
                    config=self._config,
                )
            )
            self._clients[key] = client
            return client
        finally:
            self._creating.pop(key, None)

    # --- micro-batching ------------------------------------------------------------------------

    def _enqueue(
        self, key: _ClientKey, client: Any, queue_url: str, message: SqsMessage
    ) -> asyncio.Future[_Outcome]:
        lane_key = (key, queue_url)
        lane = self._lanes.get(lane_key)
        if lane is not None and lane.size + message.size > MAX_BATCH_BYTES:
            self._flush(lane_key)
            lane = None
        if lane is None:
            lane = self._lanes[lane_key] = _Lane(client, key, queue_url)
        future: asyncio.Future[_Outcome] = asyncio.get_running_loop().create_future()
        lane.entries.append(_Pending(message, future))
        lane.size += message.size
        if len(lane.entries) >= MAX_BATCH_ENTRIES:
            self._flush(lane_key)
        elif lane.timer is None:
            lane.timer = asyncio.get_running_loop().call_later(
                self._batch_window, self._flush, lane_key
            )
        return future

    def _flush(self, lane_key: tuple[_ClientKey, str]) -> None:
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
                _settle(pending, _Failed(_INTERRUPTED))

    async def _send_one(self, lane: _Lane, message: SqsMessage) -> _Outcome:
        try:
            answer = await lane.client.send_message(QueueUrl=lane.queue_url, **message.params())
        except ClientError as error:
            return _client_error(error, lane.queue_url, lane.key)
        except BotoCoreError as error:
            return _botocore_error(error, lane.key.endpoint, self._timeout)
        return _Sent(
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
            failure = _client_error(error, lane.queue_url, lane.key)
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
            failure = _botocore_error(error, lane.key.endpoint, self._timeout)
            for pending in entries:
                _settle(pending, failure)
            return
        status = answer.get("ResponseMetadata", {}).get("HTTPStatusCode")
        for sent in answer.get("Successful", []):
            outcome = _Sent(str(sent["MessageId"]), sent.get("SequenceNumber"), status)
            _settle(entries[int(sent["Id"])], outcome)
        for failed in answer.get("Failed", []):
            code = str(failed.get("Code") or "")
            message = _reason(str(failed.get("Message") or ""))
            detail = f"SQS refused the message ({code})" + (f": {message}" if message else "")
            if not failed.get("SenderFault", True):
                detail += "; an error on AWS's side"
            _settle(entries[int(failed["Id"])], _Failed(_scrub(detail, lane.key)))
        for pending in entries:
            _settle(pending, _Failed("SQS's answer to the batch did not mention this message"))


def _settle(pending: _Pending, outcome: _Outcome) -> None:
    if not pending.future.done():
        pending.future.set_result(outcome)


__all__ = [
    "ATTR_ATTEMPT",
    "ATTR_EVENT_TYPE",
    "ATTR_JOB_ID",
    "INCLUDES_ELIDED",
    "MAX_MESSAGE_BYTES",
    "MessageTooLarge",
    "SqsDeliverer",
    "SqsMessage",
    "build_message",
    "endpoint_of",
    "is_fifo",
    "message_group_id",
    "sqs_size",
]
