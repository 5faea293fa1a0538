"""Reading an AMQP message as an event (hub/ingest/messages.py), and telling a database outage
from a bug (hub.store.engine.storage_unavailable): pure, no broker, no database."""

from __future__ import annotations

from typing import Any

import asyncpg
import orjson
import pytest
from sqlalchemy import exc as sa_exc

from hub.errors import MessageRejected
from hub.ingest.messages import decode
from hub.store.engine import storage_unavailable

EVENT = {"type": "event", "triggered_by": "order.paid", "payload": {"data": {"id": "o-1"}}}


def read(
    body: Any,
    *,
    routing_key: str | None = "order.paid",
    message_id: str | None = None,
    headers: dict[str, object] | None = None,
    max_body_bytes: int = 1024,
) -> Any:
    raw = body if isinstance(body, bytes) else orjson.dumps(body)
    return decode(
        raw,
        routing_key=routing_key,
        message_id=message_id,
        headers=headers or {},
        max_body_bytes=max_body_bytes,
    )


def test_a_bare_event_and_its_envelope_read_the_same() -> None:
    assert read(EVENT).event == read({"data": EVENT}).event


def test_the_routing_key_is_the_event_key_when_the_body_has_none() -> None:
    body = {k: v for k, v in EVENT.items() if k != "triggered_by"}
    assert read(body, routing_key="order.created").event.triggered_by == "order.created"


def test_the_message_id_is_the_client_id_unless_the_body_names_the_same_one() -> None:
    assert read(EVENT, message_id="m-1").idempotency_key == "m-1"
    assert read(EVENT).idempotency_key is None
    same = read({**EVENT, "id": "m-1"}, message_id="m-1")
    assert (same.event.id, same.idempotency_key) == ("m-1", None)


def test_headers_name_the_store_and_the_key_as_text_or_bytes() -> None:
    message = read(EVENT, headers={"x-hub-store": b"acme", "x-hub-key": " hub_x "})
    assert (message.store, message.key) == ("acme", "hub_x")


@pytest.mark.parametrize(
    ("body", "options", "reason"),
    [
        (b"x" * 2000, {}, "the limit is 1024"),
        (b"{", {}, "not valid JSON"),
        (b'{"type": "event", "payload": {"a": "\\u0000"}}', {}, "NUL"),
        ([EVENT], {}, "one event"),
        ("order.paid", {}, "must be an event object"),
        ({**EVENT, "extra": 1}, {}, "data.extra is not a known attribute"),
        ({**EVENT, "type": "thing"}, {}, "data.type"),
        (EVENT, {"routing_key": "order.created"}, "differs from data.triggered_by"),
        (EVENT, {"message_id": "m" * 256}, "at most 255"),
        ({**EVENT, "id": "a"}, {"message_id": "b"}, "message_id and data.id differ"),
        (EVENT, {"headers": {"x-hub-key": b"\xff"}}, "not UTF-8"),
        (EVENT, {"headers": {"x-hub-store": 7}}, "non-empty string"),
        (EVENT, {"headers": {"x-hub-store": " "}}, "non-empty string"),
    ],
    ids=[
        "too big",
        "not JSON",
        "a NUL character",
        "a batch",
        "a string",
        "an unknown attribute",
        "not an event",
        "a routing key that is not the event key",
        "a long message id",
        "two client ids",
        "a header that is not text",
        "a header that is a number",
        "a blank header",
    ],
)
def test_a_message_that_is_no_event_is_rejected_with_the_reason(
    body: Any, options: dict[str, Any], reason: str
) -> None:
    with pytest.raises(MessageRejected) as caught:
        read(body, **options)
    assert reason in caught.value.reason


class _PgError(Exception):
    def __init__(self, sqlstate: str) -> None:
        super().__init__(sqlstate)
        self.sqlstate = sqlstate


def _wrapped(orig: BaseException) -> sa_exc.DBAPIError:
    return sa_exc.DBAPIError("SELECT 1", None, orig)


@pytest.mark.parametrize(
    ("error", "down"),
    [
        (ConnectionRefusedError(111, "refused"), True),
        (TimeoutError(), True),
        (sa_exc.TimeoutError("pool exhausted"), True),
        (_wrapped(_PgError("08006")), True),
        (_wrapped(_PgError("57P01")), True),
        (_wrapped(_PgError("53300")), True),
        (_wrapped(_PgError("23505")), False),
        (_wrapped(_PgError("42P01")), False),
        (
            asyncpg.exceptions.InternalClientError(
                "cannot switch to state 12; another operation (2) is in progress"
            ),
            True,
        ),
        (asyncpg.exceptions.InternalClientError("unknown error in protocol"), False),
        (ValueError("a bug"), False),
    ],
    ids=[
        "refused",
        "timeout",
        "pool timeout",
        "connection failure",
        "admin shutdown",
        "too many connections",
        "unique violation",
        "undefined table",
        "connection left unusable by the server's goodbye",
        "another client error",
        "a bug",
    ],
)
def test_only_an_outage_counts_as_storage_unavailable(error: BaseException, down: bool) -> None:
    assert storage_unavailable(error) is down


def test_an_outage_is_found_behind_the_exceptions_that_wrap_it() -> None:
    outer = RuntimeError("while committing")
    outer.__cause__ = ConnectionResetError("reset by peer")
    assert storage_unavailable(outer)


def nested(levels: int) -> Any:
    """`levels` objects and arrays, one inside the other."""
    value: Any = "deep"
    for level in range(levels):
        value = [value] if level % 2 else {"x": value}
    return value


@pytest.mark.parametrize("levels", [62, 300, 2000])
def test_a_message_nesting_deeper_than_the_limit_is_rejected(levels: int) -> None:
    body = {"data": {**EVENT, "payload": {"data": nested(levels)}}}
    raw = orjson.dumps(body) if levels < 250 else _deep_json(levels).encode()

    with pytest.raises(MessageRejected) as caught:
        read(raw, max_body_bytes=1 << 20)

    assert caught.value.reason == "objects and arrays must not nest more than 64 levels deep"


def test_a_message_nesting_exactly_to_the_limit_is_read() -> None:
    # The envelope, the event and the payload are three levels; the payload's data 61 more.
    body = {"data": {**EVENT, "payload": {"data": nested(61)}}}

    assert read(body, max_body_bytes=1 << 20).event.payload == {"data": nested(61)}


def _deep_json(levels: int) -> str:
    """An event whose payload nests `levels` arrays (beyond what orjson can write)."""
    inner = "[" * levels + "]" * levels
    return '{"type": "event", "triggered_by": "order.paid", "payload": {"data": ' + inner + "}}"
