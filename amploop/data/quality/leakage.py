"""Leakage: between a dataset and the data it will be tested against, and from a feature to the target.

Train/test leakage (``--against``, or a dataset's own train and test splits) is found as exact
duplicates, near-duplicates by hashing normalised rows, or a perceptual hash for images; target
leakage is one feature that alone predicts the label almost perfectly, measured on held-out rows.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from amploop.data.dataset import Dataset
from amploop.data.fingerprint import row_hashes
from amploop.data.quality.basic import _empty_columns
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


def _target_leakage(dataset: Dataset, seed: int) -> list[Finding]:
    """Each feature alone, as a lookup table learned on one half of the rows and scored on the other."""
    if dataset.target is None or dataset.task != "classification" or dataset.labels.isna().any():
        return []
    labels = dataset.labels.astype(str).to_numpy()
    if len(set(labels.tolist())) < 2:
        return []  # a single class is reported as blocking by _degenerate_findings
    base = pd.Series(labels).value_counts(normalize=True).iloc[0]
    if base >= 0.98:
        return []
    rng = np.random.default_rng(seed)
    half = rng.random(dataset.n_rows) < 0.5
    findings = []
    empty = set(_empty_columns(dataset))
    for column in dataset.feature_names:
        if column in dataset.arrays or column in empty:
            continue
        values = dataset.table[column]
        if pd.api.types.is_numeric_dtype(values) and values.nunique() > 20:
            codes = pd.qcut(values.rank(method="first"), 20, labels=False).astype("Int64").astype(str)
        else:
            codes = values.astype(str)
        frame = pd.DataFrame({"x": codes.to_numpy(), "y": labels})
        lookup = frame[half].groupby("x")["y"].agg(lambda s: s.value_counts().index[0])
        fallback = pd.Series(labels[half]).value_counts().index[0]
        predicted = frame.loc[~half, "x"].map(lookup).fillna(fallback).to_numpy()
        accuracy = float(np.mean(predicted == labels[~half]))
        if accuracy >= 0.98 and accuracy > base + 0.5 * (1 - base):
            findings.append(
                Finding(
                    "target_leakage",
                    "block",
                    f"'{column}' alone predicts '{dataset.target}' on held-out rows with accuracy {accuracy:.3f} "
                    f"(majority class: {base:.3f}); it probably encodes the label: drop it",
                    [column],
                    [],
                    0,
                    {"accuracy": accuracy, "base_rate": float(base)},
                )
            )
    return findings
