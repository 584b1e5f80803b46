"""Metric functions on plain NumPy arrays.

Written here rather than called from scikit-learn so that they run vectorised inside the
bootstrap (thousands of resamples per slice) and need nothing beyond NumPy; the tests check
every one against scikit-learn.

Classification functions take integer labels ``y`` in ``0..C-1`` and probabilities ``p`` of
shape (n, C). ROC AUC and PR AUC are one-vs-rest, macro-averaged over the classes present.

Examples
--------
>>> import numpy as np
>>> y = np.array([0, 1, 1, 0])
>>> p = np.array([[0.9, 0.1], [0.2, 0.8], [0.6, 0.4], [0.7, 0.3]])
>>> accuracy(y, p.argmax(1)), round(roc_auc(y, p), 3), round(log_loss(y, p), 4)
(0.75, 1.0, 0.4004)
"""

from __future__ import annotations

from typing import Any

import numpy as np

__all__ = [
    "CLASSIFICATION_METRICS",
    "REGRESSION_METRICS",
    "accuracy",
    "balanced_accuracy",
    "brier_score",
    "classification_metrics",
    "confusion_matrix",
    "log_loss",
    "mae",
    "mape",
    "pr_auc",
    "precision_recall_f1",
    "r2",
    "regression_metrics",
    "rmse",
    "roc_auc",
]

_EPS = 1e-15


def accuracy(y: np.ndarray, predicted: np.ndarray) -> float:
    return float(np.mean(np.asarray(y) == np.asarray(predicted))) if len(y) else float("nan")


def confusion_matrix(y: np.ndarray, predicted: np.ndarray, n_classes: int) -> np.ndarray:
    """Rows are true classes, columns predicted classes."""
    return np.bincount(np.asarray(y) * n_classes + np.asarray(predicted), minlength=n_classes**2).reshape(
        n_classes, n_classes
    )


def precision_recall_f1(y: np.ndarray, predicted: np.ndarray, n_classes: int) -> dict[str, np.ndarray]:
    """Per-class precision, recall and F1 (0 where undefined, as scikit-learn's zero_division=0)."""
    cm = confusion_matrix(y, predicted, n_classes).astype(float)
    tp = np.diag(cm)
    predicted_count, true_count = cm.sum(0), cm.sum(1)
    precision = np.divide(tp, predicted_count, out=np.zeros_like(tp), where=predicted_count > 0)
    recall = np.divide(tp, true_count, out=np.zeros_like(tp), where=true_count > 0)
    denom = precision + recall
    f1 = np.divide(2 * precision * recall, denom, out=np.zeros_like(tp), where=denom > 0)
    return {"precision": precision, "recall": recall, "f1": f1, "support": true_count}


def balanced_accuracy(y: np.ndarray, predicted: np.ndarray, n_classes: int) -> float:
    scores = precision_recall_f1(y, predicted, n_classes)
    present = scores["support"] > 0
    return float(scores["recall"][present].mean())


def _binary_auc(positive: np.ndarray, score: np.ndarray) -> float:
    """ROC AUC as the Mann-Whitney U statistic, ties counted half (average ranks)."""
    n_pos = int(positive.sum())
    n_neg = len(positive) - n_pos
    if n_pos == 0 or n_neg == 0:
        return float("nan")
    order = np.argsort(score, kind="mergesort")
    ranks = np.empty(len(score), dtype=float)
    sorted_scores = score[order]
    # average ranks over ties
    boundaries = np.flatnonzero(np.diff(sorted_scores)) + 1
    starts = np.concatenate([[0], boundaries])
    ends = np.concatenate([boundaries, [len(score)]])
    avg = (starts + ends + 1) / 2.0
    ranks[order] = np.repeat(avg, ends - starts)
    return float((ranks[positive].sum() - n_pos * (n_pos + 1) / 2) / (n_pos * n_neg))


