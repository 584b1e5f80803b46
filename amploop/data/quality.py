"""Data quality, before anything trains: a QualityReport of findings, each with a severity.

Severities: ``info`` (worth knowing), ``warn`` (look before you train), ``block`` (training
refuses the data unless told otherwise, with a reason, which goes to the audit log).

Checks: degenerate data that no model can learn from (a target with a single class or value,
columns with no values at all, infinite numbers or numbers beyond the float32 range), missing
values, constant columns, duplicate rows, class imbalance; leakage between a
dataset and the data it will be tested against (exact duplicates, near-duplicates by hashing
normalised rows, or a perceptual hash for images) and target leakage (one feature that alone
predicts the label almost perfectly, measured on held-out rows); label issues by confident
learning (Northcutt, Jiang and Chuang, JAIR 2021: out-of-fold probabilities, per-class
thresholds, the off-diagonal of the confident joint) — written here because the reference
implementation, cleanlab, is AGPL; outliers by robust z-scores; personal data in text and
categorical columns (counts and column names only, never the values); and slice
representativeness. Label issues and outliers are combined into a ranked list of suspicious
rows: the poisoning screen.
"""

from __future__ import annotations

import re
import time
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from typing import Any, Literal

import numpy as np
import pandas as pd

from amploop.data.dataset import Dataset
from amploop.data.fingerprint import row_hashes
from amploop.errors import SchemaError

__all__ = ["Finding", "QualityReport", "SuspiciousRow", "check_quality", "find_label_issues", "luhn_valid"]

Severity = Literal["info", "warn", "block"]
_MAX_ROWS_LISTED = 100
FLOAT32_MAX = float(np.finfo(np.float32).max)  # ~3.4e38: larger magnitudes overflow to inf in float32 training


@dataclass(frozen=True)
class Finding:
    check: str
    severity: Severity
    message: str  # one line, saying what and what to do
    columns: list[str] = field(default_factory=list)
    rows: list[int] = field(default_factory=list)  # positions, at most 100 listed
    count: int = 0
    details: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class SuspiciousRow:
    row: int
    score: float  # higher is more suspicious, in [0, 1]
    reasons: list[str]


@dataclass(frozen=True)
class QualityReport:
    dataset: dict[str, Any]
    against: dict[str, Any] | None
    findings: list[Finding]
    suspicious_rows: list[SuspiciousRow]
    checks: list[str]
    seconds: float

    @property
    def blocking(self) -> list[Finding]:
        return [f for f in self.findings if f.severity == "block"]

    def counts(self) -> dict[str, int]:
        return {s: sum(f.severity == s for f in self.findings) for s in ("info", "warn", "block")}

    def to_dict(self) -> dict[str, Any]:
        out = asdict(self)
        out["counts"] = self.counts()
        return out


# -- personal data -------------------------------------------------------------------------------

_EMAIL = re.compile(r"[A-Za-z0-9._%+-]+@[A-Za-z0-9.-]+\.[A-Za-z]{2,}")
_PHONE = re.compile(r"(?<![\w.])(?:\+\d{1,3}[\s.-]?)?(?:\(\d{2,4}\)[\s.-]?)?\d{2,4}(?:[\s.-]\d{2,4}){2,4}(?![\w.])")
# 13-19 digits, optionally grouped by spaces or dashes, and not part of a decimal number: a float written
# as text ("4111111111111111.0", "0.123456789012345", "4.1e+15") is a number, not a card
_CARD = re.compile(r"(?<![\d.])(?:\d[ -]?){12,18}\d(?!\d|\.\d|[eE][+-]?\d)")
_IBAN = re.compile(r"\b[A-Z]{2}\d{2}(?: ?[A-Z0-9]{4}){2,7}(?: ?[A-Z0-9]{1,4})?\b")
_SSN = re.compile(r"(?<!\d)\d{3}-\d{2}-\d{4}(?!\d)")
_IPV4 = re.compile(r"(?<![\d.])(?:(?:25[0-5]|2[0-4]\d|1?\d?\d)\.){3}(?:25[0-5]|2[0-4]\d|1?\d?\d)(?![\d.])")
_IPV6 = re.compile(r"(?<![:\w])(?:[0-9A-Fa-f]{1,4}:){7}[0-9A-Fa-f]{1,4}(?![:\w])")


def luhn_valid(number: str) -> bool:
    """The Luhn checksum that every payment card number satisfies.

    >>> luhn_valid("4111 1111 1111 1111"), luhn_valid("4111 1111 1111 1112")
    (True, False)
    """
    digits = [int(c) for c in number if c.isdigit()]
    if not 13 <= len(digits) <= 19:
        return False
    total = 0
    for i, d in enumerate(reversed(digits)):
        if i % 2:
            d *= 2
            d = d - 9 if d > 9 else d
        total += d
    return total % 10 == 0


