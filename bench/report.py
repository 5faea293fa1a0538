"""The run's results: the targets of issue 8 judged, the table printed, the JSON file written."""

from __future__ import annotations

import dataclasses
import json
import operator
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from bench.scenarios.backlog import BacklogResult
from bench.scenarios.baseline import BaselineResult
from bench.scenarios.fanout import FanoutResult
from bench.scenarios.latency import LatencyResult, RateResult
from bench.scenarios.ordered import OrderedResult
from bench.scenarios.overload import OverloadResult
from bench.scenarios.publish import PublishResult
from bench.scenarios.scaleout import ScaleOutResult
from bench.scenarios.throughput import ThroughputResult


@dataclass
class Results:
    """Everything one run measured; `to_json` is the file's content."""

    started_at: str
    settings: dict[str, Any]
    machine: dict[str, Any]
    baseline: BaselineResult | None = None
    throughput: ThroughputResult | None = None
    scaleout: ScaleOutResult | None = None
    ordered: OrderedResult | None = None
    latency: LatencyResult | None = None
    publish: PublishResult | None = None
    overload: OverloadResult | None = None
    fanout: FanoutResult | None = None
    backlog: BacklogResult | None = None
    cpu_percent: dict[str, dict[str, float]] = field(default_factory=dict)
    """Per scenario, % of one core per process (`machine`: all processes of the machine)."""
    rss_max_mb: dict[str, float] = field(default_factory=dict)
    profiles: dict[str, Any] = field(default_factory=dict)
    errors: dict[str, str] = field(default_factory=dict)
    seconds: float = 0.0

    @property
    def e2e_ratio(self) -> float | None:
        if self.baseline is None or self.throughput is None:
            return None
        if not self.baseline.deliveries_per_second:
            return None
        return round(self.throughput.deliveries_per_second / self.baseline.deliveries_per_second, 3)

    @property
    def ordered_ratio(self) -> float | None:
        """Ordered deliveries per second / unordered ones (the throughput scenario's)."""
        if self.ordered is None or self.throughput is None:
            return None
        if not self.throughput.deliveries_per_second:
            return None
        return round(self.ordered.deliveries_per_second / self.throughput.deliveries_per_second, 3)

    def latency_at(self, per_second: int) -> float | None:
        """Publish → first delivery p95 at `per_second` (ms)."""
        found = self._rate(per_second)
        return None if found is None else found.latency_ms.p95

    def publish_p95_at(self, per_second: int) -> float | None:
        """The publish request's own p95 at `per_second` (ms)."""
        found = self._rate(per_second)
        return None if found is None else found.publish_ms.p95

    def _rate(self, per_second: int) -> RateResult | None:
        if self.latency is None:
            return None
        return next((r for r in self.latency.rates if r.rate == per_second), None)

    @property
    def overload_errors(self) -> float | None:
        """Answers under overload that were neither 202 nor 503 (500s, no answer)."""
        if self.overload is None:
            return None
        return float(sum(self.overload.other_answers.values()))

    def to_json(self) -> dict[str, Any]:
        doc = dataclasses.asdict(self)
        doc["ratios"] = {
            "e2e_deliveries_to_baseline": self.e2e_ratio,
            "ordered_deliveries_to_unordered": self.ordered_ratio,
        }
        if self.backlog is not None:
            doc["ratios"]["claim_backlog_to_near_empty"] = self.backlog.claim_ratio
            doc["ratios"]["claim_ordered_backlog_to_backlog"] = self.backlog.ordered_claim_ratio
        if self.scaleout is not None:
            doc["ratios"]["two_workers_to_one"] = self.scaleout.ratio
        doc["targets"] = [dataclasses.asdict(t) for t in judge(self)]
        return doc


# --- the targets ---------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Target:
    name: str
    measured: float | None
    threshold: float
    unit: str
    comparison: str
    """`>=` or `<=`."""
    passed: bool | None
    """None when the figure was not measured (its scenario failed or did not run)."""


_OPS: dict[str, Callable[[float, float], bool]] = {">=": operator.ge, "<=": operator.le}

