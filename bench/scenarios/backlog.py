"""Backlog: claiming with a million due jobs in the table, and a worker's memory meanwhile; then
claiming with a million *ordered* jobs, most of them waiting behind their keys' heads.

The API and the worker are stopped first. The claim is timed from this process, calling
`hub.store.claiming.claim` (the worker's own statement, on the hub's engine's driver connection)
with the worker's limit, each claim in its own committed transaction, on two tables:
near-empty (a few thousand due jobs) and with the backlog (inserted with `INSERT … SELECT
generate_series`, one event row reused, all for the webhook to the sink, due over the last
minutes). Both are `VACUUM ANALYZE`d first, as autovacuum would have done.
Then a fresh `hub worker` runs against the backlog for a while; its RSS is sampled from
/proc/<pid>/status, and the deliveries it made are counted.

Last, the backlog is cancelled and a million ordered jobs take its place, as publishing would
have queued them (`hub.store.ordered`): `ordered_backlog_resources` keys, each with one due job
(its head) and the others waiting behind it (`blocked_by` the one before, no next attempt), ids
in queue order; the claim is timed the same way. The ratio to the unordered backlog's claim shows
that waiting jobs cost a claim nothing.
"""

from __future__ import annotations

import asyncio
import statistics
import time
from dataclasses import dataclass
from datetime import timedelta

import orjson

from bench.client import EVENT_KEY, payload
from bench.context import Bench
from bench.procstats import cpu_seconds, rss_mb
from bench.stats import Millis, rate
from hub.store import claiming
from hub.store.engine import create_engine, driver

CHUNK = 100_000
OWNER = "bench:claim"


@dataclass(frozen=True, slots=True)
class ClaimFigures:
    due_jobs: int
    claims: int
    claimed_per_claim: float
    claim_ms: Millis
    median_ms: float


@dataclass(frozen=True, slots=True)
class BacklogResult:
    backlog_jobs: int
    insert_seconds: float
    inserted_per_second: float
    near_empty: ClaimFigures
    backlog: ClaimFigures
    claim_ratio: float
    """Median claim with the backlog / median claim on the near-empty table."""
    worker_seconds: float
    worker_rss_max_mb: float
    worker_rss_last_mb: float
    worker_cpu_percent: float
    """The worker's CPU over its run, as % of one core."""
    worker_deliveries: int
    worker_deliveries_per_second: float
    ordered: ClaimFigures | None = None
    """The claim with `backlog_jobs` ordered jobs, `ordered_resources` of them due (their keys'
    heads) and the others waiting."""
    ordered_resources: int = 0
    """The ordered backlog's keys (`ordered_backlog_resources`)."""
    ordered_insert_seconds: float = 0.0
    ordered_claim_ratio: float | None = None
    """Median claim with the ordered backlog / median claim with the unordered backlog."""


async def _insert_jobs(bench: Bench, event_id: str, count: int) -> float:
    started = time.monotonic()
    for first in range(0, count, CHUNK):
        last = min(first + CHUNK, count) - 1
        await bench.sql.execute(
            """
            INSERT INTO integration_jobs (id, store_id, event_id, integration_id, triggered_by,
                status, attempts, next_attempt_at, created_at, updated_at)
            SELECT gen_random_uuid(), $1::uuid, $2::uuid, $3::uuid, $4, 'pending', 0,
                now() - make_interval(secs => ($5::int - g) / 1000.0), now(), now()
            FROM generate_series($6::int, $7::int) AS g
            """,
            bench.store_id,
            event_id,
            bench.integration_id,
            EVENT_KEY,
            count,
            first,
            last,
            timeout=300,
        )
    return time.monotonic() - started


#: A job id that sorts by `g` (ids in queue order, as `hub.store.ordered` keeps them).
_ID = "('00000000-0000-7000-8000-' || lpad(to_hex({}), 12, '0'))::uuid"


async def _insert_ordered_jobs(bench: Bench, event_id: str, count: int, keys: int) -> float:
    """`count` ordered jobs over `keys` keys: job `g` of key `g mod keys`, the first of each key
    due (over the last minutes), every later one waiting for the one `keys` before it."""
    started = time.monotonic()
    for first in range(0, count, CHUNK):
        last = min(first + CHUNK, count) - 1
        await bench.sql.execute(
            f"""
            INSERT INTO integration_jobs (id, store_id, event_id, integration_id, triggered_by,
                status, attempts, next_attempt_at, ordering_value, blocked_by, created_at,
                updated_at)
            SELECT {_ID.format("g")}, $1::uuid, $2::uuid, $3::uuid, $4, 'pending', 0,
                CASE WHEN g < $5::int
                     THEN now() - make_interval(secs => ($5::int - g) / 1000.0) END,
                'r' || (g % $5::int),
                CASE WHEN g >= $5::int THEN {_ID.format("g - $5::int")} END,
                now(), now()
            FROM generate_series($6::int, $7::int) AS g
            """,
            bench.store_id,
            event_id,
            bench.integration_id,
            EVENT_KEY,
            keys,
            first,
            last,
            timeout=300,
        )
    return time.monotonic() - started


