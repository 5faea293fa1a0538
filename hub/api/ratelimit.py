"""The API's per-key rate limit: a token bucket per API key, in this process's memory.

Each key may make `burst` requests at once and `rate` per second on average: its bucket holds
up to `burst` tokens, refills at `rate` tokens a second, and every authenticated request takes
one. An empty bucket answers 429 with `Retry-After`: the whole seconds until a token is back.

The buckets live in the process, so with N API processes behind a balancer a key gets up to N
times the rate; the limit protects each process (and the database behind it) from one noisy
key, it is not a quota.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from dataclasses import dataclass
from uuid import UUID


@dataclass(slots=True)
class _Bucket:
    tokens: float
    at: float


class RateLimiter:
    """Token buckets by key id; `rate` 0 turns the limit off."""

    def __init__(
        self, rate: float, burst: int, *, clock: Callable[[], float] = time.monotonic
    ) -> None:
        self.rate = rate
        self.burst = burst
        self._clock = clock
        self._buckets: dict[UUID, _Bucket] = {}

    def take(self, key_id: UUID) -> int | None:
        """Take a token for `key_id`: None if there was one, else the seconds to wait."""
        if self.rate <= 0:
            return None
        now = self._clock()
        bucket = self._buckets.get(key_id)
        if bucket is None:
            if len(self._buckets) >= 10_000:
                self._forget_full(now)
            bucket = self._buckets[key_id] = _Bucket(float(self.burst), now)
        else:
            bucket.tokens = min(self.burst, bucket.tokens + (now - bucket.at) * self.rate)
            bucket.at = now
        if bucket.tokens >= 1:
            bucket.tokens -= 1
            return None
        return max(1, math.ceil((1 - bucket.tokens) / self.rate))

    def _forget_full(self, now: float) -> None:
        """Drop buckets that have refilled: a new bucket starts full anyway."""
        full = self.burst / self.rate
        for key_id, bucket in list(self._buckets.items()):
            if now - bucket.at >= full:
                del self._buckets[key_id]
