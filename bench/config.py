"""The benchmark's sizes: the full run (`make bench`) and the `--quick` smoke run."""

from __future__ import annotations

import os
from dataclasses import dataclass

#: The hub's default `HUB_WORKER_CONCURRENCY`; the baseline client uses the same.
DEFAULT_WORKER_CONCURRENCY = 64
#: What the worker claims at most per statement (`CLAIM_BATCH` in hub/dispatch/worker.py); it
#: also never claims more than its free slots, so the benchmark claims the smaller of the two.
CLAIM_LIMIT = 100
#: Events per batch publish: the API's maximum.
BATCH_SIZE = 100


@dataclass(frozen=True, slots=True)
class BenchConfig:
    """Every size and rate of one run; written into the results as `settings`."""

    quick: bool
    worker_concurrency: int
    api_processes: int = 1
    """Copies of the API (`hub serve --no-worker --processes N`, one port); `--api-processes`."""
    warmup_events: int = 200
    baseline_seconds: float = 6.0
    """Each of the two baseline runs."""
    throughput_events: int = 20_000
    throughput_publishers: int = 4
    scaleout_events: int = 10_000
    """Events delivered with one worker, and again with two."""
    """Batch requests in flight while publishing the throughput events."""
    ordered_resources: int = 1_000
    """Resources (ordering key values) the ordered scenario's events are spread over."""
    latency_rates: tuple[int, ...] = (50, 200, 500, 1000)
    latency_seconds: float = 10.0
    publish_single_concurrency: int = 64
    publish_single_seconds: float = 10.0
    publish_batch_events: int = 30_000
    publish_batch_concurrency: int = 4
    overload_rate: int = 6_000
    """Publishes/s of the overload scenario when the publish scenario did not run (its rate
    is otherwise twice the single-publish rate measured)."""
    overload_seconds: float = 10.0
    fanout_integrations: int = 1_000
    fanout_rounds: int = 3
    list_requests: int = 20
    backlog_jobs: int = 1_000_000
    """Also the ordered backlog's size (`ordered_backlog_resources` keys)."""
    ordered_backlog_resources: int = 10_000
    """Keys of the ordered backlog: one due job (its head) each, the others waiting; enough
    heads that every timed claim finds its limit's worth."""
    near_empty_jobs: int = 3_000
    claim_limit: int = CLAIM_LIMIT
    """Set by `build` to min(CLAIM_LIMIT, worker_concurrency): the most the worker claims."""
    claim_repeats: int = 20
    rss_seconds: float = 15.0
    batch_size: int = BATCH_SIZE

    @classmethod
    def build(cls, *, quick: bool, api_processes: int = 1) -> BenchConfig:
        concurrency = int(
            os.environ.get("HUB_WORKER_CONCURRENCY", "") or DEFAULT_WORKER_CONCURRENCY
        )
        claim_limit = min(CLAIM_LIMIT, concurrency)
        if not quick:
            return cls(
                quick=False,
                worker_concurrency=concurrency,
                claim_limit=claim_limit,
                api_processes=api_processes,
            )
        return cls(
            quick=True,
            api_processes=api_processes,
            worker_concurrency=concurrency,
            claim_limit=claim_limit,
            warmup_events=100,
            baseline_seconds=2.0,
            throughput_events=2_000,
            scaleout_events=2_000,
            latency_seconds=3.0,
            publish_single_seconds=3.0,
            publish_batch_events=3_000,
            overload_seconds=3.0,
            fanout_integrations=1_000,
            fanout_rounds=1,
            list_requests=5,
            backlog_jobs=100_000,
            near_empty_jobs=1_500,
            claim_repeats=10,
            rss_seconds=5.0,
        )
