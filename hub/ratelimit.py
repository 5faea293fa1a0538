"""Rate limits for the deployment as a whole: token buckets in each process, each process
enforcing its share.

Each key (an API key's id, a client address) may make `burst` requests at once and `rate` per
second on average: its bucket holds up to `burst` tokens, refills at `rate` tokens a second, and
every request takes one. An empty bucket answers how long until a token is back (the 429's
`Retry-After`, in whole seconds).

**The deployment's limit, not a process's.** With N API processes behind a balancer, each one
enforces `rate / N` and `burst / N` (at least one token), where N is the number of live API
processes its last heartbeat counted (`Share`, set by `hub.services.processes.Heartbeat`). No
request waits for the database: the buckets live in the process, and only N comes from the
registry. A key whose requests are spread over the processes (round robin, least connections)
gets the configured rate in total; a key pinned to one process gets that process's share.

**Transients.** After a process joins, the others learn it at their next heartbeat
(`HUB_HEARTBEAT_INTERVAL`): until then the deployment allows up to (N+1)/N of the rate. After
one leaves cleanly it deletes its row and the others take its share at their next heartbeat;
after one is killed its row counts until it is stale (`HUB_HEARTBEAT_STALE_AFTER`), and for
that long the deployment allows (N-1)/N of the rate. A bucket shrunk by a larger N keeps at
most the new burst.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Hashable
from dataclasses import dataclass


class Share:
    """This process's part of the deployment-wide limits: one `processes`-th."""

    def __init__(self, processes: int = 1) -> None:
        self.processes = max(1, processes)

    def set(self, processes: int) -> None:
        self.processes = max(1, processes)


@dataclass(slots=True)
class _Bucket:
    tokens: float
    at: float


class RateLimiter:
    """Token buckets by key; `rate` 0 turns the limit off. `rate` and `burst` are the
    deployment's; this process enforces `share`'s part of them (the whole without one)."""

    def __init__(
        self,
        rate: float,
        burst: int,
        *,
        share: Share | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.rate = rate
        self.burst = burst
        self.share = share or Share()
        self._clock = clock
        self._buckets: dict[Hashable, _Bucket] = {}

    @property
    def local_rate(self) -> float:
        """Tokens a second this process adds to each bucket."""
        return self.rate / self.share.processes

    @property
    def local_burst(self) -> float:
        """The most tokens a bucket of this process holds (at least one)."""
        return max(1.0, self.burst / self.share.processes)

    def take(self, key: Hashable) -> int | None:
        """Take a token for `key`: None if there was one, else the seconds to wait."""
        if self.rate <= 0:
            return None
        rate, burst = self.local_rate, self.local_burst
        now = self._clock()
        bucket = self._buckets.get(key)
        if bucket is None:
            if len(self._buckets) >= 10_000:
                self._forget_full(now)
            bucket = self._buckets[key] = _Bucket(burst, now)
        else:
            bucket.tokens = min(burst, bucket.tokens + (now - bucket.at) * rate)
            bucket.at = now
        if bucket.tokens >= 1:
            bucket.tokens -= 1
            return None
        return max(1, math.ceil((1 - bucket.tokens) / rate))

    def _forget_full(self, now: float) -> None:
        """Drop buckets that have refilled: a new bucket starts full anyway."""
        full = self.local_burst / self.local_rate
        for key, bucket in list(self._buckets.items()):
            if now - bucket.at >= full:
                del self._buckets[key]
