"""New rows against the version's own test result: is the model as good here as where it was tested?

When a version is evaluated on rows of the user's choosing (``amploop evaluate NAME --data
FILE``), its metrics there are set beside the ones measured on its own held-out test rows. A
difference counts as real only when the two intervals do not overlap; otherwise it is within
what the two samples' noise allows.

Examples
--------
>>> comparison = compare_with_holdout(
...     {"accuracy": 0.78}, {"accuracy": 0.86}, task="classification", source="the training run's test rows",
...     new_intervals={"accuracy": (0.75, 0.81)}, holdout_intervals={"accuracy": (0.85, 0.87)},
... )
>>> comparison.summary
"accuracy 0.7800 on these rows against 0.8600 on the training run's test rows: 0.0800 lower, beyond both intervals"
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import asdict, dataclass
from typing import Any

__all__ = ["HOLDOUT_METRICS", "HoldoutComparison", "MetricComparison", "compare_with_holdout"]

HOLDOUT_METRICS = {  # compared metrics, and whether higher is better
    "classification": {
        "accuracy": True,
        "balanced_accuracy": True,
        "f1_macro": True,
        "roc_auc": True,
        "log_loss": False,
        "ece": False,
    },
    "regression": {"rmse": False, "mae": False, "r2": True},
}


@dataclass(frozen=True)
class MetricComparison:
    metric: str
    new: float  # on the rows evaluated now
    holdout: float  # on the version's own test rows
    delta: float  # new - holdout
    new_interval: tuple[float, float] | None
    holdout_interval: tuple[float, float] | None
    verdict: str  # better, worse, or similar (the intervals overlap, or there are none)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass(frozen=True)
class HoldoutComparison:
    """The metrics on the new rows beside the version's own test result."""

    source: str  # where the test result comes from
    metrics: list[MetricComparison]
    summary: str

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def _finite(value: Any) -> bool:
    return isinstance(value, int | float) and value == value and abs(value) != float("inf")


def compare_with_holdout(
    new: Mapping[str, Any],
    holdout: Mapping[str, Any],
    *,
    task: str,
    source: str,
    new_intervals: Mapping[str, Any] | None = None,
    holdout_intervals: Mapping[str, Any] | None = None,
) -> HoldoutComparison:
    """Compare the metrics in ``new`` with those in ``holdout`` (the version's test result, from ``source``)."""
    new_intervals, holdout_intervals = dict(new_intervals or {}), dict(holdout_intervals or {})
    compared: list[MetricComparison] = []
    for metric, higher_is_better in HOLDOUT_METRICS.get(task, {}).items():
        mine, theirs = new.get(metric), holdout.get(metric)
        if not (_finite(mine) and _finite(theirs)):
            continue
        a, b = new_intervals.get(metric), holdout_intervals.get(metric)
        a = tuple(a) if a is not None else None
        b = tuple(b) if b is not None else None
        verdict = "similar"
        if a is not None and b is not None and (a[1] < b[0] or b[1] < a[0]):  # the intervals do not overlap
            verdict = "better" if (mine > theirs) == higher_is_better else "worse"
        compared.append(MetricComparison(metric, float(mine), float(theirs), float(mine - theirs), a, b, verdict))
    if not compared:
        summary = f"no metric in common with {source} to compare"
    else:
        first = compared[0]
        direction = "higher" if first.delta > 0 else "lower"
        if first.verdict != "similar":
            noise = "beyond both intervals"
        elif first.new_interval and first.holdout_interval:
            noise = "within the noise of both samples"
        else:
            noise = "without intervals to judge the noise"
        size = f"{abs(first.delta):.4f} {direction}" if first.delta else "the same"
        summary = (
            f"{first.metric} {first.new:.4f} on these rows against {first.holdout:.4f} on {source}: {size}, {noise}"
        )
    return HoldoutComparison(source=source, metrics=compared, summary=summary)
