"""Inline SVG charts for the dashboard: series over monitored windows, drawn from numbers only.

No script and no network: each chart is an ``<svg role="img">`` with a title and a text table
beside it in the page, so nothing is told by colour or shape alone.
"""

from __future__ import annotations

from collections.abc import Sequence
from html import escape

__all__ = ["series_chart"]

WIDTH, HEIGHT, LEFT, RIGHT, TOP, BOTTOM = 720, 260, 52, 16, 16, 36


def series_chart(
    title: str,
    labels: Sequence[str],
    lines: Sequence[tuple[str, str, Sequence[tuple[float, float, float] | None]]],
    *,
    low: float = 0.0,
    high: float = 1.0,
    reference: float | None = None,
) -> str:
    """A chart of one or more series over the same windows.

    ``lines``: ``(name, css class, points)``; a point is ``(value, interval low, interval high)``
    or None where the window has no value (an interval is drawn as a band). ``reference``: a
    dashed level (the validation accuracy, say).

    >>> svg = series_chart("accuracy", ["w1", "w2"], [("realized", "realized", [(0.8, 0.7, 0.9), None])],
    ...                    reference=0.85)
    >>> svg.count("<circle"), "reference 0.85" in svg, svg.startswith("<svg")
    (1, True, True)
    """
    n = max(1, len(labels))

    def x(i: float) -> float:
        return LEFT + (i + 0.5) / n * (WIDTH - LEFT - RIGHT)

    def y(value: float) -> float:
        return TOP + (1 - (min(max(value, low), high) - low) / (high - low)) * (HEIGHT - TOP - BOTTOM)

    parts = [f'<svg viewBox="0 0 {WIDTH} {HEIGHT}" role="img" class="chart"><title>{escape(title)}</title>']
    for tick in (low, (low + high) / 2, high):
        parts.append(
            f'<line x1="{LEFT}" x2="{WIDTH - RIGHT}" y1="{y(tick):.1f}" y2="{y(tick):.1f}" class="grid"/>'
            f'<text x="{LEFT - 6}" y="{y(tick) + 4:.1f}" text-anchor="end">{tick:.2f}</text>'
        )
    every = max(1, -(-n // 6))  # at most six labels
    for i, label in enumerate(labels):
        if i % every == 0:
            parts.append(f'<text x="{x(i):.1f}" y="{HEIGHT - BOTTOM + 16}" text-anchor="middle">{escape(label)}</text>')
    if reference is not None:
        parts.append(
            f'<line x1="{LEFT}" x2="{WIDTH - RIGHT}" y1="{y(reference):.1f}" y2="{y(reference):.1f}" '
            'class="reference"/>'
            f'<text x="{WIDTH - RIGHT}" y="{y(reference) - 4:.1f}" text-anchor="end">reference {reference:.2f}</text>'
        )
    for name, css, points in lines:
        present = [(i, p) for i, p in enumerate(points) if p is not None]
        if not present:
            continue
        if any(p[1] != p[2] for _, p in present):
            upper = " ".join(f"{x(i):.1f},{y(p[2]):.1f}" for i, p in present)
            lower = " ".join(f"{x(i):.1f},{y(p[1]):.1f}" for i, p in reversed(present))
            parts.append(f'<polygon points="{upper} {lower}" class="band {css}"/>')
        path = " ".join(f"{x(i):.1f},{y(p[0]):.1f}" for i, p in present)
        parts.append(f'<polyline points="{path}" class="line {css}"/>')
        for i, p in present:
            parts.append(
                f'<circle cx="{x(i):.1f}" cy="{y(p[0]):.1f}" r="3" class="{css}">'
                f"<title>{escape(name)} {escape(labels[i])}: {p[0]:.3f}</title></circle>"
            )
    parts.append("</svg>")
    return "".join(parts)
