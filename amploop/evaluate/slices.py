"""Performance by subgroup: declared slices with bootstrap intervals, and slices found automatically.

Declared slices are the values of each slice column (numeric columns are cut into quantile
bands). Each gets its count, its metric and a bootstrap confidence interval; a slice with fewer
rows than ``min_slice_size`` is reported as too small, never as 0 or NaN. For accuracy the
bootstrap distribution of a slice mean is drawn directly as Binomial(n, accuracy) / n, which
is exactly the distribution of the mean of n resampled correct/incorrect flags.

Discovery follows SliceLine (Sagadeeva and Boehm, SIGMOD 2021): conjunctions of one or two
feature conditions are scored by sc = a * (e_s / e - 1) - (1 - a) * (N / n_s - 1) (e: error
rate, n: size, a = 0.95), and kept when a one-sided two-proportion z-test says the slice's
error rate exceeds the rest's at a Bonferroni-corrected level. Pair counts and errors come
from two matrix products over the condition indicators, so every pair is evaluated at once.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np
import pandas as pd
from scipy.stats import norm

__all__ = ["DiscoveredSlice", "SliceReport", "SliceResult", "discover_slices", "evaluate_slices", "slice_labels"]


@dataclass(frozen=True)
class SliceResult:
    column: str
    value: str
    count: int
    metric: float | None  # None when too small
    lower: float | None
    upper: float | None
    too_small: bool


@dataclass(frozen=True)
class DiscoveredSlice:
    conditions: list[str]
    size: int
    error_rate: float
    overall_error_rate: float
    effect: float  # error_rate - overall_error_rate
    score: float
    p_value: float


@dataclass(frozen=True)
class SliceReport:
    metric: str  # accuracy (higher is better) or mae (lower is better)
    overall: float
    min_slice_size: int
    confidence_level: float
    slices: list[SliceResult]
    worst: SliceResult | None
    worst_gap: float | None  # how much worse the worst adequately sized slice is than overall
    discovered: list[DiscoveredSlice] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def slice_labels(values: pd.Series, *, n_bands: int = 5, categorical: bool = False) -> pd.Series:
    """Group labels: the value itself, or a quantile band like '[26, 33)' for numeric columns."""
    numeric = pd.api.types.is_numeric_dtype(values) and not pd.api.types.is_bool_dtype(values)
    if numeric and not categorical and values.nunique() > n_bands:
        edges = np.unique(np.quantile(values.dropna(), np.linspace(0, 1, n_bands + 1)))
        edges = np.unique(np.round(edges, 6))
        index = np.clip(np.searchsorted(edges, values.to_numpy(), side="right") - 1, 0, len(edges) - 2)
        labels = [
            f"[{_fmt(edges[i])}, {_fmt(edges[i + 1])}{']' if i == len(edges) - 2 else ')'}"
            for i in range(len(edges) - 1)
        ]
        out = pd.Series([labels[i] for i in index], index=values.index, dtype=object)
        return out.where(values.notna(), "missing")
    return values.astype(object).where(values.notna(), "missing").astype(str)


def _fmt(x: float) -> str:
    return f"{x:g}"


def evaluate_slices(
    table: pd.DataFrame,
    *,
    slice_columns: list[str],
    categorical_columns: frozenset[str] = frozenset(),
    correct: np.ndarray | None = None,
    abs_errors: np.ndarray | None = None,
    min_slice_size: int = 30,
    bootstrap_samples: int = 1000,
    confidence_level: float = 0.95,
    seed: int = 0,
) -> SliceReport:
    """Per-slice accuracy (``correct``: bool per row) or MAE (``abs_errors``), with intervals."""
    classification = correct is not None
    values = np.asarray(correct if classification else abs_errors, dtype=float)
    overall = float(values.mean())
    rng = np.random.default_rng(seed)
    tail = (1 - confidence_level) / 2
    results: list[SliceResult] = []
    for column in slice_columns:
        labels = slice_labels(table[column], categorical=column in categorical_columns)
        for label in sorted(labels.unique(), key=str):
            mask = (labels == label).to_numpy()
            n = int(mask.sum())
            if n < min_slice_size:
                results.append(SliceResult(column, str(label), n, None, None, None, True))
                continue
            part = values[mask]
            metric = float(part.mean())
            if classification:
                draws = rng.binomial(n, metric, size=bootstrap_samples) / n
            else:
                draws = np.concatenate(
                    [
                        part[rng.integers(0, n, size=(min(100, bootstrap_samples - done), n))].mean(axis=1)
                        for done in range(0, bootstrap_samples, 100)
                    ]
                )
            lower, upper = np.quantile(draws, [tail, 1 - tail])
            results.append(SliceResult(column, str(label), n, metric, float(lower), float(upper), False))
    sized = [r for r in results if not r.too_small]
    worst = None
    gap = None
    if sized:
        worst = min(sized, key=lambda r: r.metric) if classification else max(sized, key=lambda r: r.metric)
        gap = overall - worst.metric if classification else worst.metric - overall
    return SliceReport(
        metric="accuracy" if classification else "mae",
        overall=overall,
        min_slice_size=min_slice_size,
        confidence_level=confidence_level,
        slices=results,
        worst=worst,
        worst_gap=gap,
    )


def _conditions(
    table: pd.DataFrame, columns: list[str], min_size: int, categorical: frozenset[str]
) -> tuple[list[str], list[str], np.ndarray]:
    names, owners, masks = [], [], []
    for column in columns:
        values = table[column]
        numeric = pd.api.types.is_numeric_dtype(values) and not pd.api.types.is_bool_dtype(values)
        if numeric and column not in categorical and values.nunique() > 4:
            labels = slice_labels(values, n_bands=4)
        else:
            labels = values.astype(object).where(values.notna(), "missing").astype(str)
        for label, count in labels.value_counts().items():
            if min_size <= count < len(table):  # a condition every row meets selects nothing
                names.append(f"{column} = {label}" if not str(label).startswith("[") else f"{column} in {label}")
                owners.append(column)
                masks.append((labels == label).to_numpy())
    matrix = np.column_stack(masks).astype(np.float32) if masks else np.zeros((len(table), 0), np.float32)
    return names, owners, matrix


def discover_slices(
    table: pd.DataFrame,
    errors: np.ndarray,
    *,
    columns: list[str],
    categorical_columns: frozenset[str] = frozenset(),
    min_slice_size: int = 30,
    top_k: int = 5,
    alpha: float = 0.95,
    significance: float = 0.05,
) -> list[DiscoveredSlice]:
    """Slices of one or two conditions whose error rate is significantly above the rest's."""
    errors = np.asarray(errors, dtype=np.float32)
    total, overall = len(errors), float(errors.mean())
    if total == 0 or overall == 0:
        return []
    names, owners, matrix = _conditions(table, columns, min_slice_size, categorical_columns)
    k = matrix.shape[1]
    if k == 0:
        return []
    sizes = matrix.T @ matrix  # sizes[i, j]: rows meeting conditions i and j
    errs = (matrix * errors[:, None]).T @ matrix
    candidates: list[tuple[int, int]] = [(i, i) for i in range(k)]
    candidates += [(i, j) for i in range(k) for j in range(i + 1, k) if owners[i] != owners[j]]
    rows, cols = np.array([c[0] for c in candidates]), np.array([c[1] for c in candidates])
    n_s, e_s = sizes[rows, cols].astype(float), errs[rows, cols].astype(float)
    parent_sizes = np.diag(sizes)
    redundant = (rows != cols) & ((n_s == parent_sizes[rows]) | (n_s == parent_sizes[cols]))  # one implies the other
    keep = (n_s >= min_slice_size) & ~redundant
    rows, cols, n_s, e_s = rows[keep], cols[keep], n_s[keep], e_s[keep]
    n_rest = total - n_s
    rate = e_s / n_s
    rest_rate = np.divide(errors.sum() - e_s, n_rest, out=np.zeros_like(n_rest), where=n_rest > 0)
    pooled = errors.sum() / total
    se = np.sqrt(pooled * (1 - pooled) * (1 / n_s + np.divide(1, n_rest, out=np.zeros_like(n_rest), where=n_rest > 0)))
    z = np.divide(rate - rest_rate, se, out=np.zeros_like(se), where=se > 0)
    p_values = norm.sf(z)
    score = alpha * (rate / overall - 1) - (1 - alpha) * (total / n_s - 1)
    threshold = significance / max(len(rows), 1)  # Bonferroni over every slice tested
    chosen = np.flatnonzero((p_values < threshold) & (rate > overall) & (n_rest > 0))
    chosen = chosen[np.argsort(-score[chosen], kind="mergesort")]
    found: list[DiscoveredSlice] = []
    for index in chosen:
        i, j = int(rows[index]), int(cols[index])
        conditions = [names[i]] if i == j else [names[i], names[j]]
        nested = [f for f in found if set(f.conditions) <= set(conditions) or set(conditions) <= set(f.conditions)]
        if any(abs(f.error_rate - rate[index]) < 0.02 for f in nested):
            continue  # a near-duplicate of a slice already listed
        found.append(
            DiscoveredSlice(
                conditions=conditions,
                size=int(n_s[index]),
                error_rate=float(rate[index]),
                overall_error_rate=overall,
                effect=float(rate[index] - overall),
                score=float(score[index]),
                p_value=float(p_values[index]),
            )
        )
        if len(found) >= top_k:
            break
    return found
