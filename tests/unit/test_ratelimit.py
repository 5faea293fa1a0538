"""The deployment-wide rate limit: each process enforces its share (`hub.ratelimit`)."""

from __future__ import annotations

from uuid import uuid4

import pytest
from pydantic import ValidationError

from hub.ratelimit import RateLimiter, Share
from hub.settings import Settings


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def admitted(limiter: RateLimiter, key: object, calls: int) -> int:
    return sum(limiter.take(key) is None for _ in range(calls))


def test_n_processes_each_enforcing_their_share_admit_the_limit_in_total() -> None:
    clock = Clock()
    share = Share(3)
    processes = [RateLimiter(30, 12, share=share, clock=clock) for _ in range(3)]
    key = uuid4()

    at_once = sum(admitted(p, key, 100) for p in processes)
    in_two_seconds = 0
    for _ in range(20):
        clock.now += 0.1
        in_two_seconds += sum(admitted(p, key, 100) for p in processes)

    assert at_once == 12, "the burst, split three ways"
    assert in_two_seconds == 60, "30 a second in total, 10 in each process"


def test_a_share_that_grows_shrinks_the_buckets_and_one_that_falls_refills_faster() -> None:
    clock = Clock()
    share = Share(1)
    limiter = RateLimiter(10, 10, share=share, clock=clock)
    key = uuid4()
    assert admitted(limiter, key, 3) == 3  # 7 tokens left

    share.set(2)  # a second process joined: at most 5 tokens, 5 a second
    assert admitted(limiter, key, 10) == 5
    assert limiter.take(key) == 1
    clock.now += 1.0
    assert admitted(limiter, key, 10) == 5

    share.set(1)  # it left again
    clock.now += 0.5
    assert admitted(limiter, key, 10) == 5


def test_a_share_never_goes_below_one_process_nor_a_bucket_below_one_token() -> None:
    share = Share(0)
    share.set(-3)
    limiter = RateLimiter(1, 2, share=Share(8), clock=Clock())

    assert share.processes == 1
    assert limiter.local_burst == 1.0
    assert limiter.take("203.0.113.9") is None
    assert limiter.take("203.0.113.9") == 8, "a token every 8 s: 1/s shared by 8"


def test_the_heartbeat_may_not_outlast_its_staleness() -> None:
    with pytest.raises(ValidationError, match="at least twice"):
        Settings(_env_file=None, heartbeat_interval=10, heartbeat_stale_after=15)
    assert Settings(_env_file=None, heartbeat_interval=10, heartbeat_stale_after=20)
