"""What an AMQP publish carries: the CloudEvent of `deliverers.cloudevent` as the body, and
properties and headers that let consumers route and filter without parsing it.

| property / header | value |
|---|---|
| `content_type` | `application/cloudevents+json` (structured mode) |
| `delivery_mode` | 2, persistent |
| `message_id` | the job id, the same on every attempt (consumers deduplicate on it) |
| `type` | the event key, e.g. `order.created` |
| `timestamp` | when the event was published |
| `app_id` | `hub` |
| header `hub-event-type` | the event key |
| header `hub-job-id` / `hub-event-id` | the job's and the event's ids |
| header `hub-attempt` | the attempt number, from 1 |

The configuration's own `headers` come first; the hub's `hub-*` headers cannot be overridden.
"""

from __future__ import annotations

import aio_pika

from deliverers.base import Delivery
from deliverers.cloudevent import build_cloudevent, encode
from deliverers.config import AmqpConfig

CONTENT_TYPE = "application/cloudevents+json"
APP_ID = "hub"


def build_message(delivery: Delivery, config: AmqpConfig, *, source: str) -> aio_pika.Message:
    """The message of one attempt (`source`: the hub's public URL, the CloudEvent's `source`)."""
    headers: dict[str, str | int] = dict(config.headers or {})
    headers.update(
        {
            "hub-event-type": delivery.triggered_by,
            "hub-job-id": str(delivery.job_id),
            "hub-event-id": str(delivery.event_id),
            "hub-attempt": delivery.attempt,
        }
    )
    return aio_pika.Message(
        encode(build_cloudevent(delivery, source=source)),
        content_type=CONTENT_TYPE,
        delivery_mode=aio_pika.DeliveryMode.PERSISTENT,
        message_id=str(delivery.job_id),
        type=delivery.triggered_by,
        timestamp=delivery.event_time,
        app_id=APP_ID,
        headers=headers,  # type: ignore[arg-type]
    )


def routing_key(delivery: Delivery, config: AmqpConfig) -> str:
    """The configured routing key, else the event key."""
    return config.routing_key if config.routing_key is not None else delivery.triggered_by


__all__ = ["APP_ID", "CONTENT_TYPE", "build_message", "routing_key"]
