"""The CloudEvents 1.0 document that message-queue deliverers (SQS, STOMP) send.

EP's shape, with the hub's choices where EP is silent: `data` is the payload's `data` (for a
delete, whose payload is just `{"type", "id"}`, the payload itself), `included` is carried when the
payload has one, and `time` is when the event was published.
"""

from __future__ import annotations

from datetime import UTC
from typing import Any

import orjson

from deliverers.base import Delivery

SPECVERSION = "1.0"


def _time(delivery: Delivery) -> str:
    t = delivery.event_time.astimezone(UTC)
    return t.strftime("%Y-%m-%dT%H:%M:%S.") + f"{t.microsecond // 1000:03d}Z"


def build_cloudevent(delivery: Delivery, *, source: str) -> dict[str, Any]:
    """The structured-mode CloudEvent of one delivery."""
    payload = delivery.payload
    data = payload.get("data", payload)
    document: dict[str, Any] = {
        "specversion": SPECVERSION,
        "id": str(delivery.job_id),
        "type": delivery.triggered_by,
        "source": source,
        "datacontenttype": "application/json",
        "time": _time(delivery),
        "integrationid": str(delivery.target.id),
        "storeid": str(delivery.target.store_id),
        "data": data,
    }
    if "included" in payload:
        document["included"] = payload["included"]
    return document


def encode(document: dict[str, Any]) -> bytes:
    return orjson.dumps(document)
