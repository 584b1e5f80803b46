"""The loop story as one HTML page: accuracy over time, where the world changed, what the loop decided.

The chart is inline SVG (no script, no network): one point per window of served rows, its
accuracy against the true labels, drawn by the version that served it; a dashed line where the
data changes and a labelled mark at every promotion or rollback. A table below lists each window
with its alerts and decisions in words, so nothing is told by colour alone.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from importlib import resources
from pathlib import Path
from typing import Any

import jinja2
from markupsafe import Markup

__all__ = ["accuracy_chart", "write_story_html"]

WIDTH, HEIGHT, LEFT, RIGHT, TOP, BOTTOM = 900, 320, 56, 16, 24, 44


def accuracy_chart(windows: Sequence[Mapping[str, Any]], *, change_row: int | None = None) -> str:
    """An SVG line of accuracy per window (x: rows of the series), with the loop's moves marked.

    >>> svg = accuracy_chart([{"first_row": 0, "last_row": 99, "accuracy": 0.8, "decisions": []},
    ...                       {"first_row": 100, "last_row": 199, "accuracy": 0.6,
    ...                        "decisions": [{"kind": "promoted", "challenger_version": 2}]}], change_row=100)
    >>> svg.startswith("<svg") and "v2 promoted" in svg and "the data changes" in svg
    True
    """
    if not windows:
        return ""
    x0, x1 = windows[0]["first_row"], windows[-1]["last_row"] + 1
    low = min(0.4, *(w["accuracy"] for w in windows))

    def x(row: float) -> float:
        return LEFT + (row - x0) / max(1, x1 - x0) * (WIDTH - LEFT - RIGHT)

    def y(value: float) -> float:
        return TOP + (1 - (value - low) / (1 - low)) * (HEIGHT - TOP - BOTTOM)

    parts = [
        f'<svg viewBox="0 0 {WIDTH} {HEIGHT}" role="img" aria-labelledby="chart-title" class="chart">',
        '<title id="chart-title">Accuracy of the served model per window of rows</title>',
    ]
    for tick in (low, (low + 1) / 2, 1.0):
        parts.append(
            f'<line x1="{LEFT}" x2="{WIDTH - RIGHT}" y1="{y(tick):.1f}" y2="{y(tick):.1f}" class="grid"/>'
            f'<text x="{LEFT - 6}" y="{y(tick) + 4:.1f}" text-anchor="end">{tick:.2f}</text>'
        )
    step = max(1000, round((x1 - x0) / 6, -3))
    for row in range(int(-(-x0 // step) * step), x1, int(step)):
        parts.append(f'<text x="{x(row):.1f}" y="{HEIGHT - BOTTOM + 16}" text-anchor="middle">{row:,}</text>')
    parts.append(f'<text x="{(LEFT + WIDTH) / 2}" y="{HEIGHT - 6}" text-anchor="middle">row of the series</text>')
    if change_row is not None and x0 <= change_row <= x1:
        parts.append(
            f'<line x1="{x(change_row):.1f}" x2="{x(change_row):.1f}" y1="{TOP}" y2="{HEIGHT - BOTTOM}" '
            'class="change"/>'
            f'<text x="{x(change_row) + 4:.1f}" y="{TOP + 10}">the data changes</text>'
        )
    points = " ".join(f"{x((w['first_row'] + w['last_row'] + 1) / 2):.1f},{y(w['accuracy']):.1f}" for w in windows)
    parts.append(f'<polyline points="{points}" class="line"/>')
    for w in windows:
        cx, cy = x((w["first_row"] + w["last_row"] + 1) / 2), y(w["accuracy"])
        parts.append(
            f'<circle cx="{cx:.1f}" cy="{cy:.1f}" r="3.5"><title>rows {w["first_row"]:,}–{w["last_row"]:,}: '
            f"accuracy {w['accuracy']:.3f}</title></circle>"
        )
        for d in w.get("decisions", []):
            if d["kind"] in ("promoted", "rolled_back"):
                version = d["challenger_version"] if d["kind"] == "promoted" else d["champion_version"]
                label = f"v{version} promoted" if d["kind"] == "promoted" else f"back to v{version}"
                mark = x(w["last_row"] + 1)
                parts.append(
                    f'<line x1="{mark:.1f}" x2="{mark:.1f}" y1="{TOP}" y2="{HEIGHT - BOTTOM}" class="move"/>'
                    f'<text x="{mark + (4 if mark < WIDTH - 140 else -4):.1f}" y="{TOP + 24}" class="move-label" '
                    f'text-anchor="{"start" if mark < WIDTH - 140 else "end"}">{label}</text>'
                )
    parts.append("</svg>")
    return "".join(parts)


def write_story_html(path: Path, story: Mapping[str, Any]) -> Path:
    """Write the story page (the ``rainfall_story`` result) to ``path``, whole or not at all."""
    from amploop.registry.artifacts import write_file_atomically

    environment = jinja2.Environment(autoescape=True, undefined=jinja2.StrictUndefined)
    template = environment.from_string(
        (resources.files("amploop.loop") / "templates" / "story.html.j2").read_text(encoding="utf-8")
    )
    chart = accuracy_chart(story["windows"], change_row=story.get("change_row"))
    page = template.render(story=story, chart=Markup(chart))  # built from numbers and fixed words only
    write_file_atomically(path, page.encode("utf-8"), create_parents=True)
    return path
