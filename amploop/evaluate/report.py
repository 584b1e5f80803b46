"""The evaluation report as a self-contained HTML page.

Charts are inline SVG drawn here: the page is a few tens of kilobytes, needs no script and no
network, and opens the same in any browser years later (a plotting library would embed a
multi-megabyte script for four small charts).
"""

from __future__ import annotations

import html
from collections.abc import Mapping
from importlib import resources
from typing import TYPE_CHECKING, Any

import jinja2

if TYPE_CHECKING:
    from amploop.evaluate.evaluation import EvaluationReport

__all__ = ["render_html"]

_GOOD, _BAD, _MUTED, _INK, _ACCENT = "#2e7d32", "#c62828", "#9e9e9e", "#212121", "#1565c0"


def _e(text: Any) -> str:
    return html.escape(str(text), quote=True)


def reliability_svg(bins: list[dict[str, Any]], title: str, width: int = 300, height: int = 300) -> str:
    pad = 36
    inner_w, inner_h = width - 2 * pad, height - 2 * pad
    parts = [
        f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" role="img" '
        f'aria-label="{_e(title)}"><title>{_e(title)}</title>',
        f'<rect x="{pad}" y="{pad}" width="{inner_w}" height="{inner_h}" fill="#fafafa" stroke="#ccc"/>',
    ]
    for b in bins:
        if not b["count"] or b["accuracy"] is None:
            continue
        x = pad + b["lower"] * inner_w
        w = max(1.0, (b["upper"] - b["lower"]) * inner_w - 1)
        h = b["accuracy"] * inner_h
        tip = (
            f"{b['lower']:.2f}-{b['upper']:.2f}: accuracy {b['accuracy']:.3f}, "
            f"confidence {b['confidence']:.3f}, n={b['count']}"
        )
        parts.append(
            f'<rect x="{x:.1f}" y="{pad + inner_h - h:.1f}" width="{w:.1f}" height="{h:.1f}" '
            f'fill="{_ACCENT}" fill-opacity="0.75"><title>{_e(tip)}</title></rect>'
        )
    parts.append(
        f'<line x1="{pad}" y1="{pad + inner_h}" x2="{pad + inner_w}" y2="{pad}" stroke="{_BAD}" '
        'stroke-dasharray="4 3"/>'
    )
    parts.append(f'<text x="{width / 2}" y="{height - 6}" text-anchor="middle" font-size="11">confidence</text>')
    parts.append(
        f'<text x="12" y="{height / 2}" font-size="11" transform="rotate(-90 12 {height / 2})" '
        'text-anchor="middle">accuracy</text>'
    )
    parts.append(
        f'<text x="{width / 2}" y="20" text-anchor="middle" font-size="12" font-weight="bold">{_e(title)}</text>'
    )
    parts.append("</svg>")
    return "".join(parts)


