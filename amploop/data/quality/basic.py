"""Basic and degenerate-column findings.

Degenerate data that no model can learn from (a target with a single class or value, columns
with no values at all, infinite numbers or numbers beyond the float32 range), and the basic table
checks: missing values, constant columns, duplicate rows, class imbalance.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from amploop.data.dataset import Dataset
from amploop.data.fingerprint import row_hashes
from amploop.data.quality.report import _MAX_ROWS_LISTED, Finding, Severity

FLOAT32_MAX = float(np.finfo(np.float32).max)  # ~3.4e38: larger magnitudes overflow to inf in float32 training


# -- degenerate data: nothing to learn, or numbers training cannot hold ---------------------------


def _empty_columns(dataset: Dataset) -> list[str]:
    """Feature columns whose every value is missing."""
    table = dataset.table
    if not len(table):
        return []
    return [c for c in table.columns if c != dataset.target and bool(table[c].isna().all())]


def _unusable_numbers(values: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Masks of infinite values and of finite values too large for float32."""
    infinite = np.isinf(values)
    with np.errstate(invalid="ignore"):
        overflowing = np.isfinite(values) & (np.abs(values) > FLOAT32_MAX)
    return infinite, overflowing


def _degenerate_findings(dataset: Dataset) -> list[Finding]:
    findings: list[Finding] = []
    if dataset.unlabelled_rows_dropped:
        dropped = dataset.unlabelled_rows_dropped
        findings.append(
            Finding(
                "unlabelled_rows",
                "warn",
                f"{dropped} rows have no label ('{dataset.target}' missing) and were dropped; "
                f"{dataset.n_rows} rows remain",
                [str(dataset.target)],
                [],
                dropped,
                {"remaining_rows": dataset.n_rows},
            )
        )
    if dataset.target is not None and dataset.n_rows:
        present = dataset.labels.dropna()
        values = present.astype(str).unique() if dataset.task == "classification" else present.unique()
        if len(values) == 1:
            value = values[0]
            if dataset.task == "classification":
                check = "single_class"
                message = (
                    f"the target '{dataset.target}' has a single class ('{value}') in all {len(present)} labelled "
                    "rows; a classifier cannot learn anything from it: add rows of the other classes"
                )
            else:
                check = "constant_target"
                message = (
                    f"the target '{dataset.target}' has the same value ({value}) in all {len(present)} labelled "
                    "rows; a model cannot learn anything from it: choose another target"
                )
            findings.append(Finding(check, "block", message, [dataset.target], [], len(present), {"value": str(value)}))
    for column in _empty_columns(dataset):
        findings.append(
            Finding(
                "empty_column",
                "block",
                f"column '{column}' has no values: it is missing in all {dataset.n_rows} rows; drop the column",
                [column],
                [],
                dataset.n_rows,
            )
        )
    for column in dataset.schema.columns:
        if column.kind == "numeric":
            values = pd.to_numeric(dataset.table[column.name], errors="coerce").to_numpy(dtype=float, na_value=np.nan)
        elif (
            column.kind == "image"
            and dataset.n_rows
            and np.issubdtype(np.asarray(dataset.arrays[column.name]).dtype, np.floating)
        ):
            values = np.asarray(dataset.arrays[column.name]).reshape(dataset.n_rows, -1)
        else:
            continue
        infinite, overflowing = _unusable_numbers(values)
        n_infinite, n_overflowing = int(infinite.sum()), int(overflowing.sum())
        if not (n_infinite or n_overflowing):
            continue
        parts = []
        if n_infinite:
            parts.append(f"{n_infinite} infinite value{'s' if n_infinite != 1 else ''}")
        if n_overflowing:
            parts.append(
                f"{n_overflowing} value{'s' if n_overflowing != 1 else ''} beyond the float32 range "
                f"(magnitude over {FLOAT32_MAX:.1e})"
            )
        bad_rows = (infinite | overflowing).reshape(len(values), -1).any(axis=1)
        findings.append(
            Finding(
                "non_finite_values",
                "block",
                f"column '{column.name}' has {' and '.join(parts)}; training would overflow: replace or drop them",
                [column.name],
                np.flatnonzero(bad_rows)[:_MAX_ROWS_LISTED].tolist(),
                n_infinite + n_overflowing,
                {"infinite": n_infinite, "overflowing": n_overflowing, "float32_max": FLOAT32_MAX},
            )
        )
    return findings


# -- basic table checks --------------------------------------------------------------------------


def _basic_findings(dataset: Dataset) -> list[Finding]:
    findings: list[Finding] = []
    table, n = dataset.table, dataset.n_rows
    empty = set(_empty_columns(dataset))  # reported once, as blocking, by _degenerate_findings
    for column in table.columns:
        missing = int(table[column].isna().sum())
        if not missing or column in empty:
            continue
        share = missing / n
        if column == dataset.target:
            findings.append(
                Finding(
                    "missing_values",
                    "block",
                    f"the target '{column}' is missing in {missing} rows; drop those rows",
                    [column],
                    np.flatnonzero(table[column].isna())[:_MAX_ROWS_LISTED].tolist(),
                    missing,
                    {"share": share},
                )
            )
        else:
            severity: Severity = "warn" if share >= 0.2 else "info"
            findings.append(
                Finding(
                    "missing_values",
                    severity,
                    f"'{column}' is missing in {missing} rows ({share:.1%})",
                    [column],
                    [],
                    missing,
                    {"share": share},
                )
            )
    for column in table.columns:
        if column != dataset.target and column not in empty and table[column].nunique(dropna=False) <= 1 and n > 1:
            findings.append(
                Finding(
                    "constant_column",
                    "warn",
                    f"'{column}' has one value in every row; it carries no information, drop it",
                    [column],
                )
            )
    hashes = row_hashes(table, dataset.arrays)
    duplicated = pd.Series(hashes).duplicated().to_numpy()
    count = int(duplicated.sum())
    if count:
        share = count / n
        findings.append(
            Finding(
                "duplicate_rows",
                "warn" if share >= 0.01 else "info",
                f"{count} rows repeat an earlier row exactly ({share:.2%})",
                [],
                np.flatnonzero(duplicated)[:_MAX_ROWS_LISTED].tolist(),
                count,
                {"share": share},
            )
        )
    if dataset.target is not None and dataset.task == "classification":
        counts = dataset.labels.astype(str).value_counts()
        if len(counts) >= 2:
            minority, majority = counts.iloc[-1], counts.iloc[0]
            ratio = majority / max(minority, 1)
            if ratio >= 10:
                findings.append(
                    Finding(
                        "class_imbalance",
                        "warn",
                        f"class '{counts.index[-1]}' has {minority} rows against {majority} for '{counts.index[0]}' "
                        f"(1:{ratio:.0f}); report balanced accuracy or reweight the classes",
                        [dataset.target],
                        [],
                        int(minority),
                        {"counts": {str(k): int(v) for k, v in counts.items()}},
                    )
                )
    return findings
