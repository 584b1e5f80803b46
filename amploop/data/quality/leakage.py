"""Leakage: between a dataset and the data it will be tested against, and from a feature to the target.

Train/test leakage (``--against``, or a dataset's own train and test splits) is found as exact
duplicates, near-duplicates by hashing normalised rows, or a perceptual hash for images; target
leakage is one feature that alone predicts the label almost perfectly, measured on held-out rows.
"""

from __future__ import annotations

import warnings
from typing import Any

import numpy as np
import pandas as pd

from amploop.data.dataset import Dataset
from amploop.data.fingerprint import row_hashes
from amploop.data.quality.basic import _empty_columns, _unusable_numbers
from amploop.data.quality.report import _MAX_ROWS_LISTED, Finding, Severity
from amploop.errors import SchemaError


def _normalised(table: pd.DataFrame) -> pd.DataFrame:
    """Rows as a near-duplicate sees them: numbers to 3 significant digits, text lower-cased and trimmed."""
    out = {}
    for column in table.columns:
        values = table[column]
        if pd.api.types.is_numeric_dtype(values) and not pd.api.types.is_bool_dtype(values):
            floats = values.astype(float).to_numpy()
            with np.errstate(all="ignore"):  # inf and NaN stay themselves; they are reported elsewhere
                magnitude = np.where(floats == 0, 0, np.floor(np.log10(np.abs(np.where(floats == 0, 1, floats)))))
                out[column] = np.round(floats / 10**magnitude, 2) * 10**magnitude
        else:
            out[column] = values.astype(str).str.strip().str.lower().str.replace(r"\s+", " ", regex=True)
    return pd.DataFrame(out)


def average_hash(images: np.ndarray) -> np.ndarray:
    """A 64-bit perceptual hash per image: 8x8 block means above the image mean (aHash)."""
    x = images.astype(np.float32)
    if x.ndim == 4:
        x = x.mean(axis=1)
    n, h, w = x.shape
    hb, wb = h // 8, w // 8
    blocks = x[:, : hb * 8, : wb * 8].reshape(n, 8, hb, 8, wb).mean(axis=(2, 4)).reshape(n, 64)
    bits = blocks > blocks.mean(axis=1, keepdims=True)
    return np.packbits(bits, axis=1).view(">u8").ravel()


def _check_same_columns(dataset: Dataset, against: Dataset) -> None:
    """Leakage is only measured between data of one schema; a target may be absent on one side."""
    targets = {dataset.target, against.target} - {None}
    ours = set(dataset.schema.names) - targets
    theirs = set(against.schema.names) - targets
    if ours == theirs:
        return
    only_ours, only_theirs = sorted(ours - theirs), sorted(theirs - ours)
    parts = []
    if only_ours:
        parts.append(f"only in {dataset.name}: {', '.join(only_ours[:10])}")
    if only_theirs:
        parts.append(f"only in {against.name}: {', '.join(only_theirs[:10])}")
    raise SchemaError(
        f"{dataset.name} and {against.name} have different columns ({'; '.join(parts)}); compare data with the "
        "same columns",
        only_in_dataset=only_ours,
        only_in_against=only_theirs,
    )


