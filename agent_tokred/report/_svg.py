"""A small inline-SVG line chart (no dependencies), for the self-contained HTML report."""

from __future__ import annotations

import math
from collections.abc import Sequence
from html import escape


def nice_ticks(top: float, count: int = 5) -> list[float]:
    """Round tick values from 0 to at least ``top``."""
    if top <= 0:
        return [0.0, 1.0]
    raw = top / count
    mag = 10 ** math.floor(math.log10(raw))
    step = next(m * mag for m in (1, 2, 2.5, 5, 10) if m * mag >= raw)
    n = math.ceil(top / step)
    return [i * step for i in range(n + 1)]


def _fmt(v: float) -> str:
    if v >= 1000:
        return f"{v / 1000:.0f}k" if v % 1000 == 0 else f"{v / 1000:.1f}k"
    return f"{v:.0f}"


def line_chart(
    series: Sequence[tuple[str, str, Sequence[float]]],
    *,
    title: str,
    x_label: str = "step",
    y_label: str = "context tokens",
    width: int = 760,
    height: int = 280,
    marks: Sequence[int] = (),
) -> str:
    """An SVG line chart of ``(label, colour, values)`` series sharing the x axis (step index).

    ``marks`` are x positions where a dashed vertical line separates episodes.

    Example:
        >>> svg = line_chart([("without", "#c0392b", [10, 20]), ("with", "#2471a3", [5, 8])], title="t")
        >>> svg.startswith("<svg") and "without" in svg
        True
    """
    left, right, top, bottom = 64, 16, 30, 44
    pw, ph = width - left - right, height - top - bottom
    n = max((len(v) for _, _, v in series), default=0)
    peak = max((max(v) for _, _, v in series if len(v)), default=0.0)
    ticks = nice_ticks(float(peak))
    ymax = ticks[-1] or 1.0

    def x(i: int) -> float:
        return left + (pw * i / (n - 1) if n > 1 else pw / 2)

    def y(v: float) -> float:
        return top + ph - ph * v / ymax

    parts = [
        f'<svg class="chart" viewBox="0 0 {width} {height}" '
        f'width="{width}" height="{height}" role="img" aria-label="{escape(title)}">',
        f'<text x="{left}" y="18" class="ctitle">{escape(title)}</text>',
    ]
    for t in ticks:
        parts.append(f'<line x1="{left}" x2="{left + pw}" y1="{y(t):.1f}" y2="{y(t):.1f}" class="grid"/>')
        parts.append(f'<text x="{left - 6}" y="{y(t) + 4:.1f}" class="tick" text-anchor="end">{_fmt(t)}</text>')
    for m in marks:
        xm = (x(m - 1) + x(m)) / 2
        parts.append(f'<line x1="{xm:.1f}" x2="{xm:.1f}" y1="{top}" y2="{top + ph}" class="mark"/>')
    step_every = max(1, math.ceil(n / 12))
    for i in range(0, n, step_every):
        parts.append(f'<text x="{x(i):.1f}" y="{top + ph + 16}" class="tick" text-anchor="middle">{i}</text>')
    parts.append(f'<text x="{left + pw / 2:.1f}" y="{height - 6}" class="axis" text-anchor="middle">'
                 f"{escape(x_label)}</text>")
    parts.append(f'<text x="14" y="{top + ph / 2:.1f}" class="axis" text-anchor="middle" '
                 f'transform="rotate(-90 14 {top + ph / 2:.1f})">{escape(y_label)}</text>')
    for k, (label, colour, values) in enumerate(series):
        pts = " ".join(f"{x(i):.1f},{y(float(v)):.1f}" for i, v in enumerate(values))
        if len(values) > 1:
            parts.append(f'<polyline points="{pts}" fill="none" stroke="{escape(colour)}" stroke-width="2"/>')
        for i, v in enumerate(values):
            if len(values) <= 60:
                parts.append(f'<circle cx="{x(i):.1f}" cy="{y(float(v)):.1f}" r="2.5" fill="{escape(colour)}">'
                             f"<title>{escape(label)}, step {i}: {float(v):,.0f} tokens</title></circle>")
        lx = left + pw - 170
        ly = top + 6 + 16 * k
        parts.append(f'<line x1="{lx}" x2="{lx + 18}" y1="{ly}" y2="{ly}" stroke="{escape(colour)}" stroke-width="3"/>')
        parts.append(f'<text x="{lx + 24}" y="{ly + 4}" class="legend">{escape(label)}</text>')
    parts.append("</svg>")
    return "".join(parts)
