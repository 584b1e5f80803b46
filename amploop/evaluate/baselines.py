"""Trivial baselines: what a model that learned nothing would score on the same rows.

- majority class: always predict the class most common in the training rows;
- prior: predict class k at random with its training share p_k (stratified random); its
  expected accuracy is sum_k p_k q_k (q_k: the class's share of the evaluation rows), its
  expected recall of class k is p_k, and F1 uses the expected precision q_k and recall p_k;
- regression: always predict the training mean.

A model earns its keep by beating the strongest of them: the ``baseline_margin`` gate metric is
its balanced accuracy minus the best baseline's (classification; accuracy would let the
majority class pass on a 1:51 table) or ``1 - RMSE / RMSE of the mean`` (regression: the share
of the mean predictor's error removed). Balanced accuracy is reported beside accuracy whenever
the classes are skewed (the largest class at least :data:`SKEW_RATIO` times the smallest).

Examples
--------
>>> import numpy as np
>>> y = np.array([0] * 51 + [1])  # a 1:51 table
>>> always_zero = np.zeros((52, 2)); always_zero[:, 0] = 1
>>> report = classification_baselines(y, always_zero, classes=["no", "yes"])
>>> report.skewed, round(report.model_value, 2), report.best, report.margin
(True, 0.5, 'majority_class', 0.0)
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

import numpy as np

from amploop.evaluate.metrics import balanced_accuracy, precision_recall_f1, rmse

__all__ = ["SKEW_RATIO", "Baseline", "BaselineReport", "classification_baselines", "regression_baselines"]

SKEW_RATIO = 1.5  # classes count as skewed when the largest holds at least this many times the smallest's rows


@dataclass(frozen=True)
class Baseline:
    name: str  # majority_class, prior, training_mean
    description: str
    metrics: dict[str, float]

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass(frozen=True)
class BaselineReport:
    """The trivial baselines on the evaluation rows and the model's margin over the strongest."""

    metric: str  # what the margin compares: balanced_accuracy (classification) or rmse (regression)
    source: str  # where the baselines' class shares or mean came from: training rows or evaluation rows
    baselines: list[Baseline]
    model_value: float  # the model's balanced accuracy or RMSE on the same rows
    best: str | None  # the strongest baseline's name
    margin: float | None  # the baseline_margin gate metric (None: it cannot be judged; see note)
    note: str | None  # why there is no margin
    class_shares: dict[str, float] | None  # share of each class in the evaluation rows
    skewed: bool  # show balanced accuracy beside accuracy

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def class_shares(y: np.ndarray, n_classes: int) -> np.ndarray:
    return np.bincount(np.asarray(y, dtype=np.int64), minlength=n_classes) / max(len(y), 1)


def is_skewed(shares: np.ndarray) -> bool:
    """The largest class holds at least SKEW_RATIO times the smallest's rows (an absent class counts as 0)."""
    return bool(len(shares) > 1 and shares.max() >= SKEW_RATIO * shares.min())


def classification_baselines(
    y: np.ndarray,
    probabilities: np.ndarray,
    *,
    classes: list[str] | None = None,
    training_shares: np.ndarray | None = None,
) -> BaselineReport:
    """Majority-class and prior baselines; ``training_shares`` (None: the evaluation rows' own) set both."""
    y = np.asarray(y, dtype=np.int64)
    n_classes = probabilities.shape[1]
    names = classes or [str(c) for c in range(n_classes)]
    shares = class_shares(y, n_classes)
    prior = shares if training_shares is None else np.asarray(training_shares, dtype=float)
    source = "evaluation rows" if training_shares is None else "training rows"
    majority = int(np.argmax(prior))
    present = shares > 0
    n_present = max(int(present.sum()), 1)

    constant = np.full(len(y), majority)
    majority_scores = precision_recall_f1(y, constant, n_classes)
    prior_f1 = np.divide(2 * prior * shares, prior + shares, out=np.zeros(n_classes), where=(prior + shares) > 0)
    baselines = [
        Baseline(
            "majority_class",
            f"always '{names[majority]}', the most common class in the {source}",
            {
                "accuracy": float(shares[majority]),
                "balanced_accuracy": float(present[majority] / n_present),
                "f1_macro": float(majority_scores["f1"].mean()),
            },
        ),
        Baseline(
            "prior",
            f"each class at random with its share of the {source} (expected values)",
            {
                "accuracy": float(prior @ shares),
                "balanced_accuracy": float(prior[present].sum() / n_present),
                "f1_macro": float(prior_f1.mean()),
            },
        ),
    ]
    model_value = balanced_accuracy(y, probabilities.argmax(1), n_classes) if len(y) else float("nan")
    best = max(baselines, key=lambda b: b.metrics["balanced_accuracy"])
    margin: float | None = model_value - best.metrics["balanced_accuracy"]
    note = None
    if int(present.sum()) < 2:
        margin = None
        note = "the evaluation rows hold a single class: balanced accuracy cannot tell a model from a constant"
    return BaselineReport(
        metric="balanced_accuracy",
        source=source,
        baselines=baselines,
        model_value=float(model_value),
        best=best.name,
        margin=margin,
        note=note,
        class_shares={name: float(s) for name, s in zip(names, shares, strict=True)},
        skewed=is_skewed(shares),
    )


def regression_baselines(y: np.ndarray, predicted: np.ndarray, *, training_mean: float | None = None) -> BaselineReport:
    """The training mean as a constant prediction (None: the evaluation rows' own mean)."""
    y, predicted = np.asarray(y, dtype=float), np.asarray(predicted, dtype=float)
    source = "evaluation rows" if training_mean is None else "training rows"
    mean = float(np.mean(y)) if training_mean is None else float(training_mean)
    constant = np.full(len(y), mean)
    base_rmse = rmse(y, constant)
    model_rmse = rmse(y, predicted)
    baseline = Baseline(
        "training_mean",
        f"always {mean:.6g}, the mean target of the {source}",
        {"rmse": base_rmse, "mae": float(np.mean(np.abs(y - mean)))},
    )
    margin, note = None, None
    if base_rmse > 0:
        margin = 1.0 - model_rmse / base_rmse
    else:
        note = "every target equals the baseline's constant: there is no error to improve on"
    return BaselineReport(
        metric="rmse",
        source=source,
        baselines=[baseline],
        model_value=model_rmse,
        best=baseline.name,
        margin=margin,
        note=note,
        class_shares=None,
        skewed=False,
    )