def _leakage_findings(dataset: Dataset, against: Dataset) -> list[Finding]:
    findings: list[Finding] = []
    features = [c for c in dataset.table.columns if c != dataset.target and c in against.table.columns]
    mine = row_hashes(dataset.table[features], dataset.arrays)
    theirs = set(row_hashes(against.table[features], against.arrays).tolist())
    exact = np.array([h in theirs for h in mine.tolist()], dtype=bool)
    count = int(exact.sum())
    if count:
        share = count / dataset.n_rows
        severity: Severity = "block" if share >= 0.05 else "warn" if share >= 0.005 else "info"
        findings.append(
            Finding(
                "split_leakage",
                severity,
                f"{count} rows ({share:.2%}) also appear in {against.name}; a test on them measures "
                "memory, not generalisation: remove them from one side",
                features[:5],
                np.flatnonzero(exact)[:_MAX_ROWS_LISTED].tolist(),
                count,
                {"share": share, "kind": "exact"},
            )
        )
    if dataset.arrays:
        name = next(iter(dataset.arrays))
        ours, theirs_hash = average_hash(dataset.arrays[name]), set(average_hash(against.arrays[name]).tolist())
        near = np.array([h in theirs_hash for h in ours.tolist()]) & ~exact
    else:
        ours_n = pd.util.hash_pandas_object(_normalised(dataset.table[features]), index=False).to_numpy()
        theirs_n = set(pd.util.hash_pandas_object(_normalised(against.table[features]), index=False).tolist())
        near = np.array([h in theirs_n for h in ours_n.tolist()], dtype=bool) & ~exact
    near_count = int(near.sum())
    if near_count:
        share = near_count / dataset.n_rows
        severity = "block" if share >= 0.05 else "warn" if share >= 0.005 else "info"
        findings.append(
            Finding(
                "split_leakage",
                severity,
                f"{near_count} rows ({share:.2%}) nearly duplicate rows of {against.name} "
                "(equal after rounding and normalising text, or the same perceptual hash)",
                features[:5],
                np.flatnonzero(near)[:_MAX_ROWS_LISTED].tolist(),
                near_count,
                {"share": share, "kind": "near"},
            )
        )
    return findings


def _split_positions(
    dataset: Dataset, *, validation_fraction: float, test_fraction: float, seed: int
) -> dict[str, np.ndarray]:
    """The 0-based rows that training's own split puts in train, validation and test.

    ``prepare_splits`` returns the parts as datasets without their row positions, so it splits a
    stand-in table of row numbers (and the labels, should the split ever stratify) the same way.
    """
    from amploop.data.splits import prepare_splits

    columns = {"__row__": np.arange(dataset.n_rows)}
    if dataset.target is not None:
        columns[dataset.target] = dataset.labels.to_numpy()
    stand_in = Dataset.from_table(
        dataset.name, pd.DataFrame(columns), target=dataset.target, task=dataset.task, splits=dataset.splits
    )
    plan = prepare_splits(stand_in, validation_fraction=validation_fraction, test_fraction=test_fraction, seed=seed)
    return {part: getattr(plan, part).table["__row__"].to_numpy() for part in ("train", "validation", "test")}


def _training_split_findings(
    dataset: Dataset, *, validation_fraction: float, test_fraction: float, seed: int
) -> list[Finding]:
    """Rows with the same features on both sides of the split training will make (train vs test, vs validation).

    The model is then scored on rows it learned from; where the labels differ too, no model can be
    right on both. A warning, not a block: dropping duplicate rows, or deduplicating before training,
    is the fix, and it is the user's call.
    """
    if dataset.n_rows < 3:
        return []
    parts = _split_positions(dataset, validation_fraction=validation_fraction, test_fraction=test_fraction, seed=seed)
    features = [c for c in dataset.table.columns if c != dataset.target]
    if not features and not dataset.arrays:
        return []  # no features: every row would look alike
    hashes = row_hashes(dataset.table[features], dataset.arrays)
    labels = dataset.labels.astype(str).to_numpy() if dataset.target is not None else None
    trained = parts["train"]
    findings = []
    for part in ("test", "validation"):
        rows = parts[part]
        crossing = rows[np.isin(hashes[rows], hashes[trained])]
        if not len(crossing):
            continue
        conflicting = 0
        if labels is not None:  # crossing rows whose label no training copy of them has
            learned = pd.MultiIndex.from_arrays([hashes[trained], labels[trained]])
            conflicting = int((~pd.MultiIndex.from_arrays([hashes[crossing], labels[crossing]]).isin(learned)).sum())
        share = len(crossing) / len(rows)
        also = f", {conflicting} of them with another label" if conflicting else ""
        findings.append(
            Finding(
                "split_leakage",
                "warn",
                f"{len(crossing)} of the {len(rows)} {part} rows that training will hold out ({share:.1%}) have the "
                f"same features as training rows{also}; a score on them measures memory, not generalisation: "
                "drop duplicate rows before training",
                features[:5],
                np.sort(crossing)[:_MAX_ROWS_LISTED].tolist(),
                len(crossing),
                {
                    "share": share,
                    "kind": "exact",
                    "split": f"train/{part}",
                    "generated_split": True,
                    "conflicting_labels": int(conflicting),
                    "validation_fraction": validation_fraction,
                    "test_fraction": test_fraction,
                    "seed": seed,
                },
            )
        )
    return findings


