"""Slice representativeness: rare groups, and group shares that differ from the reference data."""

from __future__ import annotations

from collections.abc import Sequence

import pandas as pd

from amploop.data.dataset import Dataset
from amploop.data.quality.report import Finding


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
