"""The dispatcher: claims due jobs and drives the deliverers."""

from __future__ import annotations

from deliverers.amqp import AmqpDeliverer
from deliverers.base import Deliverer
from deliverers.registry import DelivererRegistry
from deliverers.sqs import SqsDeliverer
from deliverers.stomp import StompDeliverer
from deliverers.web_push import WebPushDeliverer
from deliverers.webhook import WebhookDeliverer
from hub.settings import Settings


def default_registry(settings: Settings) -> DelivererRegistry:
    """The deliverer of every integration type this hub delivers to."""
    allowed = settings.allowed_networks  # the SSRF guard's exceptions (hub.ssrf)
    deliverers: list[Deliverer] = [
        WebhookDeliverer(timeout=settings.webhook_timeout, allowed_networks=allowed)
    ]
    deliverers.append(SqsDeliverer(source=settings.base_url(), allowed_networks=allowed))
    deliverers.append(
        StompDeliverer(
            source=settings.base_url(), timeout=settings.webhook_timeout, allowed_networks=allowed
        )
    )
    deliverers.append(
        AmqpDeliverer(
            source=settings.base_url(), timeout=settings.webhook_timeout, allowed_networks=allowed
        )
    )
    deliverers.append(
        WebPushDeliverer(
            subject=settings.vapid_subject,
            timeout=settings.webhook_timeout,
            allowed_networks=allowed,
        )
    )
    return DelivererRegistry(deliverers)
