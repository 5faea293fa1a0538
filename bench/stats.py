"""Small statistics over samples: percentiles and a summary in milliseconds."""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass


def percentile(values: Sequence[float], q: float) -> float:
    """The `q`-th percentile (0-100) with linear interpolation between closest ranks."""
    if not values:
        return math.nan
    ordered = sorted(values)
    rank = (len(ordered) - 1) * q / 100
    low = math.floor(rank)
    high = min(low + 1, len(ordered) - 1)
    return ordered[low] + (ordered[high] - ordered[low]) * (rank - low)


@dataclass(frozen=True, slots=True)
class Millis:
    """Percentiles of a sample of durations, in milliseconds."""

    count: int
    p50: float | None
    p95: float | None
    p99: float | None
    max: float | None

    @classmethod
    def of(cls, seconds: Sequence[float]) -> Millis:
        if not seconds:
            return cls(0, None, None, None, None)

        def ms(value: float) -> float:
            return round(value * 1000, 2)

        return cls(
            count=len(seconds),
            p50=ms(percentile(seconds, 50)),
            p95=ms(percentile(seconds, 95)),
            p99=ms(percentile(seconds, 99)),
            max=ms(max(seconds)),
        )


def rate(count: int, seconds: float) -> float:
    """`count` per second, rounded; 0 for an empty interval."""
    return round(count / seconds, 1) if seconds > 0 else 0.0
