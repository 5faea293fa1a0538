"""What one STOMP attempt sends: one SEND frame, its headers and its CloudEvent body.

**Frames.** CONNECT carries `login`/`passcode`, `heart-beat` and `host` (the virtual host, `/`
by default, which RabbitMQ requires). Each attempt is one SEND to the integration's destination:

| header | value |
|---|---|
| `content-type` | `application/json` |
| `persistent` | `true` |
| `receipt` | a fresh id per attempt |
| `hub-event-type` | the event key, e.g. `order.paid` |
| `hub-job-id` | the job id: the CloudEvent's `id`, the same on every attempt |
| `hub-event-id` | the id of the published event |
| `hub-attempt` | the attempt number, from 1 |

The body is the CloudEvent of `deliverers.cloudevent`.
"""

from __future__ import annotations

from deliverers.base import Delivery
from deliverers.cloudevent import build_cloudevent, encode

CONTENT_TYPE = "application/json"


def build_body(delivery: Delivery, *, source: str) -> bytes:
    """The SEND frame's body: the delivery's CloudEvent (`source`: the hub's public URL)."""
    return encode(build_cloudevent(delivery, source=source))


def build_headers(delivery: Delivery) -> dict[str, str]:
    """The SEND frame's own headers (stomp.py adds `destination`, `content-type` and the rest)."""
    return {
        "persistent": "true",
        "hub-event-type": delivery.triggered_by,
        "hub-job-id": str(delivery.job_id),
        "hub-event-id": str(delivery.event_id),
        "hub-attempt": str(delivery.attempt),
    }


__all__ = ["CONTENT_TYPE", "build_body", "build_headers"]
