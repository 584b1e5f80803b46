"""The drift report as a self-contained HTML page: the verdict, then a table and a chart per column.

One page for both drift reports: two files compared (``FileDriftReport.to_dict()``,
``amploop drift REF CUR --html``) and one window of served traffic (``DriftReport.to_dict()``,
``amploop monitor NAME --html``), which adds alerts, performance and the model's outputs.

The page shows only what those dicts hold, which is aggregates: each column's statistics and
its shares on about ten bins or categories. It never shows a row. As in
:mod:`amploop.evaluate.report`, the charts are inline SVG drawn here, so the page needs no
script and no network (a plotting library would embed megabytes of script for a few bar charts).
"""

from __future__ import annotations

import html
import math
from collections.abc import Mapping
from importlib import resources
from pathlib import PurePath
from typing import Any

import jinja2
from markupsafe import Markup

__all__ = ["render_drift_html"]

_REFERENCE, _CURRENT, _INK, _MUTED = "#546e7a", "#d84315", "#212121", "#757575"
METHOD_NAMES = {
    "ks": "Kolmogorov-Smirnov",
    "chi_square": "chi-square",
    "psi": "PSI",
    "wasserstein": "Wasserstein / sd",
    "jensen_shannon": "Jensen-Shannon",
}
TESTS = ("ks", "chi_square")  # methods with a p-value; the others compare a distance with a threshold


def _e(text: Any) -> str:
    return html.escape(str(text), quote=True)


def _short(text: Any, limit: int) -> str:
    text = str(text)
    return text if len(text) <= limit else text[: limit - 1] + "…"


def _number(value: float | None, spec: str = ".4f") -> str:
    if value is None:
        return "–"
    if math.isinf(value) or math.isnan(value):  # a constant reference column has no spread to divide by
        return str(value)
    return format(value, spec)


def _plural(n: int, word: str) -> str:
    return f"{n} {word}{'' if n == 1 else 's'}"


def _rule(column: Mapping[str, Any]) -> str:
    """The comparison that decided the column, in words: ``adjusted p 0.0012 < 0.05``."""
    threshold = column["threshold"]
    if column["method"] in TESTS:
        p = column["adjusted_p_value"]
        crossed = p is not None and p < threshold
        return f"adjusted p {_number(p, '.3g')} {'<' if crossed else '≥'} {threshold:g}"
    crossed = column["statistic"] >= threshold
    rule = f"{METHOD_NAMES.get(column['method'], column['method'])} {_number(column['statistic'], '.3f')}"
    return f"{rule} {'≥' if crossed else '<'} {threshold:g}"