# Target leakage: one feature alone, a tiny model, scored on rows it did not learn from.
LEAKAGE_SAMPLE_ROWS = 5_000  # enough to measure one feature's held-out score to about ±0.01
LEAKAGE_BLOCK_SCORE = 0.99  # held-out balanced accuracy (classification) or R² (regression)
LEAKAGE_WARN_SCORE = 0.95
_LEAKAGE_FOLDS = 3


def _target_leakage(dataset: Dataset, seed: int) -> list[Finding]:
    """Features that are the label in disguise: an exact copy, or a one-feature model that is near-perfect.

    Each feature alone fits a shallow decision tree (a number, NaN its own branch) or a lookup table
    (a category; unseen values get the most common answer) on two thirds of at most 5,000 sampled
    rows and is scored on the other third, three times over: balanced accuracy for a class, R² for a
    number. A unique ID cannot score: its held-out values were never seen. Near-perfect blocks; very
    high warns.
    """
    if dataset.target is None or dataset.task not in ("classification", "regression") or dataset.n_rows < 10:
        return []
    if dataset.labels.isna().any():
        return []  # rows without a label are reported as blocking
    regression, labels = dataset.task == "regression", dataset.labels
    if regression:
        target = pd.to_numeric(dataset.labels, errors="coerce").to_numpy(dtype=float)
        if not np.isfinite(target).all() or np.ptp(target) == 0:
            return []  # a constant or unusable target is reported elsewhere
    else:
        target, classes = pd.factorize(dataset.labels.astype(str), sort=True)
        if len(classes) < 2:
            return []  # a single class is reported as blocking by _degenerate_findings
    rng = np.random.default_rng(seed)
    sample = np.arange(dataset.n_rows)
    if dataset.n_rows > LEAKAGE_SAMPLE_ROWS:
        sample = np.sort(rng.choice(dataset.n_rows, LEAKAGE_SAMPLE_ROWS, replace=False))
    folds = _leakage_folds(target[sample], regression, seed)
    findings = []
    empty = set(_empty_columns(dataset))
    for column in dataset.feature_names:
        if column in dataset.arrays or column in empty:
            continue
        values = dataset.table[column].iloc[sample]
        if values.nunique(dropna=False) <= 1:
            continue  # a constant column is reported as such
        # a copy in the sample is confirmed on every row; the cheap sample test rules most columns out
        if _copies_target(values, labels.iloc[sample], regression) and _copies_target(
            dataset.table[column], labels, regression
        ):
            findings.append(_leak_finding(dataset, column, "block", 1.0, regression, len(sample), exact=True))
            continue
        score = _single_feature_score(values, target[sample], folds, regression, seed)
        if score >= LEAKAGE_WARN_SCORE:
            severity: Severity = "block" if score >= LEAKAGE_BLOCK_SCORE else "warn"
            findings.append(_leak_finding(dataset, column, severity, score, regression, len(sample), exact=False))
    return findings


def _leakage_folds(target: np.ndarray, regression: bool, seed: int) -> list[tuple[np.ndarray, np.ndarray]]:
    from sklearn.model_selection import KFold, StratifiedKFold

    n = len(target)
    smallest = n if regression else int(np.bincount(target).min())
    if not regression and smallest >= _LEAKAGE_FOLDS:
        splitter: Any = StratifiedKFold(_LEAKAGE_FOLDS, shuffle=True, random_state=seed)
    else:
        splitter = KFold(min(_LEAKAGE_FOLDS, n), shuffle=True, random_state=seed)
    return list(splitter.split(np.zeros(n), target))


def _is_number(values: pd.Series) -> bool:
    return pd.api.types.is_numeric_dtype(values) and not pd.api.types.is_bool_dtype(values)


