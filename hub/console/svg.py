"""The console's pictures as inline SVG, drawn on the server: no script, no external asset and
no inline style (the console's Content-Security-Policy allows neither), only presentation
attributes and the classes of console.css.

Each chart is drawn in a 360 by 150 box that the page scales to its width, so its text stays
readable on a 390 px phone; the legend and the figures live in the HTML around it. Every bar
and point carries its value (`data-*`) and a `<title>` (the browser's tooltip).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from html import escape

from markupsafe import Markup

WIDTH, HEIGHT = 360, 150
LEFT, RIGHT, TOP, BOTTOM = 48, 8, 10, 20


@dataclass(frozen=True, slots=True)
class Bucket:
    """One bar's worth of a chart: its start, its counts, its durations' percentiles."""

    start: datetime
    minutes: int
    succeeded: int
    failed: int
    p50: float | None
    p95: float | None


def nice_ceiling(value: float) -> float:
    """The smallest of 1, 2 or 5 times a power of ten at or above `value` (1 for nothing)."""
    if value <= 0:
        return 1.0
    power = 10 ** math.floor(math.log10(value))
    for step in (1, 2, 5, 10):
        if step * power >= value - 1e-12:
            return float(step * power)
    return float(10 * power)  # pragma: no cover


def count_text(value: float) -> str:
    if value >= 1000:
        return f"{value / 1000:.3g}k"
    return f"{value:.3g}" if value % 1 else f"{int(value)}"


def duration_text(seconds: float | None) -> str:
    """A duration as people read it: `850 ms`, `1.2 s`, `—` for none."""
    if seconds is None:
        return "—"
    if seconds < 1:
        return f"{seconds * 1000:.3g} ms"
    return f"{seconds:.3g} s"


def _plot() -> tuple[float, float]:
    return WIDTH - LEFT - RIGHT, HEIGHT - TOP - BOTTOM


def _frame(
    parts: list[str], top_label: str, mid_label: str, x_labels: Sequence[tuple[float, str]]
) -> None:
    width, height = _plot()
    for fraction, label in ((0.0, "0"), (0.5, mid_label), (1.0, top_label)):
        y = TOP + height * (1 - fraction)
        parts.append(
            f'<line class="grid" x1="{LEFT}" x2="{LEFT + width}" y1="{y:.1f}" y2="{y:.1f}"/>'
        )
        parts.append(
            f'<text class="axis" x="{LEFT - 4}" y="{y + 4:.1f}" text-anchor="end">'
            f"{escape(label)}</text>"
        )
    for fraction, label in x_labels:
        x = LEFT + width * fraction
        anchor = "start" if fraction == 0 else "end" if fraction == 1 else "middle"
        parts.append(
            f'<text class="axis" x="{x:.1f}" y="{HEIGHT - 4}" text-anchor="{anchor}">'
            f"{escape(label)}</text>"
        )


def _open(name: str, label: str) -> list[str]:
    return [
        f'<svg class="chart" viewBox="0 0 {WIDTH} {HEIGHT}" role="img" '
        f'aria-label="{escape(label)}" data-testid="{escape(name)}" '
        'xmlns="http://www.w3.org/2000/svg">',
        f"<title>{escape(label)}</title>",
    ]


def deliveries_chart(
    buckets: Sequence[Bucket], x_labels: Sequence[tuple[float, str]], *, name: str
) -> Markup:
    """Stacked bars: deliveries per minute (averaged over each bucket), succeeded below and
    failed above."""
    width, height = _plot()
    rates = [(b.succeeded + b.failed) / b.minutes for b in buckets]
    top = nice_ceiling(max(rates, default=0.0))
    parts = _open(name, "Deliveries per minute, succeeded and failed")
    _frame(parts, count_text(top), count_text(top / 2), x_labels)
    step = width / max(len(buckets), 1)
    bar = max(step * 0.8, 0.5)
    for i, b in enumerate(buckets):
        if not b.succeeded and not b.failed:
            continue
        x = LEFT + i * step + (step - bar) / 2
        base = TOP + height
        when = b.start.strftime("%Y-%m-%d %H:%M UTC")
        for kind, count in (("ok", b.succeeded), ("failed", b.failed)):
            if not count:
                continue
            h = height * (count / b.minutes) / top
            base -= h
            parts.append(
                f'<rect class="bar {kind}" x="{x:.2f}" y="{base:.2f}" width="{bar:.2f}" '
                f'height="{h:.2f}" data-start="{b.start.isoformat()}" data-count="{count}">'
                f"<title>{when}: {count} {'succeeded' if kind == 'ok' else 'failed'} in "
                f"{b.minutes} min</title></rect>"
            )
    parts.append("</svg>")
    return Markup("".join(parts))  # noqa: S704 - every text and attribute above is escaped


def durations_chart(
    buckets: Sequence[Bucket], x_labels: Sequence[tuple[float, str]], *, name: str
) -> Markup:
    """Two lines: the attempts' p50 and p95 duration in each bucket (gaps where none ran)."""
    width, height = _plot()
    top = nice_ceiling(max((b.p95 for b in buckets if b.p95 is not None), default=0.001))
    parts = _open(name, "Attempt duration, p50 and p95")
    _frame(parts, duration_text(top), duration_text(top / 2), x_labels)
    step = width / max(len(buckets), 1)
    for line in ("p95", "p50"):
        path: list[str] = []
        points: list[str] = []
        gap = True
        for i, b in enumerate(buckets):
            value = b.p50 if line == "p50" else b.p95
            if value is None:
                gap = True
                continue
            x = LEFT + i * step + step / 2
            y = TOP + height * (1 - min(value / top, 1.0))
            path.append(f"{'M' if gap else 'L'}{x:.2f} {y:.2f}")
            gap = False
            points.append(
                f'<circle class="point {line}" cx="{x:.2f}" cy="{y:.2f}" r="1.6" '
                f'data-start="{b.start.isoformat()}" data-seconds="{value:.6f}">'
                f"<title>{b.start.strftime('%Y-%m-%d %H:%M UTC')}: {line} "
                f"{duration_text(value)}</title></circle>"
            )
        if path:
            parts.append(f'<path class="line {line}" d="{" ".join(path)}"/>')
            parts.extend(points)
    parts.append("</svg>")
    return Markup("".join(parts))  # noqa: S704 - every text and attribute above is escaped
