"""The dispatcher: claims due jobs and drives the deliverers."""

from __future__ import annotations

from deliverers.base import Deliverer
from deliverers.registry import DelivererRegistry
from deliverers.sqs import SqsDeliverer
from deliverers.stomp import StompDeliverer
from deliverers.webhook import WebhookDeliverer
from hub.settings import Settings


def default_registry(settings: Settings) -> DelivererRegistry:
    """The deliverer of every integration type this hub delivers to."""
    deliverers: list[Deliverer] = [WebhookDeliverer(timeout=settings.webhook_timeout)]
    deliverers.append(SqsDeliverer(source=settings.base_url()))
    deliverers.append(StompDeliverer(source=settings.base_url(), timeout=settings.webhook_timeout))
    return DelivererRegistry(deliverers)
