"""What bounds a worker's claims besides its concurrency: the share of slots retries may hold,
and one rate limiter per rate-limited integration.

**Slots.** Retries may hold at most three quarters of the slots (all of them below 4): the rest
wait for first attempts, so an endpoint that hangs every retry until the timeout cannot starve
the healthy integrations.

**Rate limits.** An integration's `rate_limit` is enforced per worker process by an
`aiolimiter` leaky bucket (bursts of at most max(1, rate)). A claimed job waits for its bucket
before the attempt starts; an integration whose bucket is empty, or which already has a job
waiting, is left out of the next claims, so its jobs do not sit on slots and leases meanwhile.
"""

from __future__ import annotations

import asyncio
from collections import defaultdict
from uuid import UUID

from aiolimiter import AsyncLimiter


def retry_slots(concurrency: int) -> int:
    """How many of `concurrency` slots retries may hold: the rest wait for first attempts."""
    return concurrency - concurrency // 4


def new_limiter(rate: float) -> AsyncLimiter:
    """`rate` attempts per second, in bursts of at most max(1, rate)."""
    return AsyncLimiter(rate, 1.0) if rate >= 1 else AsyncLimiter(1, 1.0 / rate)


class RateLimits:
    """The rate limiters of one worker, by integration."""

    def __init__(self) -> None:
        self._limiters: dict[UUID, tuple[float, AsyncLimiter]] = {}
        self._waiting: defaultdict[UUID, int] = defaultdict(int)

    @property
    def waiting(self) -> int:
        """Jobs waiting for a limiter."""
        return sum(self._waiting.values())

    def throttled(self) -> list[UUID]:
        """Integrations to leave out of the next claim: bucket empty, or a job already waits."""
        return [
            integration_id
            for integration_id, (_, limiter) in self._limiters.items()
            if self._waiting[integration_id] > 0 or not limiter.has_capacity()
        ]

    def _limiter(self, integration_id: UUID, rate: float | None) -> AsyncLimiter | None:
        if rate is None:
            self._limiters.pop(integration_id, None)
            return None
        known = self._limiters.get(integration_id)
        if known is None or known[0] != rate:
            known = (rate, new_limiter(rate))
            self._limiters[integration_id] = known
        return known[1]

    async def wait(self, integration_id: UUID, rate: float | None, stop: asyncio.Event) -> None:
        """Return once the integration's bucket lets one attempt through, or `stop` is set
        (then without taking anything from the bucket, if it had not yet)."""
        limiter = self._limiter(integration_id, rate)
        if limiter is None or stop.is_set():
            return
        self._waiting[integration_id] += 1
        acquire = asyncio.ensure_future(limiter.acquire())
        stopping = asyncio.ensure_future(stop.wait())
        try:
            await asyncio.wait([acquire, stopping], return_when=asyncio.FIRST_COMPLETED)
        finally:
            acquire.cancel()
            stopping.cancel()
            self._waiting[integration_id] -= 1
