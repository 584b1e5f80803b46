"""Outliers per numeric feature: robust z-scores on continuous columns, far rare values on discrete ones.

A robust z-score, ``|x - median| / scale``, only means something where the column has a spread to
measure. Three kinds of column break it, and each is treated on its own terms:

- discrete columns (at most 20 distinct values: flags, codes, ratings, small counts): a value is an
  outlier only when it is rare (under 1% of rows) and lies far outside the values that are common
  (more than three times their range, or their spacing, beyond them), e.g. a ``-999`` or a ``7``
  typed into a 0/1 column;
- columns with a spike (one value in a quarter of the rows or more, e.g. zero in a sparse column):
  the spike is never an outlier, and the other values are scored among themselves;
- skewed or clustered columns, where the median absolute deviation (MAD) collapses: the scale is
  the largest of the MAD, the interquartile range and, on each side, the 10%-50% or 50%-90% quantile
  distance, each divided by what it is for a normal distribution, so a normal column keeps its
  usual z-score.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from amploop.data.dataset import Dataset
from amploop.data.quality.basic import _unusable_numbers
from amploop.data.quality.report import _MAX_ROWS_LISTED, Finding

DISCRETE_MAX_VALUES = 20  # a numeric column with at most this many distinct values is discrete
RARE_SHARE = 0.01  # a discrete value seen in fewer rows than this is rare
SPIKE_SHARE = 0.25  # one value in at least this share of the rows is a spike, scored apart
_DISCRETE_DISTANCE = 3.0  # a rare discrete value must lie this many common ranges beyond the common values
# Quantile distances of the standard normal: MAD 0.6745, IQR 1.349, the 10%-50% distance 1.2816
_MAD_NORMAL, _IQR_NORMAL, _DECILE_NORMAL = 0.6745, 1.349, 1.2816


def _robust_z(x: np.ndarray) -> np.ndarray:
    """|x - median| over a scale that holds for skewed and clustered values; 0 where undefined."""
    q10, q25, median, q75, q90 = np.nanpercentile(x, [10, 25, 50, 75, 90])
    symmetric = max(np.nanmedian(np.abs(x - median)) / _MAD_NORMAL, (q75 - q25) / _IQR_NORMAL)
    upper = max(symmetric, (q90 - median) / _DECILE_NORMAL)
    lower = max(symmetric, (median - q10) / _DECILE_NORMAL)
    with np.errstate(divide="ignore", invalid="ignore"):
        z = np.where(x >= median, (x - median) / upper, (median - x) / lower)
    return np.nan_to_num(z, nan=0.0, posinf=0.0, neginf=0.0)


def _continuous_strength(x: np.ndarray) -> np.ndarray:
    """Robust z per row; a spike value (and NaN) scores 0, the other values are scored among themselves."""
    values, counts = np.unique(x[~np.isnan(x)], return_counts=True)
    strength = np.zeros(len(x))
    mode = values[counts.argmax()]
    if counts.max() >= SPIKE_SHARE * counts.sum():
        rest = ~np.isnan(x) & (x != mode)
        if len(np.unique(x[rest])) > 1:
            strength[rest] = _robust_z(x[rest])
        return strength
    return _robust_z(x)


def _discrete_strength(x: np.ndarray) -> np.ndarray:
    """How far beyond the common values a rare value lies, in multiples of their range (or spacing)."""
    values, counts = np.unique(x[~np.isnan(x)], return_counts=True)
    common = values[counts >= RARE_SHARE * counts.sum()]
    low, high = common.min(), common.max()
    spacing = np.diff(values).min() if len(values) > 1 else 1.0
    width = max(high - low, spacing)
    distance = np.where(x > high, x - high, np.where(x < low, low - x, 0.0))
    rare = np.isin(x, values[counts < RARE_SHARE * counts.sum()])
    return np.where(rare, np.nan_to_num(distance, nan=0.0) / width, 0.0)


def _outlier_findings(dataset: Dataset, threshold: float = 6.0) -> tuple[list[Finding], dict[int, float]]:
    """Rows with a value beyond ``threshold`` (a robust z-score, or the discrete distance scaled alike)."""
    flagged = np.zeros(dataset.n_rows, dtype=bool)
    ratio = np.zeros(dataset.n_rows)  # strength over its own threshold; above 1 is an outlier
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
        distinct = len(np.unique(x[~np.isnan(x)]))
        if distinct <= 1:
            skipped.append(column)  # no spread at all: reported as a constant or empty column
            continue
        if distinct <= DISCRETE_MAX_VALUES:
            column_ratio = _discrete_strength(x) / _DISCRETE_DISTANCE
        else:
            column_ratio = _continuous_strength(x) / threshold
        hit = column_ratio > 1
        if hit.any():
            columns.append(column)
        flagged |= hit
        ratio = np.maximum(ratio, column_ratio)
    count = int(flagged.sum())
    scores = {int(i): float(1 - 1 / ratio[i]) for i in np.flatnonzero(flagged)}
    if not count:
        return [], scores
    share = count / dataset.n_rows
    ranked = sorted(scores, key=lambda i: -scores[i])
    return (
        [
            Finding(
                "outliers",
                "info",  # heavy tails are common in real data: evidence for the screen, not a stop
                f"{count} rows ({share:.2%}) hold values far outside the rest of their column (more than "
                f"{threshold:g} robust standard deviations, or a rare value far from the common ones) in "
                f"{', '.join(columns)}",
                columns,
                ranked[:_MAX_ROWS_LISTED],
                count,
                {
                    "share": share,
                    "skipped_columns": skipped,
                    "threshold": threshold,
                    "discrete_max_values": DISCRETE_MAX_VALUES,
                },
            )
        ],
        scores,
    )