#: (name, figure, comparison, threshold, unit): the targets of issues 8 and 15, for 1,000
#: integrations and 1,000,000 due jobs, and of issue 21 (ordered delivery) for 1,000 resources
#: and 1,000,000 ordered jobs (a `--quick` run judges its smaller sizes the same way).
TARGETS: list[tuple[str, Callable[[Results], float | None], str, float, str]] = [
    ("end-to-end deliveries / raw-client baseline", lambda r: r.e2e_ratio, ">=", 0.6, "x"),
    ("publish → first delivery p95 at 200 events/s", lambda r: r.latency_at(200), "<=", 25, "ms"),
    ("publish request p95 at 1,000 events/s", lambda r: r.publish_p95_at(1000), "<=", 15, "ms"),
    (
        "publish → first delivery p95 at 1,000 events/s",
        lambda r: r.latency_at(1000),
        "<=",
        25,
        "ms",
    ),
    (
        "single publish, 64 in flight, accepted events/s",
        lambda r: r.publish.single.events_per_second if r.publish else None,
        ">=",
        3_000,
        "/s",
    ),
    (
        "overload (2x): accepted requests' p99",
        lambda r: r.overload.accepted_ms.p99 if r.overload else None,
        "<=",
        250,
        "ms",
    ),
    ("overload (2x): answers neither 202 nor 503", lambda r: r.overload_errors, "<=", 0, ""),
    (
        "overload (2x): accepted events lost",
        lambda r: float(r.overload.lost) if r.overload else None,
        "<=",
        0,
        "",
    ),
    (
        "batch publish, accepted events/s",
        lambda r: r.publish.batch.events_per_second if r.publish else None,
        ">=",
        15_000,
        "/s",
    ),
    (
        "fan-out to every integration accepted (median)",
        lambda r: r.fanout.accept_ms_median if r.fanout else None,
        "<=",
        100,
        "ms",
    ),
    (
        "claim with the backlog / near-empty (median)",
        lambda r: r.backlog.claim_ratio if r.backlog else None,
        "<=",
        2,
        "x",
    ),
    (
        "worker RSS on the backlog (max)",
        lambda r: r.backlog.worker_rss_max_mb if r.backlog else None,
        "<=",
        250,
        "MB",
    ),
    ("ordered deliveries (1,000 resources) / unordered", lambda r: r.ordered_ratio, ">=", 0.5, "x"),
    (
        "claim with the ordered backlog / the unordered one (median)",
        lambda r: r.backlog.ordered_claim_ratio if r.backlog else None,
        "<=",
        2,
        "x",
    ),
]


def judge(results: Results) -> list[Target]:
    out = []
    for name, figure, comparison, threshold, unit in TARGETS:
        measured = figure(results)
        passed = None if measured is None else _OPS[comparison](measured, threshold)
        out.append(Target(name, measured, threshold, unit, comparison, passed))
    return out


# --- output --------------------------------------------------------------------------------------


def write(results: Results, out_dir: Path) -> Path:
    """bench/results/<timestamp>.json and latest.json; returns the former."""
    out_dir.mkdir(parents=True, exist_ok=True)
    text = json.dumps(results.to_json(), indent=2, default=str) + "\n"
    path = out_dir / f"{results.started_at.replace(':', '').replace('-', '')}.json"
    path.write_text(text)
    (out_dir / "latest.json").write_text(text)
    return path


def _fmt(value: float | None, unit: str = "") -> str:
    if value is None:
        return "—"
    if abs(value) >= 100:
        text = f"{value:,.0f}"
    elif abs(value) >= 10:
        text = f"{value:.1f}"
    else:
        text = f"{value:.2f}"
    return f"{text} {unit}".rstrip()


def _statuses(counts: dict[str, int]) -> str:
    return ", ".join(f"{n} x {_status(status)}" for status, n in counts.items())


