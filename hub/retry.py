"""The retry policy: a pure function from an attempt's outcome to what happens next.

The database stores only its answer (`next_attempt_at`, or a terminal status).

Formula, for a job whose attempt number ``n`` (1-based) has just failed, with the schedule
``S = (s1, s2, …, sk)`` (default 5 s, 5 min, 30 min, 2 h, 5 h, 10 h, 10 h: 8 attempts in all):

* ``n > k``: the attempts are spent; the job fails.
* otherwise ``delay = S[n] * (1 + J * (2u - 1))`` with ``J = 0.2`` and ``u`` uniform in [0, 1):
  the scheduled delay with up to 20 % jitter either way, so retries of a burst spread out;
* a ``Retry-After`` given with a 429 or 503 answer raises the delay to at least that many
  seconds, capped at `RETRY_AFTER_CAP` so a hostile endpoint cannot park a job forever;
* a ``410 Gone`` answer fails the job at once and disables the integration (Standard Webhooks),
  and so does any answer by which the deliverer says the target is *gone* (a push
  subscription's 404 or 410).
"""

from __future__ import annotations

import math
import random
import re
from collections.abc import Callable
from dataclasses import dataclass
from datetime import timedelta

DEFAULT_SCHEDULE: tuple[timedelta, ...] = (
    timedelta(seconds=5),
    timedelta(minutes=5),
    timedelta(minutes=30),
    timedelta(hours=2),
    timedelta(hours=5),
    timedelta(hours=10),
    timedelta(hours=10),
)
JITTER = 0.2
RETRY_AFTER_CAP = timedelta(hours=24)
RETRY_AFTER_STATUSES = frozenset({429, 503})
_ANSWERS = {404: "404 Not Found", 410: "410 Gone"}

_UNITS = {"ms": 0.001, "s": 1.0, "m": 60.0, "min": 60.0, "h": 3600.0, "d": 86400.0}
_PART = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*(ms|s|min|m|h|d)?\s*$")


def parse_schedule(text: str) -> tuple[timedelta, ...]:
    """Parse ``"0.2s,1s,5m,2h"`` (a bare number is seconds) into a schedule.

    An empty text means no retries: one attempt only.
    """
    if not text.strip():
        return ()
    delays = []
    for part in text.split(","):
        match = _PART.match(part)
        if match is None:
            raise ValueError(f"invalid retry delay {part.strip()!r}; use e.g. 0.5s, 5m, 2h")
        value, unit = match.groups()
        delays.append(timedelta(seconds=float(value) * _UNITS[unit or "s"]))
    return tuple(delays)


@dataclass(frozen=True, slots=True)
class Succeed:
    """The attempt succeeded: the job is done."""


@dataclass(frozen=True, slots=True)
class Retry:
    """The attempt failed; try again after `delay`."""

    delay: timedelta


@dataclass(frozen=True, slots=True)
class Fail:
    """The job ends `failed`; with `disable_integration` its integration is switched off."""

    reason: str
    disable_integration: bool = False


Decision = Succeed | Retry | Fail


def decide(
    *,
    attempt: int,
    succeeded: bool,
    status_code: int | None,
    retry_after: float | None,
    schedule: tuple[timedelta, ...],
    rand: Callable[[], float] = random.random,
    gone: bool = False,
) -> Decision:
    """What follows attempt number `attempt` (1-based) of a job; see the module docstring."""
    if succeeded:
        return Succeed()
    if status_code == 410 or gone:
        answer = _ANSWERS.get(status_code or 0, str(status_code or "that its target is gone"))
        return Fail(f"the endpoint answered {answer}", disable_integration=True)
    if attempt > len(schedule):
        return Fail(f"gave up after {attempt} attempt{'s' if attempt != 1 else ''}")
    base = schedule[attempt - 1]
    delay = base * (1 + JITTER * (2 * rand() - 1))
    if retry_after is not None and status_code in RETRY_AFTER_STATUSES:
        seconds = retry_after if math.isfinite(retry_after) else 0.0
        seconds = min(max(seconds, 0.0), RETRY_AFTER_CAP.total_seconds())
        delay = max(delay, timedelta(seconds=seconds))
    return Retry(delay)
