"""Is the model still right? One answer per model, in words, from the stored windows and decisions.

:func:`model_health` reads the newest monitored window of the champion and says, with a reason
for each part: **red** when accuracy (measured from labels, or estimated from confidences) fell
past ``monitor.performance_drop`` or the error rate changed (a critical alert), **amber** when
the inputs or the outputs moved (a warning), **green** when the window is quiet, and **grey**
when nothing has been monitored yet. :func:`explain_window` turns a window report into the
sentences a non-technical owner reads ("inputs changed: temperature is higher than during
training; accuracy estimated 0.71, was 0.80"). :func:`health_overview` is every model at once;
:func:`monitoring_series` is a model's windows over time, for charts.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import asdict, dataclass, field
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from amploop.registry.store import Store

__all__ = ["Health", "explain_window", "health_overview", "model_health", "monitoring_series"]

LEVEL_WORDS = {"green": "healthy", "amber": "watch", "red": "needs action", "grey": "no data yet"}


@dataclass(frozen=True)
class Health:
    """A model's health: a level (green, amber, red, grey), its word, and one line per reason."""

    level: str
    word: str
    reasons: list[str] = field(default_factory=list)
    version: int | None = None
    window: dict[str, Any] | None = None  # the window it was read from: rows, first and last time

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def _change(column: Mapping[str, Any]) -> str:
    """How a drifted column moved, in words: higher or lower for a number (from its histogram shares)."""
    histogram = column.get("histogram") or {}
    reference, current = histogram.get("reference"), histogram.get("current")
    if column.get("kind") != "numeric" or not reference or not current:
        return "has a different mix of values than during training"
    before = sum(i * share for i, share in enumerate(reference))
    after = sum(i * share for i, share in enumerate(current))
    if abs(after - before) < 0.25:  # under a quarter of a bin: the spread moved, not the level
        return "is spread differently than during training"
    return f"is {'higher' if after > before else 'lower'} than during training"


def explain_window(report: Mapping[str, Any]) -> list[str]:
    """Plain sentences for one window report: what changed in the inputs, and how right the model is.

    >>> explain_window({"features": {"columns": [{"column": "temperature", "kind": "numeric", "drifted": True,
    ...     "histogram": {"reference": [0.5, 0.5, 0], "current": [0, 0.5, 0.5]}}]},
    ...     "estimated": {"accuracy": 0.71}, "realized": None, "reference": {"accuracy": 0.8}})
    ['inputs changed: temperature is higher than during training', 'accuracy estimated 0.71, was 0.80']
    """
    sentences = []
    drifted = [c for c in report["features"]["columns"] if c.get("drifted")]
    if drifted:
        parts = [f"{c['column']} {_change(c)}" for c in drifted[:3]]
        more = f" (and {len(drifted) - 3} more)" if len(drifted) > 3 else ""
        sentences.append("inputs changed: " + "; ".join(parts) + more)
    else:
        sentences.append("inputs look as they did during training")
    was = (report.get("reference") or {}).get("accuracy")
    realized, estimated = report.get("realized"), report.get("estimated")
    if realized:
        sentences.append(
            f"accuracy measured {realized['accuracy']:.2f} on {realized['n']} labelled rows"
            + (f", was {was:.2f}" if was is not None else "")
        )
    elif estimated:
        sentences.append(f"accuracy estimated {estimated['accuracy']:.2f}" + (f", was {was:.2f}" if was else ""))
    return sentences


def model_health(store: Store, name: str) -> Health:
    """The champion's health from its newest monitored window (grey: none yet, or no champion)."""
    champion = store.alias_version(name, "champion")
    if champion is None:
        return Health("grey", LEVEL_WORDS["grey"], ["no champion: promote a version to serve and watch it"])
    newest = store.drift_reports(name, version=champion, limit=1)
    if not newest:
        return Health("grey", LEVEL_WORDS["grey"], [f"v{champion} has no monitored window yet"], version=champion)
    report = newest[-1].report
    alerts = report.get("alerts", [])
    critical = [a for a in alerts if a["severity"] == "critical"]
    level = "red" if critical else "amber" if alerts else "green"
    # the window in words, and the alarms that the words do not already say (a changed error rate)
    reasons = explain_window(report) + [a["message"] for a in critical if a["kind"] == "error_rate_change"]
    window = report["window"]
    where = {k: window[k] for k in ("first_row", "last_row", "first_at", "last_at") if k in window}
    return Health(level, LEVEL_WORDS[level], reasons, version=champion, window=where)


def health_overview(store: Store) -> list[dict[str, Any]]:
    """Every registered model (as :func:`amploop.registry.overview.models_overview` lists it) with its
    champion, its health and the loop's last decision."""
    from amploop.registry.overview import models_overview

    found = []
    for row in models_overview(store):
        last = store.loop_decisions(row["name"], limit=1)
        found.append(
            {
                **row,
                "champion": row["aliases"].get("champion"),
                "health": model_health(store, row["name"]).to_dict(),
                "last_decision": last[-1].to_dict() if last else None,
            }
        )
    return found


def monitoring_series(store: Store, name: str, *, limit: int = 500) -> list[dict[str, Any]]:
    """The newest ``limit`` windows of every version, oldest first: drift share, estimated and realized accuracy."""
    series = []
    for record in store.drift_reports(name, limit=limit):
        report = record.report
        estimated, realized = report.get("estimated"), report.get("realized")
        series.append(
            {
                "id": record.id,
                "version": record.version,
                "first_at": report["window"].get("first_at"),
                "last_at": report["window"].get("last_at"),
                "rows": report["window"]["n_rows"],
                "share_drifted": report["features"]["share_drifted"],
                "estimated": None
                if not estimated
                else [estimated[k] for k in ("accuracy", "accuracy_low", "accuracy_high")],
                "realized": None
                if not realized
                else [realized[k] for k in ("accuracy", "accuracy_low", "accuracy_high")],
                "reference_accuracy": (report.get("reference") or {}).get("accuracy"),
                "alerts": [
                    {"severity": a["severity"], "kind": a["kind"], "message": a["message"]}
                    for a in report.get("alerts", [])
                ],
                "explained": explain_window(report),
            }
        )
    return series