def rows(results: Results) -> list[tuple[str, str, str]]:
    """(scenario, figure, value) rows of the table."""
    out: list[tuple[str, str, str]] = []
    if (b := results.baseline) is not None:
        runs = " / ".join(_fmt(r.deliveries_per_second) for r in b.runs)
        out += [
            (
                "baseline",
                f"raw client, {b.concurrency} in flight (best of {runs})",
                _fmt(b.deliveries_per_second, "/s"),
            ),
            (
                "baseline",
                "request p50 / p95",
                f"{_fmt(b.request_ms.p50)} / {_fmt(b.request_ms.p95, 'ms')}",
            ),
            ("baseline", "body size", f"{b.body_bytes} B"),
        ]
    if (t := results.throughput) is not None:
        out += [
            (
                "throughput",
                f"{t.events:,} events, batch publish → delivered",
                _fmt(t.deliveries_per_second, "/s"),
            ),
            ("throughput", "ratio to baseline", _fmt(results.e2e_ratio, "x")),
            ("throughput", "publishing alone took", _fmt(t.publish_seconds, "s")),
            ("throughput", "duplicates", str(t.duplicates)),
        ]
    if (so := results.scaleout) is not None:
        for one in so.runs:
            out.append(
                (
                    "scale-out",
                    f"{one.events:,} events, {one.workers} worker process(es) "
                    f"({one.duplicates} dup., {one.refused} x 503)",
                    _fmt(one.deliveries_per_second, "/s"),
                )
            )
        out.append(("scale-out", "2 workers / 1 worker", _fmt(so.ratio, "x")))
    if (o := results.ordered) is not None:
        out += [
            (
                "ordered",
                f"{o.events:,} events over {o.resources:,} resources → delivered",
                _fmt(o.deliveries_per_second, "/s"),
            ),
            ("ordered", "ratio to unordered throughput", _fmt(results.ordered_ratio, "x")),
            ("ordered", "publishing alone took", _fmt(o.publish_seconds, "s")),
            ("ordered", "out of order / duplicates", f"{o.out_of_order} / {o.duplicates}"),
        ]
    if (lat := results.latency) is not None:
        for r in lat.rates:
            ms = r.latency_ms
            pub, after = r.publish_ms, r.accepted_to_delivered_ms
            out += [
                (
                    "latency",
                    f"{r.rate}/s (achieved {_fmt(r.achieved_rate)}/s): p50 / p95 / p99",
                    f"{_fmt(ms.p50)} / {_fmt(ms.p95)} / {_fmt(ms.p99, 'ms')}",
                ),
                (
                    "latency",
                    "  of which the publish request p50 / p95",
                    f"{_fmt(pub.p50)} / {_fmt(pub.p95, 'ms')}",
                ),
                (
                    "latency",
                    "  and 202 → delivered p50 / p95",
                    f"{_fmt(after.p50)} / {_fmt(after.p95, 'ms')}",
                ),
            ]
            if r.not_accepted:
                out.append(("latency", "  publishes not accepted", _statuses(r.not_accepted)))
    if (p := results.publish) is not None:
        out += [
            (
                "publish",
                f"single, {p.single.concurrency} in flight",
                _fmt(p.single.events_per_second, "events/s"),
            ),
            (
                "publish",
                "single request p50 / p95",
                f"{_fmt(p.single.request_ms.p50)} / {_fmt(p.single.request_ms.p95, 'ms')}",
            ),
            (
                "publish",
                f"batch of 100, {p.batch.concurrency} in flight",
                _fmt(p.batch.events_per_second, "events/s"),
            ),
            (
                "publish",
                "batch request p50 / p95",
                f"{_fmt(p.batch.request_ms.p50)} / {_fmt(p.batch.request_ms.p95, 'ms')}",
            ),
            (
                "publish",
                f"drain of {p.drain.jobs:,} queued jobs",
                _fmt(p.drain.deliveries_per_second, "/s"),
            ),
        ]
        for label, figures in (("single", p.single), ("batch", p.batch)):
            if figures.not_accepted:
                out.append(("publish", f"{label}: not accepted", _statuses(figures.not_accepted)))
    if (ov := results.overload) is not None:
        out += [
            (
                "overload",
                f"{ov.rate}/s for {ov.seconds:.0f} s "
                f"(achieved {_fmt(ov.achieved_rate)}/s): accepted",
                _fmt(ov.accepted_per_second, "events/s"),
            ),
            (
                "overload",
                "  accepted request p50 / p95 / p99",
                f"{_fmt(ov.accepted_ms.p50)} / {_fmt(ov.accepted_ms.p95)} / "
                f"{_fmt(ov.accepted_ms.p99, 'ms')}",
            ),
            (
                "overload",
                "  refused 503 (with Retry-After), answered p50 / p95",
                f"{ov.refused_503:,} ({ov.refused_with_retry_after:,}), "
                f"{_fmt(ov.refused_ms.p50)} / {_fmt(ov.refused_ms.p95, 'ms')}",
            ),
            (
                "overload",
                "  other answers; accepted but lost",
                f"{_statuses(ov.other_answers) or 'none'}; {ov.lost}",
            ),
        ]
    if (f := results.fanout) is not None:
        out += [
            (
                "fan-out",
                f"create {f.integrations:,} integrations",
                _fmt(f.creates_per_second, "/s"),
            ),
            ("fan-out", f"accept (median of {len(f.rounds)})", _fmt(f.accept_ms_median, "ms")),
            (
                "fan-out",
                f"all {f.integrations:,} delivered (median)",
                _fmt(f.all_delivered_ms_median, "ms"),
            ),
            (
                "lists",
                "GET integrations x100 p50 / p95",
                f"{_fmt(f.list_integrations_ms.p50)} / {_fmt(f.list_integrations_ms.p95, 'ms')}",
            ),
            (
                "lists",
                "GET logs x100 p50 / p95",
                f"{_fmt(f.list_logs_ms.p50)} / {_fmt(f.list_logs_ms.p95, 'ms')}",
            ),
            (
                "lists",
                "GET jobs x100 p50 / p95",
                f"{_fmt(f.list_jobs_ms.p50)} / {_fmt(f.list_jobs_ms.p95, 'ms')}",
            ),
        ]
    if (k := results.backlog) is not None:
        out += [
            (
                "backlog",
                f"claim {k.near_empty.claimed_per_claim:.0f}, near-empty: median / p95",
                f"{_fmt(k.near_empty.median_ms)} / {_fmt(k.near_empty.claim_ms.p95, 'ms')}",
            ),
            (
                "backlog",
                f"claim {k.backlog.claimed_per_claim:.0f}, {k.backlog_jobs:,} due: median / p95",
                f"{_fmt(k.backlog.median_ms)} / {_fmt(k.backlog.claim_ms.p95, 'ms')}",
            ),
            ("backlog", "ratio", _fmt(k.claim_ratio, "x")),
            (
                "backlog",
                f"worker RSS max over {k.worker_seconds:.0f} s",
                _fmt(k.worker_rss_max_mb, "MB"),
            ),
            (
                "backlog",
                f"worker deliveries meanwhile (worker CPU {k.worker_cpu_percent:.0f} %)",
                _fmt(k.worker_deliveries_per_second, "/s"),
            ),
            ("backlog", f"insert {k.backlog_jobs:,} jobs", _fmt(k.insert_seconds, "s")),
        ]
        if k.ordered is not None:
            out += [
                (
                    "backlog",
                    f"claim {k.ordered.claimed_per_claim:.0f}, {k.backlog_jobs:,} ordered "
                    f"({k.ordered_resources:,} due): median / p95",
                    f"{_fmt(k.ordered.median_ms)} / {_fmt(k.ordered.claim_ms.p95, 'ms')}",
                ),
                ("backlog", "ordered / unordered", _fmt(k.ordered_claim_ratio, "x")),
            ]
    return out


