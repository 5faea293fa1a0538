"""What the processes cost: RSS and CPU time from /proc, and what the machine is.

CPU is read per scenario as a share of one core (100 % = one core busy for the whole scenario)
for each process of the run, PostgreSQL's backends of the benchmark's database included, plus
the whole machine's busy share: the difference is what other programs took meanwhile.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import platform
import subprocess
import time
from dataclasses import dataclass, field
from pathlib import Path

_TICKS = os.sysconf("SC_CLK_TCK") if hasattr(os, "sysconf") else 100


def rss_mb(pid: int) -> float | None:
    """The resident set of `pid` in MiB (VmRSS), None once it is gone."""
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    except OSError:
        return None
    return None


def children(pid: int) -> list[int]:
    """The child processes of `pid` (from /proc; none once it is gone)."""
    found: list[int] = []
    with contextlib.suppress(OSError):
        for task in Path(f"/proc/{pid}/task").iterdir():
            with contextlib.suppress(OSError, ValueError):
                found.extend(int(p) for p in (task / "children").read_text().split())
    return sorted(set(found))


def cpu_seconds(pid: int) -> float | None:
    """User + system CPU seconds `pid` has used so far, None once it is gone."""
    try:
        text = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    fields = text.rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / _TICKS


def machine_ticks() -> tuple[int, int]:
    """(busy, total) jiffies of all CPUs since boot, from /proc/stat."""
    try:
        first = Path("/proc/stat").read_text().splitlines()[0].split()[1:]
    except OSError:
        return (0, 0)
    values = [int(v) for v in first]
    idle = values[3] + (values[4] if len(values) > 4 else 0)
    total = sum(values[:8])
    return (total - idle, total)


@dataclass
class CpuWindow:
    """CPU used by named processes between `start` and `stop`, as % of one core."""

    pids: dict[str, list[int]]
    _start_cpu: dict[int, float] = field(default_factory=dict)
    _start_at: float = 0.0
    _start_ticks: tuple[int, int] = (0, 0)

    def start(self) -> CpuWindow:
        self._start_at = time.monotonic()
        self._start_ticks = machine_ticks()
        for pids in self.pids.values():
            for pid in pids:
                used = cpu_seconds(pid)
                if used is not None:
                    self._start_cpu[pid] = used
        return self

    def stop(self, late_pids: dict[str, list[int]] | None = None) -> dict[str, float]:
        """% of one core per name (processes that appeared meanwhile count in full)."""
        elapsed = max(time.monotonic() - self._start_at, 1e-6)
        names = dict(self.pids)
        for name, pids in (late_pids or {}).items():
            names[name] = sorted(set(names.get(name, [])) | set(pids))
        out: dict[str, float] = {}
        for name, pids in names.items():
            used = 0.0
            for pid in pids:
                now = cpu_seconds(pid)
                if now is not None:
                    used += now - self._start_cpu.get(pid, 0.0)
            out[name] = round(100 * used / elapsed, 1)
        busy, total = machine_ticks()
        d_total = total - self._start_ticks[1]
        if d_total > 0:
            cores = os.cpu_count() or 1
            out["machine"] = round(100 * cores * (busy - self._start_ticks[0]) / d_total, 1)
        return out


class RssMonitor:
    """Samples the RSS of named processes every `interval` s; keeps the maximum of each."""

    def __init__(self, interval: float = 0.5) -> None:
        self.interval = interval
        self.pids: dict[str, int] = {}
        self.families: set[str] = set()
        self.max_mb: dict[str, float] = {}
        self._task: asyncio.Task[None] | None = None

    def watch(self, name: str, pid: int, *, with_children: bool = False) -> None:
        """Watch `pid` (and, `with_children`, its children: their RSS summed)."""
        self.pids[name] = pid
        if with_children:
            self.families.add(name)

    def sample(self) -> None:
        for name, pid in list(self.pids.items()):
            family = [pid, *children(pid)] if name in self.families else [pid]
            values = [v for v in map(rss_mb, family) if v is not None]
            if values:
                self.max_mb[name] = round(max(self.max_mb.get(name, 0.0), sum(values)), 1)

    async def _run(self) -> None:
        while True:
            self.sample()
            await asyncio.sleep(self.interval)

    def start(self) -> None:
        self._task = asyncio.create_task(self._run(), name="bench-rss")

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task


def _meminfo_mb() -> float | None:
    with contextlib.suppress(OSError, ValueError, IndexError):
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemTotal:"):
                return round(int(line.split()[1]) / 1024, 0)
    return None


def _cpu_model() -> str | None:
    with contextlib.suppress(OSError):
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    return None


def _git(*args: str) -> str | None:
    try:
        done = subprocess.run(  # noqa: S603
            ["git", *args],  # noqa: S607 - git from PATH, optional
            capture_output=True,
            text=True,
            timeout=10,
            check=False,
            cwd=Path(__file__).resolve().parents[1],
        )
    except (OSError, subprocess.TimeoutExpired):
        return None
    return done.stdout.strip() if done.returncode == 0 else None


def machine() -> dict[str, object]:
    """The machine and the code measured."""
    load = os.getloadavg() if hasattr(os, "getloadavg") else None
    status = _git("status", "--porcelain")
    return {
        "nproc": os.cpu_count(),
        "usable_cpus": len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else None,
        "cpu_model": _cpu_model(),
        "memory_mb": _meminfo_mb(),
        "load_average_at_start": [round(x, 2) for x in load] if load else None,
        "python": platform.python_version(),
        "platform": platform.platform(),
        "git_commit": _git("rev-parse", "HEAD"),
        "git_dirty": bool(status) if status is not None else None,
    }