def shares_svg(column: Mapping[str, Any], chart_id: str) -> str:
    """Reference and current shares per bin or category as grouped horizontal bars, verdict in the title.

    The two sides differ by fill (solid against hatched) and by the legend's words, not by colour alone.
    """
    histogram = column["histogram"]
    labels, reference, current = histogram["labels"], histogram["reference"], histogram["current"]
    verdict = "drifted" if column["drifted"] else "no drift"
    title = f"{column['column']}: {verdict} ({_rule(column)})"
    width, left, right, top, bar, gap = 360, 116, 46, 52, 7, 6
    inner = width - left - right
    height = top + (2 * bar + gap) * len(labels) + 6
    high = max([*reference, *current, 1e-9])
    hatch = f"{chart_id}-hatch"
    parts = [
        f'<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 {width} {height}" width="{width}" '
        f'height="{height}" role="img" aria-label="{_e(title)}"><title>{_e(title)}</title>',
        f'<defs><pattern id="{hatch}" width="4" height="4" patternUnits="userSpaceOnUse" '
        f'patternTransform="rotate(45)"><rect width="4" height="4" fill="{_CURRENT}" fill-opacity="0.25"/>'
        f'<line x1="0" y1="0" x2="0" y2="4" stroke="{_CURRENT}" stroke-width="2.5"/></pattern></defs>',
        f'<text x="4" y="16" font-size="12" font-weight="bold" fill="{_INK}">'
        f"{_e(_short(column['column'], 34))}: {verdict}</text>",
        f'<rect x="4" y="28" width="12" height="9" fill="{_REFERENCE}"/>'
        f'<text x="20" y="37" font-size="10">reference (solid)</text>'
        f'<rect x="130" y="28" width="12" height="9" fill="url(#{hatch})" stroke="{_CURRENT}"/>'
        f'<text x="146" y="37" font-size="10">current (hatched)</text>',
    ]
    for i, (label, ref, cur) in enumerate(zip(labels, reference, current, strict=True)):
        y = top + i * (2 * bar + gap)
        tip = f"{label}: reference {ref:.1%}, current {cur:.1%}"
        parts.append(
            f"<g><title>{_e(tip)}</title>"
            f'<text x="{left - 6}" y="{y + bar + 3}" text-anchor="end" font-size="10">{_e(_short(label, 18))}</text>'
            f'<rect x="{left}" y="{y}" width="{max(0.5, ref / high * inner):.1f}" height="{bar}" fill="{_REFERENCE}"/>'
            f'<rect x="{left}" y="{y + bar}" width="{max(0.5, cur / high * inner):.1f}" height="{bar}" '
            f'fill="url(#{hatch})" stroke="{_CURRENT}" stroke-width="0.6"/>'
            f'<text x="{width - right + 4}" y="{y + bar - 1}" font-size="8" fill="{_MUTED}">{ref:.1%}</text>'
            f'<text x="{width - right + 4}" y="{y + 2 * bar}" font-size="8" fill="{_INK}">{cur:.1%}</text></g>'
        )
    parts.append("</svg>")
    return "".join(parts)


def _columns(columns: list[Mapping[str, Any]], prefix: str) -> list[dict[str, Any]]:
    """Table rows and charts, drifted columns first (otherwise in the report's order)."""
    ordered = sorted(columns, key=lambda c: not c["drifted"])
    rows = []
    for i, column in enumerate(ordered):
        anchor = f"{prefix}-{i}"
        p = column["adjusted_p_value"]
        rows.append(
            {
                "column": column,
                "anchor": anchor,
                "method": METHOD_NAMES.get(column["method"], column["method"]),
                "statistic": _number(column["statistic"]),
                "p_value": _number(p, ".2e") if p is not None else "–",
                "threshold": f"p < {column['threshold']:g}"
                if column["method"] in TESTS
                else f"≥ {column['threshold']:g}",
                "verdict": "drifted" if column["drifted"] else "no drift",
                "chart": Markup(shares_svg(column, anchor)),
            }
        )
    return rows


def _verdict(report: Mapping[str, Any], window: bool) -> dict[str, Any]:
    """The badge and the findings in plain words, the most important first."""
    features = report["features"]
    n, k = len(features["columns"]), len(features["drifted"])
    findings = []
    if features["dataset_drift"]:
        findings.append(f"The inputs changed: {k} of {_plural(n, 'column')} drifted")
    elif k:
        findings.append(
            f"{k} of {_plural(n, 'column')} drifted, under the {features['drift_share']:.0%} share "
            "that counts as a change of the inputs"
        )
    target = report.get("target_drift")
    if target and target["drifted"]:
        findings.append(f"The target '{target['column']}' changed ({_rule(target)})")
    bbsd = (report.get("predictions") or {}).get("bbsd")
    if bbsd and bbsd["drifted"]:
        findings.append(f"The model's outputs changed (BBSD p = {bbsd['p_value']:.2g})")
    for alert in report.get("alerts") or []:
        if alert["kind"] not in ("feature_drift", "prediction_drift"):  # those two are said above
            findings.append(alert["message"][:1].upper() + alert["message"][1:])
    if not findings:
        findings.append(f"No drift found: none of the {_plural(n, 'column')} drifted" if n else "No columns compared")
    if window and report.get("alerts"):
        badge, css = f"ALERT ({len(report['alerts'])})", "drift"
    elif report["drifted"] or features["dataset_drift"] or (target and target["drifted"]):
        badge, css = "DRIFT", "drift"
    elif k or (bbsd and bbsd["drifted"]):
        badge, css = "SOME DRIFT", "some"
    else:
        badge, css = "NO DRIFT", "none"
    return {"badge": badge, "css": css, "headline": findings[0], "more": findings[1:]}