async def _claims(bench: Bench, due: int) -> ClaimFigures:
    # What autovacuum would have done by then, so that both tables are measured alike: the
    # earlier scenarios' churn (dead index entries) and stale statistics are gone.
    await bench.sql.execute("VACUUM ANALYZE integration_jobs", timeout=600)
    engine = create_engine(bench.db.url, pool_size=1)
    limit = bench.config.claim_limit
    lease = timedelta(minutes=10)
    durations: list[float] = []
    claimed: list[int] = []
    try:
        for n in range(bench.config.claim_repeats + 2):
            started = time.perf_counter()
            async with driver(engine, transaction=True) as db:
                jobs = await claiming.claim(db, owner=OWNER, limit=limit, lease=lease)
            if n >= 2:  # the first two open the connection and warm the caches
                durations.append(time.perf_counter() - started)
                claimed.append(len(jobs))
    finally:
        await engine.dispose()
    millis = Millis.of(durations)
    assert millis.p50 is not None
    return ClaimFigures(
        due_jobs=due,
        claims=len(durations),
        claimed_per_claim=statistics.mean(claimed),
        claim_ms=millis,
        median_ms=millis.p50,
    )


async def _cancel_unfinished(bench: Bench) -> None:
    await bench.sql.execute(
        "UPDATE integration_jobs SET status = 'cancelled', next_attempt_at = NULL, "
        "lease_owner = NULL, lease_expires_at = NULL, blocked_by = NULL, completed_at = now() "
        "WHERE status IN ('pending', 'delivering')",
        timeout=300,
    )


async def run(bench: Bench) -> BacklogResult:
    await bench.hub.stop(bench.api)
    await bench.hub.stop(bench.worker)
    await _cancel_unfinished(bench)
    event_id = str(
        await bench.sql.fetchval(
            "INSERT INTO events (id, store_id, triggered_by, payload, created_at) "
            "VALUES (gen_random_uuid(), $1::uuid, $2, $3::jsonb, now()) RETURNING id",
            bench.store_id,
            EVENT_KEY,
            orjson.dumps(payload("backlog:0")).decode(),
        )
    )

    small = bench.config.near_empty_jobs
    await _insert_jobs(bench, event_id, small)
    near_empty = await _claims(bench, small)
    await _cancel_unfinished(bench)

    count = bench.config.backlog_jobs
    insert_seconds = await _insert_jobs(bench, event_id, count)
    full = await _claims(bench, count)

    before = await bench.sink.stats("backlog")
    worker = bench.hub.start_worker()
    bench.worker = worker
    peak = 0.0
    last = 0.0
    started = time.monotonic()
    try:
        while time.monotonic() - started < bench.config.rss_seconds:
            if not worker.running():
                raise RuntimeError(f"hub worker exited on the backlog:\n{worker.log_tail()}")
            value = rss_mb(worker.pid)
            if value is not None:
                peak, last = max(peak, value), value
            await asyncio.sleep(0.2)
        after = await bench.sink.stats("backlog")
        ran = time.monotonic() - started
        used = cpu_seconds(worker.pid) or 0.0
    finally:
        await bench.hub.stop(worker)
    deliveries = after.count - before.count

    await _cancel_unfinished(bench)
    keys = bench.config.ordered_backlog_resources
    ordered_insert = await _insert_ordered_jobs(bench, event_id, count, keys)
    ordered = await _claims(bench, keys)
    return BacklogResult(
        backlog_jobs=count,
        insert_seconds=round(insert_seconds, 2),
        inserted_per_second=rate(count, insert_seconds),
        near_empty=near_empty,
        backlog=full,
        claim_ratio=round(full.median_ms / near_empty.median_ms, 2),
        worker_seconds=round(ran, 2),
        worker_rss_max_mb=round(peak, 1),
        worker_rss_last_mb=round(last, 1),
        worker_cpu_percent=round(100 * used / ran, 1),
        worker_deliveries=deliveries,
        worker_deliveries_per_second=rate(deliveries, ran),
        ordered=ordered,
        ordered_resources=keys,
        ordered_insert_seconds=round(ordered_insert, 2),
        ordered_claim_ratio=round(ordered.median_ms / full.median_ms, 2),
    )
