"""AMQP ingest: services publish events to a RabbitMQ exchange instead of `POST /v2/events`.

`messages` reads one message as one event (pure); `consumer` runs the queue: each message is
published through `hub.services.events.publish`, exactly like the HTTP edge, and acked only once
the event and its jobs are committed. See `consumer`'s docstring for the topology and outcomes.
"""

from hub.ingest.consumer import AmqpIngest, declare_topology

__all__ = ["AmqpIngest", "declare_topology"]