def _iban_valid(text: str) -> bool:
    compact = text.replace(" ", "")
    if not 15 <= len(compact) <= 34:
        return False
    rearranged = compact[4:] + compact[:4]
    return int("".join(str(int(c, 36)) for c in rearranged)) % 97 == 1


_PII: list[tuple[str, re.Pattern[str], Any, Severity]] = [
    ("e-mail addresses", _EMAIL, None, "warn"),
    ("payment card numbers (Luhn-valid)", _CARD, luhn_valid, "block"),
    ("IBANs (checksum-valid)", _IBAN, _iban_valid, "block"),
    ("national ID numbers (US SSN format)", _SSN, None, "block"),
    ("IP addresses", _IPV4, None, "warn"),
    ("IP addresses", _IPV6, None, "warn"),
    ("phone numbers", _PHONE, lambda s: 9 <= sum(c.isdigit() for c in s) <= 15, "warn"),  # E.164: at most 15
]


def _pii_findings(dataset: Dataset) -> list[Finding]:
    findings: list[Finding] = []
    columns = [c.name for c in dataset.schema.columns if c.kind in ("text", "categorical")]
    hits: dict[str, dict[str, int]] = {}
    severity_of: dict[str, Severity] = {}
    for column in columns:
        values = dataset.table[column].dropna()
        if values.empty or pd.api.types.is_numeric_dtype(values) or pd.api.types.is_bool_dtype(values):
            continue
        counts = values.astype(str).value_counts()  # each distinct value is scanned once
        for text, n in counts.items():
            remaining = str(text)
            for kind, pattern, check, severity in _PII:  # most specific first; a match is then blanked out
                valid = [m for m in pattern.findall(remaining) if check is None or check(m)]
                if not valid:
                    continue
                per_column = hits.setdefault(kind, {})
                per_column[column] = per_column.get(column, 0) + int(n)
                severity_of[kind] = severity
                for match in valid:
                    remaining = remaining.replace(match, " ")
    for kind, by_column in hits.items():
        total = sum(by_column.values())
        findings.append(
            Finding(
                "personal_data",
                severity_of[kind],
                f"{total} value(s) in {', '.join(sorted(by_column))} look like {kind}; remove or pseudonymise "
                "them before training",
                columns=sorted(by_column),
                count=total,
                details={"kind": kind, "per_column": by_column},
            )
        )
    return findings


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


# -- leakage -------------------------------------------------------------------------------------


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


# -- label issues (confident learning) -----------------------------------------------------------


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
            parts.append(pd.factorize(values.astype(str))[0].astype(float)[:, None])
    return np.hstack(parts) if parts else np.zeros((dataset.n_rows, 0))


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


# -- outliers ------------------------------------------------------------------------------------


def _outlier_findings(dataset: Dataset, threshold: float = 6.0) -> tuple[list[Finding], dict[int, float]]:
    """Robust z-scores, |x - median| / (1.4826 MAD), per numeric feature; beyond 6 is an outlier."""
    flagged = np.zeros(dataset.n_rows, dtype=bool)
    strength = np.zeros(dataset.n_rows)
    columns, skipped = [], []
    for column in dataset.feature_names:
        if column in dataset.arrays:
            continue
        values = dataset.table[column]
        if not pd.api.types.is_numeric_dtype(values) or pd.api.types.is_bool_dtype(values):
            continue
        x = values.astype(float).to_numpy()
        infinite, overflowing = _unusable_numbers(x)
        x = np.where(infinite | overflowing, np.nan, x)  # reported as blocking, not as outliers
        if np.isnan(x).all():
            continue
        median = np.nanmedian(x)
        mad = np.nanmedian(np.abs(x - median)) * 1.4826
        if not mad > 0:
            skipped.append(column)  # over half the values are equal: robust z is undefined
            continue
        z = np.abs(x - median) / mad
        hit = np.nan_to_num(z, nan=0.0) > threshold
        if hit.any():
            columns.append(column)
        flagged |= hit
        strength = np.maximum(strength, np.nan_to_num(z, nan=0.0))
    count = int(flagged.sum())
    scores = {int(i): float(1 - threshold / strength[i]) for i in np.flatnonzero(flagged)}
    if not count:
        return [], scores
    share = count / dataset.n_rows
    ranked = sorted(scores, key=lambda i: -scores[i])
    return (
        [
            Finding(
                "outliers",
                "info",  # heavy tails are common in real data: evidence for the screen, not a stop
                f"{count} rows ({share:.2%}) lie more than {threshold:g} robust standard deviations from the "
                f"median in {', '.join(columns)}",
                columns,
                ranked[:_MAX_ROWS_LISTED],
                count,
                {"share": share, "skipped_columns": skipped, "threshold": threshold},
            )
        ],
        scores,
    )


