"""One job as an SQS message: a CloudEvent body, three attributes, FIFO ids, and SQS's size rule.

**What.** The body is `build_cloudevent`'s document. Three String message attributes let
consumers filter without parsing the body:

* `hub-event-type`: the event key (`order.paid`), the CloudEvent's `type`;
* `hub-job-id`: the job id, the CloudEvent's `id`, the same on every attempt;
* `hub-attempt`: the attempt number, `1` for the first.

FIFO queues (the URL ends with `.fifo`) get `MessageGroupId` = the integration id, or, when the
configuration has a `message_group_key` such as `data.customer.id`, the string or number at that
dotted path of the payload (the integration id when it is missing, null, empty or not a scalar;
SQS itself judges the value's characters and length), or else, for a job of an integration with
an `ordering_key`, the job's key value (`Delivery.ordering_value`: the hub delivers one job of a
value at a time, and the queue keeps them in that order); and `MessageDeduplicationId` =
`{job_id}-{attempt}`.

**Size.** Measured as SQS does: the UTF-8 body plus every attribute's name, type and value. Over
256 KiB, `included` is replaced by `{"meta": {"includes_elided": true}}`; if that is still too
large the attempt fails without calling SQS.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

from deliverers.base import Delivery
from deliverers.cloudevent import build_cloudevent, encode
from deliverers.config import SqsConfig

ATTR_EVENT_TYPE = "hub-event-type"
ATTR_JOB_ID = "hub-job-id"
ATTR_ATTEMPT = "hub-attempt"

#: SQS's limit for one message.
MAX_MESSAGE_BYTES = 256 * 1024
INCLUDES_ELIDED: dict[str, Any] = {"meta": {"includes_elided": True}}

#: Code points XML 1.0 (and so SQS) refuses; JSON can carry them escaped.
_NONCHARACTERS = str.maketrans({"\ufffe": "\\ufffe", "\uffff": "\\uffff"})


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
        if config.message_group_key is None and delivery.ordering_value is not None:
            group_id = delivery.ordering_value
        else:
            group_id = message_group_id(delivery.payload, config.message_group_key, default)
        dedup_id = f"{delivery.job_id}-{delivery.attempt}"
    return SqsMessage(body, attributes, group_id, dedup_id, size, elided)


def _json(document: dict[str, Any]) -> str:
    return encode(document).decode().translate(_NONCHARACTERS)


__all__ = [
    "ATTR_ATTEMPT",
    "ATTR_EVENT_TYPE",
    "ATTR_JOB_ID",
    "INCLUDES_ELIDED",
    "MAX_MESSAGE_BYTES",
    "MessageTooLarge",
    "SqsMessage",
    "build_message",
    "endpoint_of",
    "is_fifo",
    "message_group_id",
    "sqs_size",
]