def _copies_target(values: pd.Series, labels: pd.Series, regression: bool) -> bool:
    """The feature is the label, recoded: one value per class and one class per value (or equal numbers)."""
    if regression:
        if not _is_number(values):
            return False
        x = values.astype(float).to_numpy()
        return bool(np.array_equal(x, pd.to_numeric(labels, errors="coerce").to_numpy(dtype=float), equal_nan=True))
    if values.nunique(dropna=False) != labels.nunique(dropna=False):
        return False  # checked first: it is cheap, and the pairs below are not
    pairs = pd.DataFrame({"x": values.to_numpy(), "y": labels.to_numpy()}).drop_duplicates()
    return len(pairs) == pairs["x"].nunique(dropna=False) == pairs["y"].nunique(dropna=False)


def _single_feature_score(
    values: pd.Series, target: np.ndarray, folds: list[tuple[np.ndarray, np.ndarray]], regression: bool, seed: int
) -> float:
    """Held-out balanced accuracy (classification) or R² (regression) of a model that sees one feature."""
    from sklearn.metrics import balanced_accuracy_score, r2_score

    predicted = np.zeros(len(target), dtype=float if regression else target.dtype)
    if _is_number(values):
        from sklearn.tree import DecisionTreeClassifier, DecisionTreeRegressor

        x = values.astype(float).to_numpy()
        infinite, overflowing = _unusable_numbers(x)  # trees work in float32; these are reported as blocking
        x = np.where(infinite | overflowing, np.nan, x)[:, None]  # trees give NaN its own branch
        if np.isnan(x).all():
            return 0.0
        for train, held in folds:
            # 64 leaves follow a recoded label with noise (one leaf a class, or a fine step for a number)
            model: Any = (DecisionTreeRegressor if regression else DecisionTreeClassifier)(
                max_leaf_nodes=64, min_samples_leaf=5, random_state=seed
            )
            predicted[held] = model.fit(x[train], target[train]).predict(x[held])
    else:
        codes = values.astype(str).to_numpy()
        for train, held in folds:
            frame = pd.DataFrame({"x": codes[train], "y": target[train]})
            if regression:
                lookup = frame.groupby("x")["y"].mean()
                fallback: Any = float(target[train].mean())
            else:
                # value_counts sorts by count, so the first row of each value holds its most common label
                lookup = frame.value_counts(["x", "y"]).reset_index().drop_duplicates("x").set_index("x")["y"]
                fallback = np.bincount(target[train]).argmax()
            predicted[held] = pd.Series(codes[held]).map(lookup).fillna(fallback).to_numpy(dtype=predicted.dtype)
    if regression:
        return float(r2_score(target, predicted))
    with warnings.catch_warnings():  # a class absent from the predictions is scored 0 for it, as it should be
        warnings.simplefilter("ignore")
        return float(balanced_accuracy_score(target, predicted))


def _leak_finding(
    dataset: Dataset, column: str, severity: Severity, score: float, regression: bool, rows: int, *, exact: bool
) -> Finding:
    metric = "R²" if regression else "balanced accuracy"
    chance = 0.0 if regression else 1 / dataset.labels.astype(str).nunique()
    if exact:
        message = (
            f"'{column}' is a copy of '{dataset.target}' (each of its values stands for one label); it encodes "
            "the label: drop it"
        )
    elif severity == "block":
        message = (
            f"'{column}' alone predicts '{dataset.target}' on held-out rows with {metric} {score:.3f} (chance: "
            f"{chance:.3f}); it probably encodes the label: drop it"
        )
    else:
        message = (
            f"'{column}' alone predicts '{dataset.target}' on held-out rows with {metric} {score:.3f} (chance: "
            f"{chance:.3f}); make sure it is known before the label is, or drop it"
        )
    return Finding(
        "target_leakage",
        severity,
        message,
        [column],
        [],
        0,
        {
            "kind": "exact copy" if exact else "single-feature model",
            "metric": "r2" if regression else "balanced_accuracy",
            "score": score,
            "chance": chance,
            "rows_used": rows,
        },
    )
