"""Reading one AMQP message as one event to publish: body, routing key, message id, headers.

Pure: no broker, no database. The body is what `POST /v2/events` takes as `data` (one event
object), bare or in its `{"data": {...}}` envelope, validated by the same pydantic model; the
publish rules themselves (keys, payload size, idempotency) stay in `hub.services.events`.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

import orjson
from pydantic import ValidationError

from hub.errors import MessageRejected
from hub.services.inputs import DEPTH_PROBLEM, EventIn, nesting_problem
from hub.services.validation import problems

STORE_HEADER = "x-hub-store"
KEY_HEADER = "x-hub-key"
REASON_HEADER = "x-hub-rejected-reason"
#: Like the `Idempotency-Key` header: the message id is stored as the event's client id.
MAX_MESSAGE_ID = 255
#: A dead letter's reason is cut to this many characters (headers are not for essays).
MAX_REASON = 1000


@dataclass(frozen=True, slots=True)
class IngestMessage:
    """A message read as an event: what to publish, under which client id, for which store."""

    event: EventIn
    idempotency_key: str | None
    """The AMQP `message_id` when the body has no `id` (the body's `id` wins when both agree)."""
    store: str | None
    """The `x-hub-store` header: the store's name."""
    key: str | None
    """The `x-hub-key` header: an API key allowed to publish."""


def _header(headers: Mapping[str, object], name: str) -> str | None:
    value = headers.get(name)
    if value is None:
        return None
    if isinstance(value, bytes):
        try:
            value = value.decode()
        except UnicodeDecodeError:
            raise MessageRejected(f"the {name} header is not UTF-8 text") from None
    if not isinstance(value, str) or not value.strip():
        raise MessageRejected(f"the {name} header must be a non-empty string")
    return value.strip()


def decode(
    body: bytes,
    *,
    routing_key: str | None,
    message_id: str | None,
    headers: Mapping[str, object],
    max_body_bytes: int,
) -> IngestMessage:
    """The event a message carries; `MessageRejected` says why it can never be one.

    `triggered_by` may be left out of the body: the routing key is the event key. When both are
    given they must agree, so that the exchange's routing and the event never tell two stories.
    """
    if len(body) > max_body_bytes:
        raise MessageRejected(
            f"the message body is {len(body)} bytes; the limit is {max_body_bytes}"
        )
    try:
        document = orjson.loads(body)
    except orjson.JSONDecodeError as exc:
        if str(exc).startswith("depth limit exceeded"):  # orjson's own limit, 1,024 levels
            raise MessageRejected(DEPTH_PROBLEM) from None
        raise MessageRejected(f"the message body is not valid JSON: {exc}") from None
    if b"\\u0000" in body:
        # PostgreSQL cannot store NUL in jsonb; the HTTP edge refuses it the same way.
        raise MessageRejected("strings must not contain the NUL character (\\u0000)")
    problem = nesting_problem(body)  # as the HTTP edge does
    if problem is not None:
        raise MessageRejected(problem)
    if isinstance(document, dict) and set(document) == {"data"}:
        document = document["data"]
    if isinstance(document, list):
        raise MessageRejected("a message carries one event; publish a batch as one message each")
    if not isinstance(document, dict):
        raise MessageRejected('the message body must be an event object {"type": "event", ...}')
    if "triggered_by" not in document and routing_key:
        document = {**document, "triggered_by": routing_key}
    try:
        event = EventIn.model_validate(document)
    except ValidationError as exc:
        raise MessageRejected("; ".join(detail for detail, _ in problems(exc, "data"))) from None
    if routing_key and event.triggered_by != routing_key:
        raise MessageRejected(
            f"the routing key {routing_key!r} differs from data.triggered_by "
            f"{event.triggered_by!r}; the routing key is the event key"
        )
    if message_id is not None and len(message_id) > MAX_MESSAGE_ID:
        raise MessageRejected(f"the message_id must be at most {MAX_MESSAGE_ID} characters")
    if message_id and event.id and message_id != event.id:
        raise MessageRejected(
            "the message_id and data.id differ; either names the event's client id"
        )
    return IngestMessage(
        event=event,
        idempotency_key=None if event.id else (message_id or None),
        store=_header(headers, STORE_HEADER),
        key=_header(headers, KEY_HEADER),
    )
