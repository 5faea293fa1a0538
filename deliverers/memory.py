"""An in-memory deliverer that records what it was asked: the fake beside the port."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import ClassVar

from deliverers.base import Delivery, DeliveryResult

Script = Callable[[Delivery], DeliveryResult]


def _always_ok(delivery: Delivery) -> DeliveryResult:
    return DeliveryResult(succeeded=True, duration=0.0, status_code=200, body="ok")


class MemoryDeliverer:
    """Answers each delivery with `script(delivery)` (default: success) and keeps a record.

    `delay` makes each delivery take that many seconds, to exercise concurrency and shutdown.
    """

    integration_type: ClassVar[str] = "webhook"

    def __init__(
        self,
        script: Script = _always_ok,
        *,
        delay: float = 0.0,
        integration_type: str = "webhook",
    ) -> None:
        self.script = script
        self.delay = delay
        self.integration_type = integration_type  # type: ignore[misc]
        self.delivered: list[Delivery] = []
        self.opened = False
        self.closed = False
        self.in_flight = 0
        self.max_in_flight = 0

    async def open(self) -> None:
        self.opened = True

    async def aclose(self) -> None:
        self.closed = True

    async def deliver(self, delivery: Delivery) -> DeliveryResult:
        self.in_flight += 1
        self.max_in_flight = max(self.max_in_flight, self.in_flight)
        try:
            if self.delay:
                await asyncio.sleep(self.delay)
            self.delivered.append(delivery)
            return self.script(delivery)
        finally:
            self.in_flight -= 1
