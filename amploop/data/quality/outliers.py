"""Outliers by robust z-scores, per numeric feature."""

from __future__ import annotations

import numpy as np
import pandas as pd

from amploop.data.dataset import Dataset
from amploop.data.quality.basic import _unusable_numbers
from amploop.data.quality.report import _MAX_ROWS_LISTED, Finding


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