def _table(header: tuple[str, ...], body: Sequence[tuple[str, ...]]) -> str:
    widths = [max(len(str(row[i])) for row in [header, *body]) for i in range(len(header))]
    line = "  ".join("-" * w for w in widths)
    fmt = "  ".join(f"{{:<{w}}}" for w in widths)
    return "\n".join([fmt.format(*header), line, *(fmt.format(*row) for row in body)])


def render(results: Results) -> str:
    kind = "quick" if results.settings.get("quick") else "full"
    parts = [
        f"hub benchmark {results.started_at} ({kind}, "
        f"{results.machine.get('nproc')} CPUs, {_fmt(results.machine.get('memory_mb'), 'MB')}, "
        f"load at start {results.machine.get('load_average_at_start')}, {results.seconds:.0f} s)",
        "",
        _table(("scenario", "figure", "value"), rows(results)),
        "",
    ]
    if results.cpu_percent:
        order = ["seconds", "api", "worker", "postgres", "sink", "driver", "machine"]
        seen = {n for cpu in results.cpu_percent.values() for n in cpu}
        names = [n for n in order if n in seen] + sorted(seen - set(order))
        body = [
            (scenario, *(_fmt(cpu.get(n)) for n in names))
            for scenario, cpu in results.cpu_percent.items()
        ]
        parts += [
            "CPU, % of one core (postgres: this database's backends; machine: every process):",
            _table(("scenario", *names), body),
            "",
        ]
    targets = [
        (
            t.name,
            f"{t.comparison} {_fmt(t.threshold, t.unit)}",
            _fmt(t.measured, t.unit),
            {True: "pass", False: "FAIL", None: "not measured"}[t.passed],
        )
        for t in judge(results)
    ]
    parts += [_table(("target", "wanted", "measured", ""), targets)]
    if results.errors:
        parts += ["", "errors:"]
        parts += [f"  {name}: {error}" for name, error in results.errors.items()]
    return "\n".join(parts)


def _status(key: str) -> str:
    """`503`, or `no answer (ClientOSError)` for a request that got none (`0 <error>`)."""
    if key == "0":
        return "no answer"
    if key.startswith("0 "):
        return f"no answer ({key[2:]})"
    return key
