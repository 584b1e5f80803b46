"""Label issues by confident learning, and the model features the screening model uses.

Confident learning (Northcutt, Jiang and Chuang, JAIR 2021): out-of-fold probabilities, per-class
thresholds, the off-diagonal of the confident joint — written here because the reference
implementation, cleanlab, is AGPL. scikit-learn is imported inside the functions that use it.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator
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


# The screening model: gradient boosting, sized to finish in seconds. Each class costs one tree per
# round, so 10 classes cost five times what 2 do. 60 rounds at learning rate 0.2 with 15 leaves flag
# planted flips within a point or two of precision and recall of what 100 rounds at 0.1 with 31 leaves
# did, in 40% of the CPU time (bench/label_issues.py: 4.3 s instead of 11 s on load_digits).
SCREENING_ROUNDS = 60
SCREENING_LEARNING_RATE = 0.2
SCREENING_LEAVES = 15
# Each fold's model learns from a random subset of at most max(20,000, 200,000 / classes) rows: the
# cost (one tree per class and round, each in time linear in its rows) then stops growing with the
# table, while every row is still predicted by a model that never saw it. Two classes keep 100,000.
MIN_SCREENING_TRAINING_ROWS = 20_000
SCREENING_TRAINING_BUDGET = 200_000  # training rows times classes


def out_of_fold_probabilities(
    dataset: Dataset, labels: np.ndarray, *, folds: int = 5, seed: int = 0, progress: bool = False
) -> np.ndarray:
    """Predicted probabilities for every row from a model that never saw it (K-fold).

    ``labels`` are integer class codes 0..k-1. ``progress`` shows a bar on stderr, one step a fold.
    """
    from sklearn.model_selection import StratifiedKFold
    from threadpoolctl import threadpool_limits

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
                max_iter=SCREENING_ROUNDS,
                learning_rate=SCREENING_LEARNING_RATE,
                max_leaf_nodes=SCREENING_LEAVES,
                early_stopping=False,  # its 10% validation split leaves the model too unsure to flag flips
                categorical_features=categorical if any(categorical) else None,
                random_state=seed,
            )

    rng = np.random.default_rng(seed)
    n_classes = int(labels.max()) + 1
    probabilities = np.zeros((len(labels), n_classes))
    cap = max(MIN_SCREENING_TRAINING_ROWS, SCREENING_TRAINING_BUDGET // n_classes)
    splitter = StratifiedKFold(n_splits=folds, shuffle=True, random_state=seed)
    # One thread per model: on a busy two-core machine, OpenMP threads that wait for each other made
    # the screen 15 times slower (166 s instead of 11 s on load_digits: 1,797 rows, 64 columns, 10 classes).
    with _progress_bar(progress, "label issues", folds) as advance, threadpool_limits(limits=1):
        for train, held in splitter.split(x, labels):
            train = _capped(train, labels, cap, rng)
            model = make().fit(x[train], labels[train])
            probabilities[np.ix_(held, model.classes_)] = model.predict_proba(x[held])
            advance()
    return probabilities


def _capped(rows: np.ndarray, labels: np.ndarray, cap: int, rng: np.random.Generator) -> np.ndarray:
    """At most about ``cap`` of ``rows``, each class in its share but keeping up to 100 rows of a rare one.

    A plain random subset could leave a rare class out, and then every row of it would look mislabelled.
    """
    if len(rows) <= cap:
        return rows
    kept = []
    for code in np.unique(labels[rows]):
        of_class = rows[labels[rows] == code]
        quota = max(round(len(of_class) * cap / len(rows)), min(len(of_class), 100))
        kept.append(rng.choice(of_class, min(quota, len(of_class)), replace=False))
    return np.sort(np.concatenate(kept))


@contextlib.contextmanager
def _progress_bar(enabled: bool, description: str, total: int) -> Iterator[Callable[[], None]]:
    """A rich bar on stderr that vanishes when done (train/throughput.py has one, but data sits below train)."""
    if not enabled:
        yield lambda: None
        return
    from rich.console import Console
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

    with Progress(
        TextColumn("{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        console=Console(stderr=True),
        transient=True,
    ) as bar:
        task = bar.add_task(description, total=total)
        yield lambda: bar.advance(task)


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


def _label_issue_findings(
    dataset: Dataset, seed: int, *, progress: bool = False
) -> tuple[list[Finding], dict[int, float]]:
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
    probabilities = out_of_fold_probabilities(dataset, codes, seed=seed, progress=progress)
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
