"""`python -m bench.run [--quick] [--only …] [--profile]`: the benchmark of issue 8 (`make bench`).

Order: a throwaway database, `hub migrate`, two keys (manage, publish), the sink, `hub serve
--no-worker` and `hub worker`, one webhook integration to the sink, a warm-up; then baseline,
throughput, ordered, scale-out (a second worker for a while), latency, publish, overload,
fan-out and backlog (last: it stops the API and the worker), each on a settled database (a
checkpoint and a vacuum between two: `SETTLE`). A scenario that fails is reported
and the others still run; everything is stopped and the database dropped at the end, whatever
happened.

Exit status: 0 when every scenario ran (whether or not the targets are met; `--strict` makes a
missed target exit 3), 1 when a scenario failed, 2 when a service is missing.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import dataclasses
import functools
import gc
import shutil
import sys
import tempfile
import time
import traceback
from collections.abc import Awaitable, Callable, Coroutine, Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import asyncpg
import uvloop

from bench import profile as profiling
from bench.client import HubClient
from bench.config import BenchConfig
from bench.context import Bench
from bench.procstats import CpuWindow, RssMonitor, machine
from bench.report import Results, judge, render, write
from bench.scenarios import (
    backlog,
    baseline,
    fanout,
    latency,
    ordered,
    overload,
    publish,
    scaleout,
    throughput,
)
from bench.scenarios.common import warm_up
from bench.services import BenchError, Hub, create_database, drop_database, passed_settings
from bench.sink import SinkProcess
from hub.store.engine import plain_url

RESULTS_DIR = Path(__file__).resolve().parent / "results"
SCENARIOS: dict[str, Callable[[Bench], Awaitable[Any]]] = {
    "baseline": baseline.run,
    "throughput": throughput.run,
    "ordered": ordered.run,
    "scaleout": scaleout.run,
    "latency": latency.run,
    "publish": publish.run,
    "overload": overload.run,
    "fanout": fanout.run,
    "backlog": backlog.run,
}
#: Scenarios profiled with py-spy under --profile (the API- and worker-heavy ones).
PROFILED = ("throughput", "ordered", "latency", "publish", "fanout")


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m bench.run",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--quick", action="store_true", help="a smoke run of small sizes (≤ 2 min)")
    parser.add_argument(
        "--only",
        help=f"comma-separated scenarios to run (of {', '.join(SCENARIOS)}); default all",
    )
    parser.add_argument(
        "--profile",
        action="store_true",
        help=f"sample the API and the worker with py-spy during {', '.join(PROFILED)}",
    )
    parser.add_argument(
        "--api-processes",
        type=int,
        default=1,
        metavar="N",
        help="run the API as `hub serve --no-worker --processes N` (default 1)",
    )
    parser.add_argument("--out", type=Path, default=RESULTS_DIR, help="where the JSON goes")
    parser.add_argument("--strict", action="store_true", help="exit 3 when a target is missed")
    return parser


async def _store_id(bench_sql: asyncpg.Connection, integration_id: str) -> str:
    value = await bench_sql.fetchval(
        "SELECT store_id FROM integrations WHERE id = $1::uuid", integration_id
    )
    return str(value)


@contextlib.contextmanager
def _steady_driver() -> Iterator[None]:
    """The driver's cyclic garbage collector held off for a scenario: its full collections walk
    every object this process holds (the figures of the scenarios so far, each request's
    record) and stop its event loop for tens to hundreds of ms, during which answers wait
    unread and requests go out late, the driver's pause counted as the hub's latency. What a
    scenario leaves is collected after it."""
    gc.collect()
    gc.freeze()
    gc.disable()
    try:
        yield
    finally:
        gc.enable()
        gc.unfreeze()
        gc.collect()


async def _scenarios(
    bench: Bench, names: list[str], results: Results, profiler: profiling.Profiler | None
) -> None:
    rss = RssMonitor()
    rss.watch("api", bench.api.pid, with_children=True)
    rss.watch("worker", bench.worker.pid)
    rss.watch("sink", bench.sink.pid)
    rss.start()
    try:
        for name in names:
            if name == "backlog":
                await rss.stop()
                rss.sample()
            if not (bench.api.running() and bench.worker.running()):
                dead = bench.api if not bench.api.running() else bench.worker
                results.errors[name] = f"not run: `hub {dead.name}` has exited"
                continue
            if name != names[0]:
                await _settle(bench)
            print(f"bench: {name} …", flush=True)
            window = CpuWindow(bench.pids() | {"postgres": await bench.postgres_pids()}).start()
            sampling = profiler is not None and name in PROFILED
            if sampling and profiler is not None:
                # With `--api-processes N`, the first copy stands for all (the parent idles).
                api_pid = bench.api.pids()[1:2] or [bench.api.pid]
                profiler.start(name, {"api": api_pid[0], "worker": bench.worker.pid})
            started = time.monotonic()
            scenario = SCENARIOS[name]
            if name == "overload" and results.publish is not None:
                sustained = results.publish.single.events_per_second
                scenario = functools.partial(overload.run, sustained=sustained)
            try:
                with _steady_driver():
                    setattr(results, name, await scenario(bench))
            except Exception as exc:
                traceback.print_exc()
                first: BaseException = exc
                while isinstance(first, BaseExceptionGroup):
                    first = first.exceptions[0]
                results.errors[name] = f"{type(first).__name__}: {first}"
            finally:
                if sampling and profiler is not None:
                    results.profiles[name] = await profiler.stop()
            late: dict[str, list[int]] = {"postgres": []}
            with contextlib.suppress(Exception):
                late["postgres"] = await bench.postgres_pids()
            results.cpu_percent[name] = window.stop(late) | {
                "seconds": round(time.monotonic() - started, 1)
            }
            if name == "throughput" and results.baseline is not None:
                print("bench: baseline again …", flush=True)
                try:
                    results.baseline = await baseline.again(bench, results.baseline)
                except Exception as exc:
                    results.errors["baseline"] = f"second run: {type(exc).__name__}: {exc}"
    finally:
        await rss.stop()
        results.rss_max_mb = dict(rss.max_mb)


async def run(config: BenchConfig, names: list[str], *, profile: bool) -> Results:
    results = Results(
        started_at=datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ"),
        settings=_settings(config, names),
        machine=machine(),
    )
    started = time.monotonic()
    work_dir = Path(tempfile.mkdtemp(prefix="hub-bench-"))
    profiler = profiling.Profiler(work_dir) if profile else None
    try:
        db = await create_database(work_dir)
    except BaseException:
        shutil.rmtree(work_dir, ignore_errors=True)
        raise
    results.settings["database"] = db.kind
    hub = Hub(db.url, work_dir, config.worker_concurrency, api_processes=config.api_processes)
    sink = SinkProcess(work_dir)
    sql: asyncpg.Connection | None = None
    failed = False
    try:
        await sink.start()
        await asyncio.to_thread(hub.prepare)
        await asyncio.to_thread(hub.run_cli, "migrate")
        manage_key = await asyncio.to_thread(hub.create_key, "bench", "manage")
        publish_key = await asyncio.to_thread(hub.create_key, "bench", "publish")
        api = await hub.start_api()
        worker = hub.start_worker()
        sql = await asyncpg.connect(plain_url(db.url))
        async with HubClient(hub.api_url, manage_key=manage_key, publish_key=publish_key) as client:
            integration_id = await client.create_webhook(sink.hook_url)
            bench = Bench(
                config=config,
                db=db,
                hub=hub,
                sink=sink,
                client=client,
                sql=sql,
                api=api,
                worker=worker,
                store_id=await _store_id(sql, integration_id),
                integration_id=integration_id,
            )
            print("bench: warming up …", flush=True)
            try:
                await warm_up(bench)
            except TimeoutError as exc:
                raise BenchError(
                    f"the warm-up deliveries did not arrive: {exc}\n"
                    f"--- worker log:\n{worker.log_tail()}"
                ) from exc
            await _scenarios(bench, names, results, profiler)
    except BaseException:
        failed = True
        raise
    finally:
        # Each step on its own, so that one failing leaves nothing else behind.
        if profiler is not None:
            with contextlib.suppress(Exception):
                await profiler.stop()
        hub.stop_all()
        with contextlib.suppress(Exception):
            await sink.stop()
        if sql is not None:
            with contextlib.suppress(Exception):
                await sql.close()
        try:
            await drop_database(db)
        except Exception as exc:
            print(f"bench: could not drop the database {db.name}: {exc}", file=sys.stderr)
        results.seconds = round(time.monotonic() - started, 1)
        if failed or results.errors:
            kept = RESULTS_DIR / "logs"
            kept.mkdir(parents=True, exist_ok=True)
            for log in work_dir.glob("*.log"):
                shutil.copy(log, kept / log.name)
            print(f"bench: the processes' logs are in {kept}", file=sys.stderr)
        shutil.rmtree(work_dir, ignore_errors=True)
    return results


SETTLE = (
    "CHECKPOINT",
    "VACUUM (ANALYZE) events",
    "VACUUM (ANALYZE) integration_jobs",
    "VACUUM (ANALYZE) integration_logs",
)
"""Run between two scenarios, so that each starts on a settled database: without, the one after
a scenario that wrote tens of thousands of rows ran beside the checkpoint and the autovacuum
those rows set off (latency at 200 events/s: p95 45.6 ms and 48 refusals in a full run, 7.75 ms
and none alone). The figures are the scenario's own, as the backlog's claims already were."""


async def _settle(bench: Bench) -> None:
    for statement in SETTLE:
        try:
            await bench.sql.execute(statement, timeout=600)
        except asyncpg.InsufficientPrivilegeError:
            print(f"bench: {statement} not allowed on this server; skipped", flush=True)


def _settings(config: BenchConfig, names: list[str]) -> dict[str, Any]:
    return dataclasses.asdict(config) | {
        "scenarios": names,
        "hub_settings": {
            "HUB_ALLOWED_NETWORKS": "127.0.0.0/8",
            "HUB_LOG_LEVEL": "warning",
            "HUB_API_RATE_LIMIT": "0",
            "HUB_MAX_INTEGRATIONS_PER_STORE": "0",
        }
        | {k: v for k, v in passed_settings().items() if "SECRET" not in k},
        "processes": f"hub serve --no-worker --processes {config.api_processes} (API) + hub "
        "worker (scaleout: a second hub worker for its second run); sink and driver in "
        "processes of their own",
    }


def _run_loop(main: Coroutine[Any, Any, Results]) -> Results:
    """The driver on uvloop, as the hub's own processes run: a client whose every request
    costs half the CPU can keep an open-loop schedule at twice the rate."""
    with asyncio.Runner(loop_factory=uvloop.new_event_loop) as loop:
        return loop.run(main)


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    names = list(SCENARIOS)
    if args.only:
        names = [n.strip() for n in args.only.split(",") if n.strip()]
        unknown = [n for n in names if n not in SCENARIOS]
        if unknown:
            print(f"bench: unknown scenario(s) {', '.join(unknown)}", file=sys.stderr)
            return 2
        names = [n for n in SCENARIOS if n in names]
    if args.profile and not profiling.available():
        print(f"bench: --profile needs py-spy ({profiling.PY_SPY} is missing)", file=sys.stderr)
        return 2
    if not 1 <= args.api_processes <= 16:
        print("bench: --api-processes must be between 1 and 16", file=sys.stderr)
        return 2
    config = BenchConfig.build(quick=args.quick, api_processes=args.api_processes)
    try:
        results = _run_loop(run(config, names, profile=args.profile))
    except BenchError as exc:
        print(f"bench: {exc}", file=sys.stderr)
        return 2
    print()
    print(render(results))
    if results.profiles:
        print()
        print(profiling.render(results.profiles))
    path = write(results, args.out)
    print(f"\nresults: {path} (and {args.out / 'latest.json'})")
    if results.errors:
        return 1
    if args.strict and any(t.passed is False for t in judge(results)):
        return 3
    return 0


if __name__ == "__main__":
    sys.exit(main())