# -- slices --------------------------------------------------------------------------------------


def _slice_findings(
    dataset: Dataset, slice_columns: Sequence[str], min_share: float, reference: Dataset | None
) -> list[Finding]:
    findings = []
    for column in slice_columns:
        if column not in dataset.table.columns:
            findings.append(
                Finding("slice_representation", "warn", f"slice column '{column}' is not in the data", [column])
            )
            continue
        values = dataset.table[column]
        if pd.api.types.is_numeric_dtype(values) and not pd.api.types.is_bool_dtype(values) and values.nunique() > 20:
            continue  # numeric slice columns are reported in quantile bands, equal in share by construction
        shares = values.astype(str).value_counts(normalize=True)
        rare = {k: float(v) for k, v in shares.items() if v < min_share}
        if rare:
            findings.append(
                Finding(
                    "slice_representation",
                    "warn",
                    f"'{column}' groups under {min_share:.0%} of rows: {', '.join(sorted(rare))}; "
                    "their metrics will be too uncertain to judge",
                    [column],
                    [],
                    len(rare),
                    {"shares": rare},
                )
            )
        if reference is not None and column in reference.table.columns:
            ref = reference.table[column].astype(str).value_counts(normalize=True)
            shifted = {
                k: {"share": float(shares.get(k, 0.0)), "reference": float(v)}
                for k, v in ref.items()
                if v >= min_share and not 0.5 <= shares.get(k, 0.0) / v <= 2.0
            }
            if shifted:
                findings.append(
                    Finding(
                        "slice_representation",
                        "warn",
                        f"'{column}' group shares differ from {reference.name} by more than 2x: "
                        f"{', '.join(sorted(shifted))}",
                        [column],
                        [],
                        len(shifted),
                        {"shifted": shifted},
                    )
                )
    return findings


def check_quality(
    dataset: Dataset,
    *,
    against: Dataset | None = None,
    slice_columns: Sequence[str] = (),
    min_slice_share: float = 0.01,
    label_issues: bool = True,
    seed: int = 0,
) -> QualityReport:
    """Run every check; ``against`` is the data this one will be compared with (for leakage)."""
    started = time.perf_counter()
    if against is not None:
        _check_same_columns(dataset, against)
    checks = [
        "unlabelled_rows",
        "single_class",
        "constant_target",
        "empty_column",
        "non_finite_values",
        "missing_values",
        "constant_column",
        "duplicate_rows",
        "class_imbalance",
        "target_leakage",
        "outliers",
        "personal_data",
        "slice_representation",
    ]
    findings = _degenerate_findings(dataset) + _basic_findings(dataset)
    findings += _target_leakage(dataset, seed) + _pii_findings(dataset)
    if against is None and "train" in dataset.splits and "test" in dataset.splits:
        findings += _leakage_findings(dataset.split("test"), dataset.split("train"))
        checks.append("split_leakage")
    elif against is not None:
        findings += _leakage_findings(dataset, against)
        checks.append("split_leakage")
    outliers, outlier_scores = _outlier_findings(dataset)
    findings += outliers
    label_scores: dict[int, float] = {}
    if label_issues:
        found, label_scores = _label_issue_findings(dataset, seed)
        findings += found
        checks.append("label_issues")
    findings += _slice_findings(dataset, slice_columns, min_slice_share, against)
    suspicious: dict[int, SuspiciousRow] = {}
    for row, score in label_scores.items():
        suspicious[row] = SuspiciousRow(row, score, ["label issue"])
    for row, score in outlier_scores.items():
        if row in suspicious:
            previous = suspicious[row]
            suspicious[row] = SuspiciousRow(row, max(previous.score, score), [*previous.reasons, "outlier"])
        else:
            suspicious[row] = SuspiciousRow(row, score, ["outlier"])
    ranked = sorted(suspicious.values(), key=lambda r: (-r.score, r.row))
    order = {"block": 0, "warn": 1, "info": 2}
    findings.sort(key=lambda f: order[f.severity])
    return QualityReport(
        dataset={"name": dataset.name, "fingerprint": dataset.fingerprint, "rows": dataset.n_rows},
        against=None
        if against is None
        else {"name": against.name, "fingerprint": against.fingerprint, "rows": against.n_rows},
        findings=findings,
        suspicious_rows=ranked,
        checks=checks,
        seconds=round(time.perf_counter() - started, 3),
    )
