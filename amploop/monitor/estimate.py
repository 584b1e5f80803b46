"""How well is the served model doing? Estimated from its confidences, realized from labels.

Label-free estimation is confidence-based performance estimation (CBPE, as in NannyML): when
the served probabilities are calibrated, the probability of the predicted class is the chance
that the prediction is right, so a window's expected confusion matrix follows from the
probabilities alone. For class c, over rows i with probability p_ic and predicted class:

- expected accuracy = mean of p_i,predicted;
- TP_c = sum over rows predicted c of p_ic, FP_c = the same of 1 - p_ic, FN_c = sum over rows
  predicted otherwise of p_ic, and F1_c = 2 TP_c / (2 TP_c + FP_c + FN_c). F1 is the positive
  class's (index 1) for two classes, else the mean over every class (0 for a class that is
  neither predicted nor likely), as :func:`amploop.evaluate.metrics.classification_metrics` does.

The interval is Monte Carlo: labels are drawn from the probabilities ``draws`` times and each
draw's realized accuracy and F1 scored; its quantiles are the sampling noise of a window this
size. Calibration error is the other source: on the validation rows, accuracy minus mean
confidence is a weighted sum of the per-bin gaps, so its size is at most the ECE (Naeini et al.
2015; Guo et al. 2017). Both ends of the interval therefore move out by the held-out ECE the
model version recorded, or by :data:`DEFAULT_WIDENING` when it recorded none. For F1 the same
widening is a heuristic, not a bound.

CBPE follows covariate shift (P(x) moves, P(y | x) stays), since calibration is a property of
P(y | x). Under concept drift (P(y | x) changes) it is blind by construction: the model is as
confident as before while being wrong more often. Only realized performance, from feedback
labels (:func:`realized_performance`), can show that.

Examples
--------
>>> import numpy as np
>>> rng = np.random.default_rng(0)
>>> x = rng.normal(1.0, 1.0, 2000)
>>> positive = 1 / (1 + np.exp(-2.5 * (x - 1)))  # a calibrated logistic model; its boundary at x = 1
>>> probabilities = np.column_stack([1 - positive, positive])
>>> record = {"temperature_kept": True, "reason": "kept T = 1.2", "ece": 0.012, "validation_rows": 1500}
>>> estimate = estimate_performance(probabilities, calibration=record)
>>> [round(v, 3) for v in (estimate.accuracy_low, estimate.accuracy, estimate.accuracy_high)]
[0.783, 0.813, 0.838]
>>> labels = (rng.random(2000) < positive).astype(int)  # the labels that arrive later
>>> realized = realized_performance(labels, probabilities.argmax(1), 2)
>>> [round(v, 3) for v in (realized.accuracy_low, realized.accuracy, realized.accuracy_high)]
[0.811, 0.829, 0.844]
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import asdict, dataclass
from statistics import NormalDist
from typing import Any

import numpy as np

from amploop.errors import UsageError
from amploop.evaluate.bootstrap import Statistic, bootstrap_intervals
from amploop.evaluate.calibration import MIN_CALIBRATION_ROWS, TemperatureDecision

__all__ = [
    "DEFAULT_WIDENING",
    "PerformanceEstimate",
    "RealizedPerformance",
    "calibration_from_decision",
    "estimate_performance",
    "realized_performance",
]

# Without a recorded ECE: above the held-out ECE temperature scaling reaches on most of Guo et
# al. (2017)'s benchmarks (a few percent at most), so the interval errs on the wide side.
DEFAULT_WIDENING = 0.05
ROW_SUM_TOLERANCE = 1e-4
_CALIBRATION_KEYS = ("temperature_kept", "reason", "ece", "validation_rows")
_CELLS_PER_CHUNK = 4_000_000  # draws x rows x classes compared at once (4 MB of booleans)
_CONCEPT_DRIFT = (
    "estimated from confidences: follows covariate shift but is blind to concept drift "
    "(P(y | x) changing); only realized performance from labels can show that"
)


@dataclass(frozen=True)
class PerformanceEstimate:
    """Accuracy and F1 expected from calibrated confidences, with intervals for noise and miscalibration."""

    method: str  # "cbpe"
    n: int  # rows in the window
    accuracy: float
    accuracy_low: float
    accuracy_high: float
    f1: float
    f1_low: float
    f1_high: float
    f1_kind: str  # "binary" (class index 1) or "macro"
    confidence_level: float
    calibration_widening: float  # added to each side of the Monte Carlo interval
    notes: list[str]

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass(frozen=True)
class RealizedPerformance:
    """Accuracy and F1 measured on the labelled rows of a window."""

    n: int  # labelled rows
    accuracy: float
    accuracy_low: float  # Wilson score interval
    accuracy_high: float
    f1: float
    f1_kind: str  # "binary" (class index 1) or "macro"
    f1_low: float  # bootstrap over rows
    f1_high: float
    labelled_share: float | None  # labelled rows / rows in the window (None: window size not given)
    confidence_level: float

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def _f1(true_positive: np.ndarray, predicted_count: np.ndarray, true_count: np.ndarray) -> np.ndarray:
    """F1 along the last (class) axis, then binary or macro: 2 TP / (2 TP + FP + FN), 0 where undefined.

    2 TP + FP + FN = (TP + FP) + (TP + FN) = predicted count + true count, expected or realized.
    """
    denominator = predicted_count + true_count
    per_class = np.divide(2 * true_positive, denominator, out=np.zeros(np.shape(denominator)), where=denominator > 0)
    return per_class[..., 1] if per_class.shape[-1] == 2 else per_class.mean(axis=-1)


def _check_level(confidence_level: float) -> None:
    if not 0 < confidence_level < 1:
        raise UsageError(f"confidence_level {confidence_level}: must lie strictly between 0 and 1, such as 0.95")


def _check_classes(name: str, values: Any, n: int, n_classes: int) -> np.ndarray:
    array = np.asarray(values)
    if array.shape != (n,):
        raise UsageError(f"{name} has shape {array.shape}; pass one class index per row, shape ({n},)")
    if n and (not np.issubdtype(array.dtype, np.integer) or array.min() < 0 or array.max() >= n_classes):
        raise UsageError(f"{name} must hold integer class indices 0..{n_classes - 1}; convert labels to indices first")
    return array.astype(np.int64)


def _check_probabilities(probabilities: Any) -> np.ndarray:
    try:
        p = np.asarray(probabilities, dtype=np.float64)
    except (TypeError, ValueError) as error:
        raise UsageError(f"probabilities are not numbers ({error}); pass an (n, classes) float array") from None
    if p.ndim != 2:
        raise UsageError(f"probabilities have {p.ndim} dimension(s); pass an (n, classes) array, a row per prediction")
    n, k = p.shape
    if n == 0:
        raise UsageError("no rows to estimate from; skip empty windows")
    if k < 2:
        raise UsageError(f"probabilities have {k} class column(s); a classifier's probabilities need at least 2")
    not_finite = ~np.isfinite(p).all(axis=1)
    negative = (p < 0).any(axis=1)  # NaN compares False, so each row is reported once, for its first fault
    sums = p.sum(axis=1)
    off = np.abs(sums - 1) > ROW_SUM_TOLERANCE
    bad = not_finite | negative | off
    if bad.any():
        row = int(np.argmax(bad))
        what = "holds NaN or infinity" if not_finite[row] else "holds a negative value" if negative[row] else None
        what = what or f"sums to {sums[row]:.6g}"
        raise UsageError(
            f"probabilities row {row} {what} ({int(bad.sum())} bad row(s) in all); "
            "pass each row's class probabilities (the calibrated softmax), summing to 1"
        )
    return p / sums[:, None]  # exact sums keep the inverse CDF's last edge at 1


def _calibration_widening(calibration: Mapping[str, Any] | None) -> tuple[float, list[str]]:
    """The widening of each interval end, and notes saying where it came from."""
    if calibration is None:
        return DEFAULT_WIDENING, [f"no calibration record: interval widened by the default {DEFAULT_WIDENING}"]
    if not isinstance(calibration, Mapping):
        raise UsageError("calibration must be a dict or None; build it with calibration_from_decision")
    unknown = sorted(set(calibration) - set(_CALIBRATION_KEYS))
    if unknown:
        raise UsageError(
            f"calibration has unknown key(s) {', '.join(unknown)}; expected {', '.join(_CALIBRATION_KEYS)} "
            "(build it from a TemperatureDecision with calibration_from_decision)"
        )
    ece, kept = calibration.get("ece"), calibration.get("temperature_kept")
    rows = int(calibration.get("validation_rows") or 0)
    reason = calibration.get("reason") or "no reason recorded"
    if ece is None:
        return DEFAULT_WIDENING, [
            f"the calibration record holds no ECE ({reason}): interval widened by the default {DEFAULT_WIDENING}"
        ]
    if isinstance(ece, bool) or not isinstance(ece, (int, float, np.number)) or not 0 <= ece <= 1:
        raise UsageError(f"calibration ece {ece!r}: must be a number in [0, 1] or None")
    served = {True: "temperature-scaled", False: "unscaled (temperature not kept)"}.get(kept, "served")
    notes = [f"interval widened by the held-out ECE {ece:.4f} of the {served} probabilities ({reason})"]
    if rows < MIN_CALIBRATION_ROWS:
        notes.append(f"that ECE comes from {rows} validation rows, too few to be precise")
    return float(ece), notes


def estimate_performance(
    probabilities: np.ndarray,
    predicted: np.ndarray | None = None,
    *,
    calibration: Mapping[str, Any] | None = None,
    confidence_level: float = 0.95,
    draws: int = 500,
    seed: int = 0,
) -> PerformanceEstimate:
    """Accuracy and F1 of a window estimated from its calibrated probabilities (CBPE), without labels.

    ``probabilities``: (n, classes), the served (temperature-scaled) softmax; ``predicted``: the
    served class per row, argmax by default. ``calibration``: the model version's record, from
    :func:`calibration_from_decision`; its ``ece`` widens both interval ends (None: by
    :data:`DEFAULT_WIDENING`). ``draws``: Monte Carlo label draws for the sampling interval.
    """
    p = _check_probabilities(probabilities)
    n, k = p.shape
    predicted = p.argmax(axis=1) if predicted is None else _check_classes("predicted", predicted, n, k)
    _check_level(confidence_level)
    if isinstance(draws, bool) or not isinstance(draws, (int, np.integer)) or draws < 1:
        raise UsageError(f"draws {draws!r}: must be a whole number of at least 1, such as 500")
    widening, notes = _calibration_widening(calibration)

    rows = np.arange(n)
    confidence = p[rows, predicted]
    predicted_count = np.bincount(predicted, minlength=k).astype(float)
    expected_tp = np.bincount(predicted, weights=confidence, minlength=k)
    accuracy = float(confidence.mean())
    f1 = float(_f1(expected_tp, predicted_count, p.sum(axis=0)))

    # Inverse CDF with one uniform per row per draw: the label is the number of CDF edges below u.
    cdf = np.cumsum(p, axis=1)[:, :-1]
    rng = np.random.default_rng(seed)
    chunk = max(1, _CELLS_PER_CHUNK // (n * k))
    drawn_accuracy, drawn_f1 = [], []
    for done in range(0, draws, chunk):
        size = min(chunk, draws - done)
        labels = (rng.random((size, n))[:, :, None] >= cdf).sum(axis=2)
        correct = labels == predicted
        cell = (labels + k * np.arange(size)[:, None]).ravel()  # (draw, true class) as one index
        true_count = np.bincount(cell, minlength=size * k).reshape(size, k)
        true_positive = np.bincount(cell, weights=correct.ravel(), minlength=size * k).reshape(size, k)
        drawn_accuracy.append(correct.mean(axis=1))
        drawn_f1.append(_f1(true_positive, predicted_count, true_count))
    tail = (1 - confidence_level) / 2

    def interval(point: float, values: list[np.ndarray]) -> tuple[float, float]:
        # The draws are the realized metric's own distribution under the model, so their quantiles are
        # the interval (no bootstrap bias correction); min / max with the point because expected F1 (a
        # ratio of expectations) is not exactly the draws' mean.
        low, high = np.quantile(np.concatenate(values), [tail, 1 - tail])
        return max(0.0, float(min(low, point)) - widening), min(1.0, float(max(high, point)) + widening)

    accuracy_low, accuracy_high = interval(accuracy, drawn_accuracy)
    f1_low, f1_high = interval(f1, drawn_f1)
    return PerformanceEstimate(
        method="cbpe",
        n=n,
        accuracy=accuracy,
        accuracy_low=accuracy_low,
        accuracy_high=accuracy_high,
        f1=f1,
        f1_low=f1_low,
        f1_high=f1_high,
        f1_kind="binary" if k == 2 else "macro",
        confidence_level=float(confidence_level),
        calibration_widening=widening,
        notes=[_CONCEPT_DRIFT, *notes],
    )


def _wilson(successes: int, n: int, confidence_level: float) -> tuple[float, float]:
    """Wilson score interval (Wilson 1927): unlike p +- z se, it stays in [0, 1] and is not empty at 0 or n."""
    z = NormalDist().inv_cdf(1 - (1 - confidence_level) / 2)
    share = successes / n
    centre = (share + z * z / (2 * n)) / (1 + z * z / n)
    half = z / (1 + z * z / n) * np.sqrt(share * (1 - share) / n + z * z / (4 * n * n))
    return max(0.0, float(centre - half)), min(1.0, float(centre + half))


def realized_performance(
    labels: np.ndarray,
    predicted: np.ndarray,
    n_classes: int,
    *,
    confidence_level: float = 0.95,
    window_rows: int | None = None,
    resamples: int = 500,
    seed: int = 0,
) -> RealizedPerformance:
    """Accuracy (Wilson interval) and F1 (bootstrap interval) of the labelled rows of a window.

    ``window_rows``: every row predicted in the window, labelled or not, for ``labelled_share``.
    Needs at least one labelled row: callers check first.
    """
    if isinstance(n_classes, bool) or not isinstance(n_classes, (int, np.integer)) or n_classes < 2:
        raise UsageError(f"n_classes {n_classes!r}: a classifier has at least 2 classes")
    n = len(np.asarray(labels))
    if n == 0:
        raise UsageError("no labelled rows: realized performance needs at least one; check the window's labels first")
    labels = _check_classes("labels", labels, n, n_classes)
    predicted = _check_classes("predicted", predicted, n, n_classes)
    _check_level(confidence_level)
    if window_rows is not None and window_rows < n:
        raise UsageError(f"window_rows {window_rows} is fewer than the {n} labelled rows; pass the window's row count")

    correct = labels == predicted
    accuracy_low, accuracy_high = _wilson(int(correct.sum()), n, confidence_level)
    eye = np.eye(n_classes)
    # one weighted product gives each resample's TP, predicted and true counts per class
    counts = np.hstack([eye[predicted] * correct[:, None], eye[predicted], eye[labels]])

    def f1_of(weights: np.ndarray) -> np.ndarray:
        summed = weights @ counts
        return _f1(*np.split(summed, 3, axis=1))

    f1 = float(f1_of(np.ones((1, n)))[0])
    interval = bootstrap_intervals(
        n, {"f1": Statistic(f1_of, 0.0, 1.0)}, samples=resamples, confidence_level=confidence_level, seed=seed
    )["f1"]
    f1_low, f1_high = interval if interval is not None else (0.0, 1.0)  # one row says nothing about its spread
    return RealizedPerformance(
        n=n,
        accuracy=float(correct.mean()),
        accuracy_low=accuracy_low,
        accuracy_high=accuracy_high,
        f1=f1,
        f1_kind="binary" if n_classes == 2 else "macro",
        f1_low=float(f1_low),
        f1_high=float(f1_high),
        labelled_share=None if window_rows is None else n / window_rows,
        confidence_level=float(confidence_level),
    )


def calibration_from_decision(
    decision: Mapping[str, Any] | TemperatureDecision | None, *, ece: float | None = None
) -> dict[str, Any]:
    """The ``calibration`` record for :func:`estimate_performance` from a stored TemperatureDecision.

    The ECE is that of the probabilities actually served: ``ece_after`` when the temperature was
    kept, ``ece_before`` when it was not. When the decision holds none (too few validation rows,
    or no decision at all), ``ece`` is used: one the caller measured on validation rows.

    >>> calibration_from_decision({"kept": False, "reason": "too few rows", "rows": 46, "ece_before": None}, ece=0.03)
    {'temperature_kept': False, 'reason': 'too few rows', 'ece': 0.03, 'validation_rows': 46}
    """
    if isinstance(decision, TemperatureDecision):
        decision = decision.to_dict()
    if decision is None:
        return {"temperature_kept": None, "reason": "no temperature decision", "ece": ece, "validation_rows": 0}
    if not isinstance(decision, Mapping):
        raise UsageError("decision must be a TemperatureDecision, its to_dict(), or None")
    kept = decision.get("kept")
    recorded = None if kept is None else decision.get("ece_after" if kept else "ece_before")
    return {
        "temperature_kept": None if kept is None else bool(kept),
        "reason": str(decision.get("reason") or ""),
        "ece": float(recorded) if recorded is not None else ece,
        "validation_rows": int(decision.get("rows") or 0),
    }
