"""What the reliability tests share: a deliverer scripted per integration that can hold attempts
open, and shortcuts to the queue's state."""

from __future__ import annotations

import asyncio
import time
from collections import defaultdict
from dataclasses import dataclass, field
from typing import Any, ClassVar
from uuid import UUID

from sqlalchemy import text

from deliverers.base import Delivery, DeliveryResult
from tests.integration.stack import Stack

NON_2XX = "Received a status code outside of 2xx range - treating webhook as a fail"


@dataclass(frozen=True, slots=True)
class Call:
    integration_id: UUID
    job_id: UUID
    attempt: int
    at: float
    """`time.monotonic()` when the attempt started."""


@dataclass
class ScriptedDeliverer:
    """A webhook deliverer answering per integration: `status` (default 200) for each attempt,
    and attempts of integrations in `held_open` (retries only, if `hold_retries_only`) wait
    until `release` is set. It records every call and the peak of attempts in flight at once
    per integration."""

    integration_type: ClassVar[str] = "webhook"

    status: dict[UUID, int] = field(default_factory=dict)
    held_open: set[UUID] = field(default_factory=set)
    hold_retries_only: bool = True
    delay: float = 0.0
    release: asyncio.Event = field(default_factory=asyncio.Event)
    calls: list[Call] = field(default_factory=list)
    open_now: defaultdict[UUID, int] = field(default_factory=lambda: defaultdict(int))
    peak: defaultdict[UUID, int] = field(default_factory=lambda: defaultdict(int))

    async def open(self) -> None:
        pass

    async def aclose(self) -> None:
        self.release.set()

    async def deliver(self, delivery: Delivery) -> DeliveryResult:
        integration_id = delivery.target.id
        self.calls.append(Call(integration_id, delivery.job_id, delivery.attempt, time.monotonic()))
        self.open_now[integration_id] += 1
        self.peak[integration_id] = max(self.peak[integration_id], self.open_now[integration_id])
        try:
            held = integration_id in self.held_open
            if held and (delivery.attempt > 1 or not self.hold_retries_only):
                await self.release.wait()
            if self.delay:
                await asyncio.sleep(self.delay)
            status = self.status.get(integration_id, 200)
            if 200 <= status < 300:
                return DeliveryResult(True, 0.001, status_code=status, body="ok")
            return DeliveryResult(False, 0.001, status_code=status, error_detail=NON_2XX)
        finally:
            self.open_now[integration_id] -= 1

    def calls_of(self, integration_id: UUID) -> list[Call]:
        return [call for call in self.calls if call.integration_id == integration_id]


async def status_counts(stack: Stack, integration_id: str | UUID) -> dict[str, int]:
    async with stack.engine.connect() as conn:
        rows = await conn.execute(
            text(
                "SELECT status, count(*) FROM integration_jobs WHERE integration_id = :id "
                "GROUP BY status"
            ),
            {"id": str(integration_id)},
        )
        return {status: count for status, count in rows}


async def integration(stack: Stack, integration_id: str) -> dict[str, Any]:
    document = await stack.get(f"/v2/integrations/{integration_id}")
    data: dict[str, Any] = document["data"]
    return data
