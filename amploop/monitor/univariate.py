"""Per-column drift: two-sample tests and distances between a reference profile and a window's.

Every statistic is computed from the two profiles' counts (see :mod:`amploop.monitor.profile`),
so the reference rows are never read again:

- ``ks``: the two-sample Kolmogorov-Smirnov statistic D, the largest gap between the two CDFs
  at the bin edges, with the p-value of Smirnov's asymptotic distribution (scipy's
  ``ks_2samp(method="asymp")``). On data whose values all have a bin of their own it is
  exactly scipy's; on percentile bins it can miss at most the share of one bin.
- ``chi_square``: the chi-square test of homogeneity on category counts (scipy's
  ``chi2_contingency`` without continuity correction); categories expected fewer than 5 times
  in the window are pooled, so the approximation holds.
- ``psi``: the population stability index over the reference's deciles (or categories), with
  shares floored at 1e-4: sum((cur - ref) * ln(cur / ref)).
- ``wasserstein``: the Wasserstein-1 distance between the two binned distributions (each bin's
  mass at its mean value), divided by the reference's standard deviation.
- ``jensen_shannon``: the Jensen-Shannon distance (natural log) between the bin or category shares.

The automatic choice (``method="auto"``) follows the sample size, as Evidently's defaults do:
a window of at most 1,000 rows gets a test (KS for numbers, chi-square for categories), whose
p-values are corrected for the number of columns (Benjamini-Hochberg by default, or
Bonferroni); a larger window gets a distance with a threshold of 0.1 (normalised Wasserstein
for numbers, Jensen-Shannon for categories), because with tens of thousands of rows every
test is significant and the question becomes whether the change is large. Any column can be
given its own method and threshold. A column whose share of missing values moves by 0.1 or
more is drifted too. The dataset drifts when at least ``drift_share`` (half) of its columns do.

Examples
--------
>>> import numpy as np, pandas as pd
>>> from amploop.monitor.profile import Profile
>>> rng = np.random.default_rng(0)
>>> kinds = {"age": "numeric", "city": "categorical"}
>>> train = pd.DataFrame({"age": rng.normal(40, 10, 5000), "city": rng.choice(["a", "b"], 5000)})
>>> reference = Profile.from_table(train, kinds)
>>> same = pd.DataFrame({"age": rng.normal(40, 10, 500), "city": rng.choice(["a", "b"], 500)})
>>> compare_profiles(reference, reference.empty().add(same)).drifted
[]
>>> older = reference.empty().add(same.assign(age=same["age"] + 8))
>>> report = compare_profiles(reference, older)
>>> report.drifted, report.columns[0].method, report.summary
(['age'], 'ks', '1 of 2 columns drifted (age); dataset drift (share 0.50, threshold 0.50)')
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np
from scipy import stats
from scipy.spatial import distance

from amploop.errors import UsageError
from amploop.monitor.profile import ColumnProfile, Profile

__all__ = [
    "METHODS",
    "ColumnDrift",
    "UnivariateReport",
    "choose_method",
    "compare_profiles",
    "chi_square_from_counts",
    "jensen_shannon_from_counts",
    "ks_from_counts",
    "psi_from_counts",
    "wasserstein_from_bins",
]

METHODS = ("ks", "chi_square", "psi", "wasserstein", "jensen_shannon")
TESTS = ("ks", "chi_square")  # methods with a p-value; the others compare a distance with a threshold
NUMERIC_ONLY, CATEGORICAL_ONLY = ("ks", "wasserstein"), ("chi_square",)
DEFAULT_THRESHOLDS = {"psi": 0.2, "wasserstein": 0.1, "jensen_shannon": 0.1}
SMALL_WINDOW_ROWS = 1000  # up to this many rows: a test; above: a distance
MISSING_SHARE_CHANGE = 0.1  # a column whose share of missing values moves this much is drifted
PSI_FLOOR = 1e-4


@dataclass(frozen=True)
class ColumnDrift:
    column: str
    kind: str  # numeric, categorical, image
    method: str
    statistic: float  # the chosen method's statistic or distance
    p_value: float | None  # tests only
    adjusted_p_value: float | None  # the p-value after the multiple-testing correction; drift when below alpha
    threshold: float  # tests: the corrected significance level; distances: the distance that counts as drift
    drifted: bool
    psi: float
    wasserstein: float | None  # numeric columns, normalised by the reference's standard deviation
    jensen_shannon: float
    n_reference: int
    n_current: int
    missing_share_reference: float
    missing_share_current: float
    note: str  # what moved, in words
    histogram: dict[str, Any]  # labels and the two sides' shares on about ten bins, for charts (no rows)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass(frozen=True)
class UnivariateReport:
    columns: list[ColumnDrift]
    correction: str  # benjamini_hochberg, bonferroni or none
    alpha: float
    drift_share: float
    n_reference: int
    n_current: int
    skipped: dict[str, str]  # columns not compared, and why

    @property
    def drifted(self) -> list[str]:
        return [c.column for c in self.columns if c.drifted]

    @property
    def share_drifted(self) -> float:
        return len(self.drifted) / len(self.columns) if self.columns else 0.0

    @property
    def dataset_drift(self) -> bool:
        return bool(self.columns) and self.share_drifted >= self.drift_share

    @property
    def summary(self) -> str:
        if not self.columns:
            return "no columns compared"
        drifted = self.drifted
        named = f" ({', '.join(drifted[:5])}{', ...' if len(drifted) > 5 else ''})" if drifted else ""
        verdict = "dataset drift" if self.dataset_drift else "no dataset drift"
        return (
            f"{len(drifted)} of {len(self.columns)} columns drifted{named}; {verdict} "
            f"(share {self.share_drifted:.2f}, threshold {self.drift_share:.2f})"
        )

    def to_dict(self) -> dict[str, Any]:
        return {
            "columns": [c.to_dict() for c in self.columns],
            "drifted": self.drifted,
            "share_drifted": self.share_drifted,
            "dataset_drift": self.dataset_drift,
            "summary": self.summary,
            "correction": self.correction,
            "alpha": self.alpha,
            "drift_share": self.drift_share,
            "n_reference": self.n_reference,
            "n_current": self.n_current,
            "skipped": self.skipped,
        }


# -- statistics from counts ------------------------------------------------------------------


def ks_from_counts(reference: np.ndarray, current: np.ndarray) -> tuple[float, float]:
    """KS statistic D and its asymptotic two-sided p-value from counts on the same bins.

    >>> ks_from_counts(np.array([5, 5, 0]), np.array([0, 5, 5]))
    (0.5, 0.112)
    """
    n_ref, n_cur = int(reference.sum()), int(current.sum())
    if n_ref == 0 or n_cur == 0:
        return 0.0, 1.0
    gap = np.abs(np.cumsum(reference) / n_ref - np.cumsum(current) / n_cur)
    d = float(np.round(gap.max(), 14))  # cumulative sums of shares carry ~1e-16 noise
    m, n = sorted((float(n_ref), float(n_cur)), reverse=True)
    return d, float(stats.kstwo.sf(d, np.round(m * n / (m + n))))  # what ks_2samp(method="asymp") does


def chi_square_from_counts(reference: np.ndarray, current: np.ndarray) -> tuple[float, float, int]:
    """Chi-square test of homogeneity (statistic, p-value, degrees of freedom), sparse categories pooled."""
    table = np.vstack([reference, current]).astype(np.float64)
    table = table[:, table.sum(axis=0) > 0]
    if table.shape[1] < 2 or table.sum(axis=1).min() == 0:
        return 0.0, 1.0, 0
    expected_current = table.sum(axis=0) * table[1].sum() / table.sum()
    sparse = expected_current < 5
    if sparse.any() and not sparse.all():
        table = np.column_stack([table[:, ~sparse], table[:, sparse].sum(axis=1)])
    if table.shape[1] < 2:
        return 0.0, 1.0, 0
    statistic, p_value, dof, _ = stats.chi2_contingency(table, correction=False)
    return float(statistic), float(p_value), int(dof)


def psi_from_counts(reference: np.ndarray, current: np.ndarray) -> float:
    """Population stability index of two count vectors on the same bins, shares floored at 1e-4."""
    if reference.sum() == 0 or current.sum() == 0:
        return 0.0
    ref = np.maximum(reference / reference.sum(), PSI_FLOOR)
    cur = np.maximum(current / current.sum(), PSI_FLOOR)
    return float(np.sum((cur - ref) * np.log(cur / ref)))


def jensen_shannon_from_counts(reference: np.ndarray, current: np.ndarray) -> float:
    """Jensen-Shannon distance (natural log; scipy's ``jensenshannon``) between two count vectors."""
    if reference.sum() == 0 or current.sum() == 0:
        return 0.0
    return float(distance.jensenshannon(reference / reference.sum(), current / current.sum()))


def wasserstein_from_bins(reference: ColumnProfile, current: ColumnProfile) -> float:
    """Wasserstein-1 distance between two numeric profiles, each bin's mass at its own mean value."""
    ref_at, cur_at = reference.counts > 0, current.counts > 0
    if not ref_at.any() or not cur_at.any():
        return 0.0
    assert reference.sums is not None and current.sums is not None
    return float(
        stats.wasserstein_distance(
            reference.sums[ref_at] / reference.counts[ref_at],
            current.sums[cur_at] / current.counts[cur_at],
            reference.counts[ref_at],
            current.counts[cur_at],
        )
    )


def _deciles(reference: np.ndarray, current: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Merge percentile bins into the reference's deciles (PSI is read on about ten bins)."""
    if len(reference) <= 10 or reference.sum() == 0:
        return reference, current
    before = (np.cumsum(reference) - reference) / reference.sum()
    group = np.minimum((before * 10).astype(np.int64), 9)
    return np.bincount(group, weights=reference, minlength=10), np.bincount(group, weights=current, minlength=10)


# -- one column ------------------------------------------------------------------------------


def choose_method(kind: str, n_current: int) -> str:
    """The automatic method: a test for windows of up to 1,000 rows, a distance above."""
    numeric = kind in ("numeric", "image")
    if n_current <= SMALL_WINDOW_ROWS:
        return "ks" if numeric else "chi_square"
    return "wasserstein" if numeric else "jensen_shannon"


def _missing_share(column: ColumnProfile) -> float:
    rows = column.n + column.missing
    return column.missing / rows if rows else 0.0


def _note(reference: ColumnProfile, current: ColumnProfile) -> str:
    if current.n == 0:
        return "no values in this window"
    if reference.kind == "numeric":
        if reference.mean is None or current.mean is None:
            return ""
        spread = f", sd {reference.std or 0:.3g} → {current.std or 0:.3g}" if current.n > 1 else ""
        return f"mean {reference.mean:.3g} → {current.mean:.3g}{spread}"
    ref_share, cur_share = reference.counts / max(reference.n, 1), current.counts / current.n
    moved = int(np.argmax(np.abs(cur_share - ref_share)))
    names = [*(reference.categories or []), "(other)"]
    return f"'{names[moved]}' {ref_share[moved]:.1%} → {cur_share[moved]:.1%} of rows"


def _histogram(reference: ColumnProfile, current: ColumnProfile) -> dict[str, Any]:
    """Both sides' shares on the reference's deciles (numbers) or its ten largest categories plus the rest."""
    ref_counts, cur_counts = reference.counts.astype(np.float64), current.counts.astype(np.float64)
    if reference.kind == "numeric":
        if len(ref_counts) > 10 and ref_counts.sum() > 0:
            before = (np.cumsum(ref_counts) - ref_counts) / ref_counts.sum()
            group = np.minimum((before * 10).astype(np.int64), 9)
        else:
            group = np.arange(len(ref_counts))
        group = np.unique(group, return_inverse=True)[1].ravel()  # consecutive: a heavy bin can span deciles
        edges = [float(e) for e in (reference.edges if reference.edges is not None else [])]
        uppers = {}
        for j, g in enumerate(group):
            uppers[int(g)] = edges[j] if j < len(edges) else None
        bounded = [uppers[g] for g in sorted(uppers) if uppers[g] is not None]
        last = f"> {bounded[-1]:.4g}" if bounded else (f"{reference.low:.4g}" if np.isfinite(reference.low) else "all")
        labels = [f"≤ {uppers[g]:.4g}" if uppers[g] is not None else last for g in sorted(uppers)]
        ref_groups = np.bincount(group, weights=ref_counts)
        cur_groups = np.bincount(group, weights=cur_counts, minlength=len(ref_groups))
    else:
        names = [*(reference.categories or []), "(other)"]
        order = [int(i) for i in np.argsort(-ref_counts, kind="stable")]
        top, rest = order[:10], order[10:]
        labels = [names[i] for i in top] + (["(all others)"] if rest else [])
        ref_groups = np.r_[ref_counts[top], ref_counts[rest].sum()] if rest else ref_counts[top]
        cur_groups = np.r_[cur_counts[top], cur_counts[rest].sum()] if rest else cur_counts[top]

    def shares(counts: np.ndarray) -> list[float]:
        total = counts.sum()
        return [round(float(c / total), 6) if total else 0.0 for c in counts]

    return {"labels": labels, "reference": shares(ref_groups), "current": shares(cur_groups)}


def _raw_column(reference: ColumnProfile, current: ColumnProfile, method: str) -> dict[str, Any]:
    numeric = reference.kind == "numeric"
    ref_counts, cur_counts = reference.counts, current.counts
    wasserstein = None
    if numeric:
        std = reference.std
        raw = wasserstein_from_bins(reference, current)
        # a reference with one value has no spread to scale by: any move away from it is a whole change
        wasserstein = raw / std if std else (0.0 if raw == 0 else 1.0)
    values: dict[str, Any] = {
        "psi": psi_from_counts(*_deciles(ref_counts, cur_counts)),
        "wasserstein": wasserstein,
        "jensen_shannon": jensen_shannon_from_counts(ref_counts, cur_counts),
        "p_value": None,
    }
    if method == "ks":
        if not numeric:
            raise UsageError(f"column '{reference.name}' is categorical; ks compares numbers, use chi_square")
        values["statistic"], values["p_value"] = ks_from_counts(ref_counts, cur_counts)
    elif method == "chi_square":
        values["statistic"], values["p_value"], _ = chi_square_from_counts(ref_counts, cur_counts)
    elif method == "wasserstein":
        if not numeric:
            raise UsageError(f"column '{reference.name}' is categorical; wasserstein compares numbers")
        values["statistic"] = wasserstein
    else:
        values["statistic"] = values[method]
    return values


def _adjusted(p_values: list[float], correction: str) -> list[float]:
    """p-values adjusted for the number of tests: Bonferroni, or Benjamini-Hochberg (step-up)."""
    p = np.asarray(p_values, dtype=np.float64)
    m = len(p)
    if m == 0 or correction == "none":
        return p.tolist()
    if correction == "bonferroni":
        return np.minimum(p * m, 1.0).tolist()
    order = np.argsort(p)
    ranked = p[order] * m / np.arange(1, m + 1)
    ranked = np.minimum.accumulate(ranked[::-1])[::-1]  # monotone from the largest p down
    adjusted = np.empty(m)
    adjusted[order] = np.minimum(ranked, 1.0)
    return adjusted.tolist()


CORRECTIONS = {
    "bh": "benjamini_hochberg",
    "benjamini_hochberg": "benjamini_hochberg",
    "bonferroni": "bonferroni",
    "none": "none",
}


def compare_profiles(
    reference: Profile,
    current: Profile,
    *,
    method: str = "auto",
    methods: Mapping[str, str] | None = None,
    thresholds: Mapping[str, float] | None = None,
    alpha: float = 0.05,
    correction: str = "bh",
    drift_share: float = 0.5,
    outputs: bool = False,
) -> UnivariateReport:
    """Compare each column of ``current`` with ``reference`` (or, with ``outputs``, the model's outputs).

    ``method`` applies to every column it fits (``ks`` and ``wasserstein`` compare numbers,
    ``chi_square`` categories; ``auto`` chooses by kind and window size); ``methods`` overrides it
    per column and ``thresholds`` sets a distance method's threshold per method name.
    Test p-values are adjusted with ``correction`` (``bh``, ``bonferroni`` or ``none``) and a
    column drifts when its adjusted p-value is below ``alpha``.
    """
    if correction not in CORRECTIONS:
        raise UsageError(f"correction '{correction}': use one of bh, bonferroni, none")
    if not 0 < alpha < 1:
        raise UsageError(f"alpha {alpha}: the significance level must lie between 0 and 1")
    for name, chosen in {**(methods or {}), "": method}.items():
        if chosen != "auto" and chosen not in METHODS:
            where = f" for column '{name}'" if name else ""
            raise UsageError(f"method '{chosen}'{where}: use auto or one of {', '.join(METHODS)}")
    limits = {**DEFAULT_THRESHOLDS, **(thresholds or {})}
    ref_columns, cur_columns = (reference.outputs, current.outputs) if outputs else (reference.columns, current.columns)
    missing = sorted(set(ref_columns) - set(cur_columns))
    if missing:
        raise UsageError(f"the window has no profile of {', '.join(missing)}; profile it from the same reference")
    rows: list[dict[str, Any]] = []
    for name, ref in ref_columns.items():
        cur = cur_columns[name]
        chosen = (methods or {}).get(name)
        if chosen is None:  # the method for every column, where it fits the column's kind
            fits = method not in (NUMERIC_ONLY if ref.kind == "categorical" else CATEGORICAL_ONLY)
            chosen = method if fits else "auto"
        if chosen == "auto":
            chosen = choose_method(ref.kind, cur.n)
        rows.append({"name": name, "ref": ref, "cur": cur, "method": chosen, **_raw_column(ref, cur, chosen)})
    tested = [r for r in rows if r["method"] in TESTS]
    for row, adjusted in zip(tested, _adjusted([r["p_value"] for r in tested], CORRECTIONS[correction]), strict=True):
        row["adjusted"] = adjusted
    columns = []
    for row in rows:
        ref, cur = row["ref"], row["cur"]
        if row["method"] in TESTS:
            threshold, drifted = alpha, row["adjusted"] < alpha and cur.n > 0
        else:
            threshold = limits[row["method"]]
            drifted = row["statistic"] >= threshold and cur.n > 0
        missing_ref, missing_cur = _missing_share(ref), _missing_share(cur)
        note = _note(ref, cur)
        if abs(missing_cur - missing_ref) >= MISSING_SHARE_CHANGE:
            drifted = True
            note = f"missing values {missing_ref:.0%} → {missing_cur:.0%}" + (f"; {note}" if note else "")
        columns.append(
            ColumnDrift(
                column=row["name"],
                kind=ref.source_kind,
                method=row["method"],
                statistic=float(row["statistic"]),
                p_value=row["p_value"],
                adjusted_p_value=row.get("adjusted"),
                threshold=float(threshold),
                drifted=bool(drifted),
                psi=row["psi"],
                wasserstein=row["wasserstein"],
                jensen_shannon=row["jensen_shannon"],
                n_reference=ref.n,
                n_current=cur.n,
                missing_share_reference=missing_ref,
                missing_share_current=missing_cur,
                note=note,
                histogram=_histogram(ref, cur),
            )
        )
    return UnivariateReport(
        columns=columns,
        correction=CORRECTIONS[correction],
        alpha=alpha,
        drift_share=drift_share,
        n_reference=reference.n_rows,
        n_current=current.n_rows,
        skipped={} if outputs else dict(reference.skipped),
    )
