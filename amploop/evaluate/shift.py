"""Do new rows look like the training rows? One two-sample test per input column.

- numeric columns: the two-sample Kolmogorov-Smirnov test on the present values; the effect is
  the KS statistic D (the largest gap between the two empirical CDFs), or the change in the
  share of missing values when that is larger;
- categorical columns: the chi-square test of homogeneity on the category counts (values the
  training rows never held count as one category, and so do missing values; categories too
  rare for the approximation are pooled); the effect is the total variation distance, half
  the summed absolute differences of the category shares;
- image columns: the KS test on each image's mean intensity;
- text columns (free text, identifiers): not compared, since their values rarely repeat.

Both effects lie in [0, 1] and read alike: the largest share of rows whose value would have to
change for the two samples to match. A column *differs* when its p-value is below
``significance / columns compared`` (Bonferroni) and its effect is at least ``min_effect``:
with tens of thousands of rows every column is "significant", and with 20 rows a large effect
can be chance, so both are required. The population stability index over the reference's
deciles (or categories) is reported alongside, as many teams read it.

Examples
--------
>>> import numpy as np, pandas as pd
>>> rng = np.random.default_rng(0)
>>> train = pd.DataFrame({"age": rng.normal(40, 10, 2000), "city": rng.choice(["a", "b"], 2000)})
>>> same = pd.DataFrame({"age": rng.normal(40, 10, 500), "city": rng.choice(["a", "b"], 500)})
>>> compare_rows(train, same, kinds={"age": "numeric", "city": "categorical"}).differing
[]
>>> older = same.assign(age=same["age"] + 8)
>>> compare_rows(train, older, kinds={"age": "numeric", "city": "categorical"}).summary
'the new rows differ from the training rows in 1 of 2 columns: age'
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np
import pandas as pd
from scipy import stats

__all__ = ["ColumnShift", "ShiftReport", "compare_rows", "shift_unavailable"]

MAX_REFERENCE_ROWS = 50_000  # a seeded sample of larger references: the tests' power is ample by then
_OTHER = "(not in the training rows)"
_MISSING = "(missing)"


@dataclass(frozen=True)
class ColumnShift:
    column: str
    kind: str  # numeric, categorical, image, text
    test: str | None  # ks, chi_square, or None when not compared
    effect: float | None  # KS statistic or total variation distance, in [0, 1]
    p_value: float | None
    psi: float | None  # population stability index
    differs: bool
    note: str | None  # why not compared, or what moved
    reference: dict[str, Any]  # a short description of the training rows' values
    current: dict[str, Any]  # and of the new rows'

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass(frozen=True)
class ShiftReport:
    """The per-column comparison of new rows with the training rows, and its one-line summary."""

    available: bool  # False: the training rows could not be found (``summary`` says why)
    summary: str
    reference: str | None  # the training rows' name
    reference_rows: int
    rows: int
    significance: float
    min_effect: float
    columns: list[ColumnShift]

    @property
    def differing(self) -> list[str]:
        return [c.column for c in self.columns if c.differs]

    def to_dict(self) -> dict[str, Any]:
        return {**asdict(self), "differing": self.differing}


def shift_unavailable(reason: str, rows: int) -> ShiftReport:
    """The report when there is nothing to compare with: ``reason`` says why."""
    return ShiftReport(False, reason, None, 0, rows, 0.0, 0.0, [])


def _psi(reference: np.ndarray, current: np.ndarray) -> float:
    """Population stability index: sum over bins of (q - p) ln(q / p), shares floored at 1e-4."""
    p = np.maximum(reference / max(reference.sum(), 1), 1e-4)
    q = np.maximum(current / max(current.sum(), 1), 1e-4)
    return float(np.sum((q - p) * np.log(q / p)))


def _numeric(name: str, ref: pd.Series, cur: pd.Series) -> tuple[float | None, float | None, float | None, dict, dict]:
    ref_values = pd.to_numeric(ref, errors="coerce")
    cur_values = pd.to_numeric(cur, errors="coerce")
    ref_present, cur_present = ref_values.dropna().to_numpy(float), cur_values.dropna().to_numpy(float)

    def describe(values: np.ndarray, column: pd.Series) -> dict[str, Any]:
        if not len(values):
            return {"missing": float(column.isna().mean()) if len(column) else 0.0}
        return {
            "mean": float(values.mean()),
            "median": float(np.median(values)),
            "std": float(values.std()),
            "missing": float(column.isna().mean()),
        }

    ref_info, cur_info = describe(ref_present, ref_values), describe(cur_present, cur_values)
    if not len(ref_present) or not len(cur_present):
        return None, None, None, ref_info, cur_info
    result = stats.ks_2samp(ref_present, cur_present)
    effect, p_value = float(result.statistic), float(result.pvalue)
    missing_gap = abs(cur_info["missing"] - ref_info["missing"])
    if missing_gap > effect:  # more (or fewer) blanks is the larger change: test the two shares
        table = np.array(
            [
                [ref_values.isna().sum(), len(ref_values) - ref_values.isna().sum()],
                [cur_values.isna().sum(), len(cur_values) - cur_values.isna().sum()],
            ]
        )
        effect, p_value = missing_gap, float(stats.chi2_contingency(table)[1])
    edges = np.unique(np.quantile(ref_present, np.linspace(0, 1, 11)))
    psi = None
    if len(edges) > 1:
        ref_bins = np.bincount(np.clip(np.searchsorted(edges, ref_present, "right") - 1, 0, len(edges) - 2))
        cur_bins = np.bincount(
            np.clip(np.searchsorted(edges, cur_present, "right") - 1, 0, len(edges) - 2), minlength=len(ref_bins)
        )
        psi = _psi(ref_bins.astype(float), cur_bins.astype(float))
    return effect, p_value, psi, ref_info, cur_info


def _categorical(ref: pd.Series, cur: pd.Series) -> tuple[float | None, float | None, float | None, dict, dict]:
    def labels(values: pd.Series, known: set[str] | None) -> pd.Series:
        text = values.astype(object).where(values.notna(), None).map(lambda v: _MISSING if v is None else str(v))
        return text if known is None else text.where(text.isin(known | {_MISSING}), _OTHER)

    ref_labels = labels(ref, None)
    cur_labels = labels(cur, set(ref_labels.unique()))
    categories = sorted(set(ref_labels.unique()) | set(cur_labels.unique()))
    ref_counts = ref_labels.value_counts().reindex(categories, fill_value=0).to_numpy(float)
    cur_counts = cur_labels.value_counts().reindex(categories, fill_value=0).to_numpy(float)

    def top(counts: np.ndarray) -> dict[str, Any]:
        shares = counts / max(counts.sum(), 1)
        order = np.argsort(-shares, kind="mergesort")[:5]
        return {"top": {categories[i]: float(shares[i]) for i in order if shares[i] > 0}}

    ref_info, cur_info = top(ref_counts), top(cur_counts)
    unseen = cur_counts[categories.index(_OTHER)] if _OTHER in categories else 0.0
    cur_info["not_in_training"] = float(unseen / max(cur_counts.sum(), 1))
    if not ref_counts.sum() or not cur_counts.sum():
        return None, None, None, ref_info, cur_info
    effect = 0.5 * float(np.abs(ref_counts / ref_counts.sum() - cur_counts / cur_counts.sum()).sum())
    # The chi-square approximation needs about 5 expected rows per cell (Cochran 1954): categories the
    # new rows would hold fewer of are pooled into one, so that 20 rows or one row are not "significant".
    expected = (
        (ref_counts + cur_counts) / (ref_counts.sum() + cur_counts.sum()) * min(ref_counts.sum(), cur_counts.sum())
    )
    small = expected < 5
    table = np.vstack([ref_counts[~small], cur_counts[~small]])
    if small.any():
        table = np.column_stack([table, [ref_counts[small].sum(), cur_counts[small].sum()]])
    table = table[:, table.sum(axis=0) > 0]
    p_value = 1.0 if table.shape[1] < 2 else float(stats.chi2_contingency(table)[1])
    return effect, p_value, _psi(ref_counts, cur_counts), ref_info, cur_info


def compare_rows(
    reference: pd.DataFrame,
    current: pd.DataFrame,
    *,
    kinds: Mapping[str, str],
    reference_arrays: Mapping[str, np.ndarray] | None = None,
    current_arrays: Mapping[str, np.ndarray] | None = None,
    reference_name: str | None = None,
    significance: float = 0.01,
    min_effect: float = 0.1,
    seed: int = 0,
) -> ShiftReport:
    """Compare ``current`` with ``reference`` column by column; ``kinds`` maps each input column to its kind."""
    reference_arrays, current_arrays = dict(reference_arrays or {}), dict(current_arrays or {})
    if len(reference) > MAX_REFERENCE_ROWS:
        keep = np.sort(np.random.default_rng(seed).choice(len(reference), MAX_REFERENCE_ROWS, replace=False))
        reference = reference.iloc[keep]
        reference_arrays = {k: v[keep] for k, v in reference_arrays.items()}
    compared = [
        name
        for name, kind in kinds.items()
        if (kind in ("numeric", "categorical") and name in reference and name in current)
        or (kind == "image" and name in reference_arrays and name in current_arrays)
    ]
    threshold = significance / max(len(compared), 1)
    columns: list[ColumnShift] = []
    for name, kind in kinds.items():
        if name not in compared:
            note = (
                "free text or identifiers: values rarely repeat, so not compared"
                if kind == "text"
                else "not in both sets of rows"
            )
            columns.append(ColumnShift(name, kind, None, None, None, None, False, note, {}, {}))
            continue
        if kind == "numeric":
            test = "ks"
            effect, p_value, psi, ref_info, cur_info = _numeric(name, reference[name], current[name])
        elif kind == "categorical":
            test = "chi_square"
            effect, p_value, psi, ref_info, cur_info = _categorical(reference[name], current[name])
        else:
            test = "ks"
            ref_mean = pd.Series(reference_arrays[name].reshape(len(reference_arrays[name]), -1).mean(axis=1))
            cur_mean = pd.Series(current_arrays[name].reshape(len(current_arrays[name]), -1).mean(axis=1))
            effect, p_value, psi, ref_info, cur_info = _numeric(name, ref_mean, cur_mean)
        differs = effect is not None and p_value is not None and p_value < threshold and effect >= min_effect
        note = None
        if effect is None:
            note = "no values to compare"
        elif kind == "categorical" and cur_info.get("not_in_training", 0) >= min_effect:
            note = f"{100 * cur_info['not_in_training']:.0f}% of the new values never occur in the training rows"
        columns.append(ColumnShift(name, kind, test, effect, p_value, psi, differs, note, ref_info, cur_info))
    differing = [c.column for c in columns if c.differs]
    if not compared:
        summary = "no column could be compared with the training rows"
    elif differing:
        shown = ", ".join(differing[:8]) + (f" and {len(differing) - 8} more" if len(differing) > 8 else "")
        summary = f"the new rows differ from the training rows in {len(differing)} of {len(compared)} columns: {shown}"
    else:
        summary = f"the new rows look like the training rows: none of {len(compared)} columns differs"
    return ShiftReport(
        available=True,
        summary=summary,
        reference=reference_name,
        reference_rows=len(reference),
        rows=len(current),
        significance=significance,
        min_effect=min_effect,
        columns=columns,
    )
