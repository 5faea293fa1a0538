"""Baseline: a raw aiohttp client POSTing the hub's own webhook body to the sink.

The same body and headers as a delivery (the first one the sink received), at the worker's
concurrency, over a connection pool configured like the webhook deliverer's, for a fixed time.
Nothing is signed, stored or recorded: this is what the machine's loopback HTTP stack and the
sink can take, the practical ceiling of end-to-end delivery.

It is measured twice, before and after the throughput scenario (`again`), and the better run is
the ceiling: on a machine that other work keeps busy, one run alone may catch a bad moment.
"""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass

import aiohttp

from bench.context import Bench
from bench.scenarios.common import together
from bench.stats import Millis, rate

_DROPPED_HEADERS = {"host", "content-length", "connection"}


@dataclass(frozen=True, slots=True)
class BaselineRun:
    requests: int
    seconds: float
    deliveries_per_second: float
    request_ms: Millis
    errors: int


@dataclass(frozen=True, slots=True)
class BaselineResult:
    concurrency: int
    body_bytes: int
    runs: list[BaselineRun]
    deliveries_per_second: float
    """The best run's."""
    request_ms: Millis
    """The best run's."""


def _result(bench: Bench, body_bytes: int, runs: list[BaselineRun]) -> BaselineResult:
    best = max(runs, key=lambda r: r.deliveries_per_second)
    return BaselineResult(
        concurrency=bench.config.worker_concurrency,
        body_bytes=body_bytes,
        runs=runs,
        deliveries_per_second=best.deliveries_per_second,
        request_ms=best.request_ms,
    )


async def run(bench: Bench) -> BaselineResult:
    sample = await bench.sink.sample()
    return _result(bench, len(sample.body), [await _measure(bench)])


async def again(bench: Bench, previous: BaselineResult) -> BaselineResult:
    """`previous` with one more run."""
    return _result(bench, previous.body_bytes, [*previous.runs, await _measure(bench)])


async def _measure(bench: Bench) -> BaselineRun:
    sample = await bench.sink.sample()
    headers = {k: v for k, v in sample.headers.items() if k.lower() not in _DROPPED_HEADERS}
    concurrency = bench.config.worker_concurrency
    durations: list[float] = []
    errors = 0

    connector = aiohttp.TCPConnector(limit=0, limit_per_host=100)
    async with aiohttp.ClientSession(
        connector=connector,
        timeout=aiohttp.ClientTimeout(total=10),
        cookie_jar=aiohttp.DummyCookieJar(),
    ) as session:

        async def post() -> bool:
            async with session.post(
                bench.sink.hook_url, data=sample.body, headers=headers, allow_redirects=False
            ) as response:
                await response.read()
                return 200 <= response.status < 300

        # Open the pool's connections first, as a running worker has them.
        await asyncio.gather(*(post() for _ in range(concurrency)))

        end = time.monotonic() + bench.config.baseline_seconds

        async def client() -> None:
            nonlocal errors
            while time.monotonic() < end:
                started = time.monotonic()
                try:
                    ok = await post()
                except (aiohttp.ClientError, TimeoutError):
                    ok = False
                durations.append(time.monotonic() - started)
                errors += not ok

        started = time.monotonic()
        await together(
            (client() for _ in range(concurrency)), timeout=bench.config.baseline_seconds + 30
        )
        seconds = time.monotonic() - started
    total = len(durations)
    return BaselineRun(
        requests=total,
        seconds=round(seconds, 3),
        deliveries_per_second=rate(total - errors, seconds),
        request_ms=Millis.of(durations),
        errors=errors,
    )