def confusion_svg(matrix: list[list[int]], classes: list[str], cell: int = 0) -> str:
    n = len(matrix)
    cell = cell or max(28, min(60, 360 // max(n, 1)))
    left, top = 90, 60
    width, height = left + n * cell + 10, top + n * cell + 10
    parts = [
        f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" role="img" '
        'aria-label="confusion matrix"><title>confusion matrix (rows: true class, columns: predicted)</title>'
    ]
    for i, row in enumerate(matrix):
        total = sum(row) or 1
        parts.append(
            f'<text x="{left - 6}" y="{top + i * cell + cell / 2 + 4}" text-anchor="end" '
            f'font-size="11">{_e(classes[i])}</text>'
        )
        for j, count in enumerate(row):
            share = count / total
            colour = f"rgba(21,101,192,{0.08 + 0.9 * share:.3f})"
            ink = "#fff" if share > 0.55 else _INK
            parts.append(
                f'<rect x="{left + j * cell}" y="{top + i * cell}" width="{cell - 1}" height="{cell - 1}" '
                f'fill="{colour}"/><text x="{left + j * cell + cell / 2}" y="{top + i * cell + cell / 2 + 4}" '
                f'text-anchor="middle" font-size="10" fill="{ink}">{count}</text>'
            )
    for j, name in enumerate(classes):
        parts.append(
            f'<text x="{left + j * cell + cell / 2}" y="{top - 8}" text-anchor="middle" '
            f'font-size="11">{_e(name)}</text>'
        )
    parts.append(f'<text x="{left + n * cell / 2}" y="16" text-anchor="middle" font-size="11">predicted</text>')
    parts.append("</svg>")
    return "".join(parts)


def slices_svg(slices: list[dict[str, Any]], overall: float, metric: str) -> str:
    row_h, left, right = 22, 230, 80
    width = 720
    inner = width - left - right
    values = [s["upper"] for s in slices if not s["too_small"]] + [s["metric"] for s in slices if not s["too_small"]]
    high = max([overall, *values]) if values else max(overall, 1e-9)
    low = min([overall, *[s["lower"] for s in slices if not s["too_small"]]]) if values else 0.0
    low = max(0.0, low - 0.05 * (high - low + 1e-9))
    span = (high - low) or 1.0
    height = 30 + row_h * len(slices) + 20

    def x(v: float) -> float:
        return left + (v - low) / span * inner

    parts = [
        f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" role="img" '
        f'aria-label="{_e(metric)} by slice"><title>{_e(metric)} by slice, with intervals</title>'
    ]
    for i, s in enumerate(slices):
        y = 30 + i * row_h
        label = f"{s['column']} = {s['value']}"
        parts.append(
            f'<text x="{left - 8}" y="{y + 14}" text-anchor="end" font-size="11">{_e(label)} (n={s["count"]})</text>'
        )
        if s["too_small"]:
            parts.append(f'<text x="{left + 4}" y="{y + 14}" font-size="11" fill="{_MUTED}">too small to report</text>')
            continue
        parts.append(
            f'<rect x="{x(low):.1f}" y="{y + 4}" width="{max(1.0, x(s["metric"]) - x(low)):.1f}" '
            f'height="{row_h - 8}" fill="{_ACCENT}" fill-opacity="0.6"/>'
        )
        parts.append(
            f'<line x1="{x(s["lower"]):.1f}" y1="{y + row_h / 2}" x2="{x(s["upper"]):.1f}" '
            f'y2="{y + row_h / 2}" stroke="{_INK}" stroke-width="1.5"/>'
        )
        parts.append(f'<text x="{width - right + 6}" y="{y + 14}" font-size="11">{s["metric"]:.3f}</text>')
    parts.append(
        f'<line x1="{x(overall):.1f}" y1="24" x2="{x(overall):.1f}" y2="{height - 14}" stroke="{_BAD}" '
        'stroke-dasharray="4 3"/>'
    )
    parts.append(
        f'<text x="{x(overall):.1f}" y="16" text-anchor="middle" font-size="11" fill="{_BAD}">overall '
        f"{overall:.3f}</text>"
    )
    parts.append("</svg>")
    return "".join(parts)


def corruption_svg(clean: float, corruptions: list[dict[str, Any]], metric: str) -> str:
    kinds: dict[str, list[tuple[float, float]]] = {}
    for c in corruptions:
        kinds.setdefault(c["corruption"], []).append((c["level"], c["metric"]))
    width, height, pad = 720, 260, 44
    palette = ["#1565c0", "#c62828", "#2e7d32", "#6a1b9a", "#ef6c00"]
    values = [clean] + [m for pts in kinds.values() for _, m in pts]
    low, high = min(values), max(values)
    span = (high - low) or 1.0
    parts = [
        f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" role="img" '
        f'aria-label="{_e(metric)} under corruption"><title>{_e(metric)} against corruption severity</title>',
        f'<rect x="{pad}" y="{pad / 2}" width="{width - 2 * pad - 150}" height="{height - 1.5 * pad}" '
        'fill="#fafafa" stroke="#ccc"/>',
    ]
    plot_w, plot_h = width - 2 * pad - 150, height - 1.5 * pad
    for k, (kind, pts) in enumerate(sorted(kinds.items())):
        pts = [(0, clean), *sorted(pts)]
        steps = len(pts) - 1 or 1
        coords = [(pad + i / steps * plot_w, pad / 2 + (1 - (m - low) / span) * plot_h) for i, (_, m) in enumerate(pts)]
        colour = palette[k % len(palette)]
        parts.append(
            f'<polyline fill="none" stroke="{colour}" stroke-width="2" points="'
            + " ".join(f"{cx:.1f},{cy:.1f}" for cx, cy in coords)
            + '"/>'
        )
        for (cx, cy), (level, m) in zip(coords, pts, strict=True):
            parts.append(
                f'<circle cx="{cx:.1f}" cy="{cy:.1f}" r="3" fill="{colour}"><title>{_e(kind)} {level:g}: '
                f"{m:.4f}</title></circle>"
            )
        parts.append(f'<text x="{width - 180}" y="{pad + 16 * k}" font-size="11" fill="{colour}">{_e(kind)}</text>')
    parts.append(f'<text x="{pad}" y="{height - 6}" font-size="11">clean → increasing severity</text>')
    parts.append(f'<text x="4" y="{pad / 2 + 10}" font-size="11">{high:.3f}</text>')
    parts.append(f'<text x="4" y="{pad / 2 + plot_h}" font-size="11">{low:.3f}</text>')
    parts.append("</svg>")
    return "".join(parts)


def report_charts(report: Mapping[str, Any]) -> dict[str, str]:
    """Every chart of a stored report (its ``to_dict()`` form) as inline SVG, empty when it does not apply:
    ``reliability_before``, ``reliability_after``, ``confusion``, ``slices``, ``corruption``."""
    # Every chart the template names, empty when it does not apply (no slice columns, no classes, ...).
    charts: dict[str, str] = dict.fromkeys(
        ("reliability_before", "reliability_after", "confusion", "slices", "corruption"), ""
    )
    if report.get("calibration"):
        c = report["calibration"]
        charts["reliability_before"] = reliability_svg(
            c["reliability_before"], f"before scaling: ECE {c['ece_before']:.4f}"
        )
        charts["reliability_after"] = reliability_svg(
            c["reliability_after"], f"after (T = {c['temperature']:.3f}): ECE {c['ece_after']:.4f}"
        )
    if "confusion_matrix" in report["metrics"]:
        charts["confusion"] = confusion_svg(report["metrics"]["confusion_matrix"], report["classes"] or [])
    slices = report["slices"]
    if slices["slices"]:
        charts["slices"] = slices_svg(slices["slices"], slices["overall"], slices["metric"])
    if report.get("robustness") and report["robustness"]["corruptions"]:
        rob = report["robustness"]
        charts["corruption"] = corruption_svg(rob["clean_metric"], rob["corruptions"], slices["metric"])
    return charts


def render_html(report: EvaluationReport | Mapping[str, Any]) -> str:
    """The report page: verdict first, then the evidence.

    ``report``: an :class:`~amploop.evaluate.evaluation.EvaluationReport` or its ``to_dict()``
    form (as the store keeps it).
    """
    if not isinstance(report, Mapping):
        report = report.to_dict()
    environment = jinja2.Environment(autoescape=True, undefined=jinja2.StrictUndefined)
    template = environment.from_string(
        (resources.files("amploop.evaluate") / "templates" / "report.html.j2").read_text(encoding="utf-8")
    )
    charts = report_charts(report)
    scalar_metrics = {k: v for k, v in report["metrics"].items() if isinstance(v, float)}
    intervals = report.get("intervals") or {}  # absent in reports stored before intervals were kept
    return template.render(
        report=report,
        charts={k: jinja2.utils.markupsafe.Markup(v) for k, v in charts.items()},
        metrics=scalar_metrics,
        intervals=intervals.get("metrics") or {},
        level=f"{100 * intervals.get('confidence_level', 0.95):g}%",
        method=intervals.get("method", "bootstrap"),
        baselines=report.get("baselines"),
    )