def _performance(report: Mapping[str, Any]) -> dict[str, Any]:
    """A row per source (reference, estimated, realized) and one sentence comparing them."""
    reference, estimated, realized = report.get("reference") or {}, report.get("estimated"), report.get("realized")
    was = reference.get("accuracy")
    rows = [
        {
            "source": "reference",
            "accuracy": _number(was, ".3f"),
            "interval": "–",
            "f1": _number(reference.get("f1"), ".3f"),
            "basis": f"{reference['validation_rows']:,} validation rows" if reference.get("validation_rows") else "",
        }
    ]
    words = []
    for source, found in (("estimated", estimated), ("realized", realized)):
        if found is None:
            continue
        interval = f"{found['accuracy_low']:.3f}–{found['accuracy_high']:.3f}"
        if source == "estimated":
            basis = f"{found['n']:,} rows, from confidences ({found['method'].upper()})"
            words.append(f"accuracy estimated {found['accuracy']:.3f} ({interval})")
        else:
            share = found.get("labelled_share")
            basis = f"{_plural(found['n'], 'labelled row')}" + (f" ({share:.0%} of the window)" if share else "")
            words.append(f"measured {found['accuracy']:.3f} on {_plural(found['n'], 'labelled row')}")
        level = f"{100 * found['confidence_level']:g}%"
        rows.append(
            {
                "source": source,
                "accuracy": f"{found['accuracy']:.3f}",
                "interval": f"{interval} ({level})",
                "f1": f"{found['f1']:.3f} ({found['f1_low']:.3f}–{found['f1_high']:.3f})",
                "basis": basis,
            }
        )
    if not words:
        sentence = "No performance figures: this window holds no model outputs."
    else:
        sentence = "; ".join(words)
        sentence = sentence[:1].upper() + sentence[1:]
        sentence += f", was {was:.3f} on the validation rows." if was is not None else "."
    return {"rows": rows, "sentence": sentence, "notes": (estimated or {}).get("notes", [])}


def render_drift_html(report: Mapping[str, Any]) -> str:
    """The drift page of a file comparison or of one monitored window (their ``to_dict()`` forms).

    Examples
    --------
    >>> import numpy as np, pandas as pd
    >>> from amploop.monitor.files import FileDriftReport
    >>> from amploop.monitor.profile import Profile
    >>> from amploop.monitor.univariate import compare_profiles
    >>> rows = pd.DataFrame({"age": np.random.default_rng(0).normal(40, 10, 500)})
    >>> reference = Profile.from_table(rows, {"age": "numeric"})
    >>> older = reference.empty().add(rows.assign(age=rows["age"] + 10))
    >>> features = compare_profiles(reference, older)
    >>> report = FileDriftReport("old.csv", "new.csv", None, {"age": "numeric"}, features, None, [], 0.1)
    >>> page = render_drift_html(report.to_dict())
    >>> "The inputs changed: 1 of 1 column drifted" in page, page.count("<svg"), "<script" in page
    (True, 1, False)
    """
    window = "window" in report  # a monitored window; otherwise two files
    environment = jinja2.Environment(autoescape=True, undefined=jinja2.StrictUndefined)
    template = environment.from_string(
        (resources.files("amploop.monitor") / "templates" / "drift.html.j2").read_text(encoding="utf-8")
    )
    features = report["features"]
    predictions = report.get("predictions") or {}
    outputs = predictions.get("outputs")
    target = report.get("target_drift")
    return template.render(
        report=report,
        window=window,
        verdict=_verdict(report, window),
        features=features,
        columns=_columns(features["columns"], "chart"),
        target=_columns([target], "target-chart")[0] if target else None,
        bbsd=predictions.get("bbsd"),
        outputs=outputs,
        output_columns=_columns(outputs["columns"], "output-chart") if outputs else [],
        performance=_performance(report) if window else None,
        files={k: PurePath(str(report.get(k, ""))).name for k in ("reference", "current")},
    )