def _binary_average_precision(positive: np.ndarray, score: np.ndarray) -> float:
    """Average precision: sum over thresholds of (R_n - R_{n-1}) P_n, as scikit-learn computes it."""
    n_pos = int(positive.sum())
    if n_pos == 0:
        return float("nan")
    order = np.argsort(-score, kind="mergesort")
    s, pos = score[order], positive[order]
    distinct = np.flatnonzero(np.diff(s)) if len(s) > 1 else np.array([], dtype=int)
    thresholds = np.concatenate([distinct, [len(s) - 1]])
    tps = np.cumsum(pos)[thresholds]
    fps = (thresholds + 1) - tps
    precision = tps / (tps + fps)
    recall = tps / n_pos
    previous = np.concatenate([[0.0], recall[:-1]])
    return float(np.sum((recall - previous) * precision))


def _one_vs_rest(y: np.ndarray, p: np.ndarray, metric: Any) -> float:
    y = np.asarray(y)
    if p.shape[1] == 2:
        return metric(y == 1, p[:, 1])
    values = [metric(y == c, p[:, c]) for c in range(p.shape[1]) if 0 < (y == c).sum() < len(y)]
    return float(np.mean(values)) if values else float("nan")


def roc_auc(y: np.ndarray, p: np.ndarray) -> float:
    return _one_vs_rest(y, p, _binary_auc)


def pr_auc(y: np.ndarray, p: np.ndarray) -> float:
    """Average precision (the area under the precision-recall curve, step-wise)."""
    return _one_vs_rest(y, p, _binary_average_precision)


def log_loss(y: np.ndarray, p: np.ndarray) -> float:
    picked = np.clip(p[np.arange(len(y)), y], _EPS, 1.0)
    return float(-np.mean(np.log(picked)))


def brier_score(y: np.ndarray, p: np.ndarray) -> float:
    """Mean squared error of the probabilities against one-hot labels; binary: of the positive class."""
    onehot = np.eye(p.shape[1])[y]
    if p.shape[1] == 2:
        return float(np.mean((p[:, 1] - onehot[:, 1]) ** 2))
    return float(np.mean(np.sum((p - onehot) ** 2, axis=1)))


def classification_metrics(y: np.ndarray, p: np.ndarray, classes: list[str] | None = None) -> dict[str, Any]:
    n_classes = p.shape[1]
    predicted = p.argmax(1)
    per_class = precision_recall_f1(y, predicted, n_classes)
    names = classes or [str(c) for c in range(n_classes)]
    return {
        "accuracy": accuracy(y, predicted),
        "balanced_accuracy": balanced_accuracy(y, predicted, n_classes),
        "precision_macro": float(per_class["precision"].mean()),
        "recall_macro": float(per_class["recall"].mean()),
        "f1_macro": float(per_class["f1"].mean()),
        "roc_auc": roc_auc(y, p),
        "pr_auc": pr_auc(y, p),
        "log_loss": log_loss(y, p),
        "brier": brier_score(y, p),
        "per_class": {
            name: {k: float(per_class[k][i]) for k in ("precision", "recall", "f1", "support")}
            for i, name in enumerate(names)
        },
        "confusion_matrix": confusion_matrix(y, predicted, n_classes).tolist(),
    }


def mae(y: np.ndarray, predicted: np.ndarray) -> float:
    return float(np.mean(np.abs(y - predicted)))


def rmse(y: np.ndarray, predicted: np.ndarray) -> float:
    return float(np.sqrt(np.mean((y - predicted) ** 2)))


def r2(y: np.ndarray, predicted: np.ndarray) -> float:
    total = np.sum((y - np.mean(y)) ** 2)
    return float(1 - np.sum((y - predicted) ** 2) / total) if total > 0 else float("nan")


def mape(y: np.ndarray, predicted: np.ndarray) -> float:
    """Mean absolute percentage error as a fraction; |y| is floored at machine epsilon (as scikit-learn)."""
    return float(np.mean(np.abs(y - predicted) / np.maximum(np.abs(y), np.finfo(float).eps)))


def regression_metrics(y: np.ndarray, predicted: np.ndarray) -> dict[str, float]:
    return {"mae": mae(y, predicted), "rmse": rmse(y, predicted), "r2": r2(y, predicted), "mape": mape(y, predicted)}


CLASSIFICATION_METRICS = (
    "accuracy",
    "balanced_accuracy",
    "precision_macro",
    "recall_macro",
    "f1_macro",
    "roc_auc",
    "pr_auc",
    "log_loss",
    "brier",
)
REGRESSION_METRICS = ("mae", "rmse", "r2", "mape")
