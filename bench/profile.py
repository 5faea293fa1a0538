"""`--profile`: py-spy samples of the API and the worker during chosen scenarios.

py-spy (not a dependency of the hub: `pip install py-spy` into the virtualenv) records each
process at 100 Hz without pausing it (`--nonblocking`), in its raw "collapsed stacks" format.
The summary per process: how many samples caught it busy (its CPU use, roughly, since idle
threads are not sampled), the functions most often on top of the stack (self time) and most
often anywhere on it (inclusive time), as % of the busy samples. The raw files are kept under
bench/results/profiles/ for flame graphs (e.g. `flamegraph.pl` or speedscope).
"""

from __future__ import annotations

import asyncio
import contextlib
import shutil
import signal
import subprocess
import sys
import time
from collections import Counter
from dataclasses import dataclass
from pathlib import Path
from typing import Any

PY_SPY = Path(sys.executable).with_name("py-spy")
RATE = 100
TOP = 15
#: Frames on (nearly) every stack, left out of the inclusive list: the event loop and the entry.
_PLUMBING_FILES = ("(asyncio/runners.py)", "(asyncio/base_events.py)", "(asyncio/events.py)")


def _plumbing(frame: str) -> bool:
    return (
        frame.endswith(_PLUMBING_FILES) or frame.startswith("<module>") or "(hub/cli.py)" in frame
    )


def available() -> bool:
    return PY_SPY.exists() or shutil.which("py-spy") is not None


def _binary() -> str:
    return str(PY_SPY) if PY_SPY.exists() else (shutil.which("py-spy") or "py-spy")


@dataclass
class _Recording:
    scenario: str
    process_name: str
    output: Path
    process: subprocess.Popen[bytes]
    started: float


class Profiler:
    def __init__(self, work_dir: Path, keep_dir: Path | None = None) -> None:
        self._work_dir = work_dir
        self._keep_dir = keep_dir or Path(__file__).resolve().parent / "results" / "profiles"
        self._recordings: list[_Recording] = []

    def start(self, scenario: str, pids: dict[str, int]) -> None:
        for name, pid in pids.items():
            output = self._work_dir / f"profile-{scenario}-{name}.txt"
            process = subprocess.Popen(  # noqa: S603 - py-spy from this virtualenv
                [
                    _binary(),
                    "record",
                    "--pid",
                    str(pid),
                    "--rate",
                    str(RATE),
                    "--format",
                    "raw",
                    "--nolineno",
                    "--nonblocking",
                    "--output",
                    str(output),
                ],
                stdout=subprocess.DEVNULL,
                stderr=(self._work_dir / f"py-spy-{scenario}-{name}.log").open("wb"),
            )
            self._recordings.append(_Recording(scenario, name, output, process, time.monotonic()))

    async def stop(self) -> dict[str, Any]:
        """Stop the running recordings; their summaries by process name."""
        recordings, self._recordings = self._recordings, []
        out: dict[str, Any] = {}
        for rec in recordings:
            seconds = time.monotonic() - rec.started
            if rec.process.poll() is None:
                rec.process.send_signal(signal.SIGINT)
            try:
                await asyncio.wait_for(asyncio.to_thread(rec.process.wait), 30)
            except TimeoutError:
                rec.process.kill()
                with contextlib.suppress(subprocess.TimeoutExpired):
                    rec.process.wait(5)
            if not rec.output.exists():
                out[rec.process_name] = {"error": "py-spy wrote no profile"}
                continue
            self._keep_dir.mkdir(parents=True, exist_ok=True)
            kept = self._keep_dir / rec.output.name
            shutil.copy(rec.output, kept)
            out[rec.process_name] = summarise(rec.output.read_text(), seconds) | {"raw": str(kept)}
        return out


def _function(frame: str) -> str:
    """`'claim (hub/store/claiming.py)'` stays as it is; thread/process frames are dropped."""
    return frame.strip()


def summarise(raw: str, seconds: float) -> dict[str, Any]:
    own: Counter[str] = Counter()
    inclusive: Counter[str] = Counter()
    total = 0
    for line in raw.splitlines():
        stack, _, count_text = line.rpartition(" ")
        if not stack or not count_text.isdigit():
            continue
        count = int(count_text)
        frames = [_function(f) for f in stack.split(";") if f.strip()]
        if not frames:
            continue
        total += count
        own[frames[-1]] += count
        for frame in set(frames):
            inclusive[frame] += count

    def top(counter: Counter[str], *, skip_plumbing: bool = False) -> list[tuple[str, float]]:
        shares = [(name, round(100 * n / total, 1)) for name, n in counter.most_common()]
        if skip_plumbing:
            shares = [(name, share) for name, share in shares if not _plumbing(name)]
        return shares[:TOP]

    return {
        "samples": total,
        "busy_percent": round(100 * total / (RATE * seconds), 1) if seconds > 0 else None,
        "top_self": top(own) if total else [],
        "top_inclusive": top(inclusive, skip_plumbing=True) if total else [],
    }


def render(profiles: dict[str, Any]) -> str:
    lines = ["py-spy profiles (% of busy samples):"]
    for scenario, processes in profiles.items():
        for name, summary in processes.items():
            if "error" in summary:
                lines.append(f"\n{scenario} / {name}: {summary['error']}")
                continue
            lines.append(
                f"\n{scenario} / {name}: {summary['samples']} samples, "
                f"busy ≈ {summary['busy_percent']} % of a core"
            )
            lines.append("  self:")
            lines += [f"    {pct:5.1f}  {fn}" for fn, pct in summary["top_self"]]
            lines.append("  inclusive:")
            lines += [f"    {pct:5.1f}  {fn}" for fn, pct in summary["top_inclusive"]]
    return "\n".join(lines)
