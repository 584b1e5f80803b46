"""Label issues by confident learning, and the model features the screening model uses.

Confident learning (Northcutt, Jiang and Chuang, JAIR 2021): out-of-fold probabilities, per-class
thresholds, the off-diagonal of the confident joint — written here because the reference
implementation, cleanlab, is AGPL. scikit-learn is imported inside the functions that use it.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd

from amploop.data.dataset import Dataset
from amploop.data.quality.basic import _empty_columns, _unusable_numbers
from amploop.data.quality.report import _MAX_ROWS_LISTED, Finding


def _model_columns(dataset: Dataset) -> list[str]:
    """The feature columns the screening model sees: a column with no usable value cannot be binned."""
    empty = set(_empty_columns(dataset))
    return [c for c in dataset.feature_names if c not in empty and c not in dataset.arrays and _has_usable(dataset, c)]


def _has_usable(dataset: Dataset, column: str) -> bool:
    """Whether a column holds at least one value the screening model can use (finite, in float32 range)."""
    values = dataset.table[column]
    if not pd.api.types.is_numeric_dtype(values) or pd.api.types.is_bool_dtype(values):
        return bool(values.notna().any())
    floats = values.astype(float).to_numpy()
    infinite, overflowing = _unusable_numbers(floats)
    return bool((~(infinite | overflowing | np.isnan(floats))).any())


def _features_for_model(dataset: Dataset) -> np.ndarray:
    """A numeric matrix for the screening model; infinite, overflowing and all-missing values are left out."""
    if dataset.arrays:
        images = next(iter(dataset.arrays.values()))
        flat = images.reshape(len(images), -1).astype(np.float64)
        infinite, overflowing = _unusable_numbers(flat)
        flat[infinite | overflowing | np.isnan(flat)] = 0.0
        scale = 255.0 if images.dtype == np.uint8 else max(float(np.abs(flat).max()), 1.0)
        return (flat / scale).astype(np.float32)
    parts = []
    for column in _model_columns(dataset):
        values = dataset.table[column]
        if pd.api.types.is_numeric_dtype(values) and not pd.api.types.is_bool_dtype(values):
            floats = values.astype(float).to_numpy()
            infinite, overflowing = _unusable_numbers(floats)
            parts.append(np.where(infinite | overflowing, np.nan, floats)[:, None])  # NaN: "missing" to the model
        else:
            parts.append(_category_codes(values)[:, None])
    return np.hstack(parts) if parts else np.zeros((dataset.n_rows, 0))


# HistGradientBoosting takes a categorical feature with at most 255 values (its bin count).
MAX_SCREENING_CATEGORIES = 255


def _category_codes(values: pd.Series) -> np.ndarray:
    """Integer codes of a text column; past the 254 most frequent values, the rest share one code.

    An ID or free-text column has more distinct values than the screening model can bin: lumping
    the rare ones keeps whatever signal the frequent values carry (an ID column carries none).
    """
    codes, uniques = pd.factorize(values.astype(str))
    if len(uniques) > MAX_SCREENING_CATEGORIES:
        frequent = np.argsort(-np.bincount(codes), kind="stable")[: MAX_SCREENING_CATEGORIES - 1]
        remap = np.full(len(uniques), MAX_SCREENING_CATEGORIES - 1)
        remap[frequent] = np.arange(len(frequent))
        codes = remap[codes]
    return codes.astype(float)


def out_of_fold_probabilities(dataset: Dataset, labels: np.ndarray, *, folds: int = 5, seed: int = 0) -> np.ndarray:
    """Predicted probabilities for every row from a model that never saw it (K-fold)."""
    from sklearn.model_selection import StratifiedKFold

    x = _features_for_model(dataset)
    if dataset.arrays:
        from sklearn.linear_model import LogisticRegression

        def make() -> Any:
            return LogisticRegression(max_iter=300, C=0.05)
    else:
        from sklearn.ensemble import HistGradientBoostingClassifier

        categorical = [
            not (pd.api.types.is_numeric_dtype(dataset.table[c]) and not pd.api.types.is_bool_dtype(dataset.table[c]))
            for c in _model_columns(dataset)
        ]

        def make() -> Any:
            return HistGradientBoostingClassifier(
                max_iter=100, categorical_features=categorical or None, random_state=seed
            )

    n_classes = int(labels.max()) + 1
    probabilities = np.zeros((len(labels), n_classes))
    splitter = StratifiedKFold(n_splits=folds, shuffle=True, random_state=seed)
    for train, held in splitter.split(x, labels):
        model = make().fit(x[train], labels[train])
        probabilities[np.ix_(held, model.classes_)] = model.predict_proba(x[held])
    return probabilities


def find_label_issues(labels: np.ndarray, probabilities: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Confident learning: rows whose confidently predicted class differs from their label.

    A row counts as confidently class j when its probability for j reaches class j's threshold,
    the mean probability of j over the rows labelled j; among several such classes the most
    probable wins. Rows whose confident class is not their label are the off-diagonal of the
    confident joint. Returns (flagged mask, self-confidence p[label]) — lower is more suspicious.
    """
    n_classes = probabilities.shape[1]
    thresholds = np.array(
        [probabilities[labels == j, j].mean() if np.any(labels == j) else 1.0 for j in range(n_classes)]
    )
    above = probabilities >= thresholds[None, :] - 1e-12
    masked = np.where(above, probabilities, -1.0)
    confident = masked.argmax(1)
    has_confident = above.any(1)
    flagged = has_confident & (confident != labels)
    self_confidence = probabilities[np.arange(len(labels)), labels]
    return flagged, self_confidence


def _label_issue_findings(dataset: Dataset, seed: int) -> tuple[list[Finding], dict[int, float]]:
    if dataset.target is None or dataset.task != "classification" or dataset.n_rows < 50:
        return [], {}
    if dataset.labels.isna().any():
        return [], {}  # rows without a label are reported as blocking
    if not dataset.arrays and not _model_columns(dataset):
        return [], {}  # no feature a model could use
    codes, _ = pd.factorize(dataset.labels.astype(str), sort=True)
    counts = np.bincount(codes)
    if len(counts) < 2 or counts.min() < 5:
        return [], {}
    probabilities = out_of_fold_probabilities(dataset, codes, seed=seed)
    flagged, self_confidence = find_label_issues(codes, probabilities)
    count = int(flagged.sum())
    scores = {int(i): float(1 - self_confidence[i]) for i in np.flatnonzero(flagged)}
    if not count:
        return [], scores
    share = count / dataset.n_rows
    ranked = sorted(scores, key=lambda i: -scores[i])
    return [
        Finding(
            "label_issues",
            "warn" if share >= 0.05 else "info",
            f"{count} rows ({share:.1%}) are confidently predicted as another class than their label; "
            "review the top-ranked ones",
            [dataset.target],
            ranked[:_MAX_ROWS_LISTED],
            count,
            {"share": share, "method": "confident joint"},
        )
    ], scores
