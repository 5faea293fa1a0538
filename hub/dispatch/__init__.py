"""The dispatcher: claims due jobs and drives the deliverers."""

from __future__ import annotations

from deliverers.base import Deliverer
from deliverers.registry import DelivererRegistry
from deliverers.webhook import WebhookDeliverer
from hub.settings import Settings


def default_registry(settings: Settings) -> DelivererRegistry:
    """The deliverer of every integration type this hub delivers to."""
    deliverers: list[Deliverer] = [WebhookDeliverer(timeout=settings.webhook_timeout)]
    return DelivererRegistry(deliverers)
