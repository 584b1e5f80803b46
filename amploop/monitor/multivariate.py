"""Do the new rows, taken as a whole, come from the training rows' distribution? Four tests.

Per-column tests miss a change in how columns move together and drown in corrections when
there are hundreds of columns. These tests compare two numeric matrices (rows x features,
already encoded as floats; the caller encodes) in one go:

- :func:`domain_classifier_test`: can a classifier tell the two samples apart? Gradient-boosted
  trees are fitted to label reference rows 0 and current rows 1 on one half of each sample; on
  the other half, the AUC of their scores is the statistic and the Mann-Whitney U test (AUC =
  U / (n1 n2)) its p-value, valid because the held-out rows took no part in the fit
  (Lopez-Paz & Oquab 2017, "Revisiting classifier two-sample tests").
- :func:`mmd_test`: the unbiased squared maximum mean discrepancy with a Gaussian kernel and a
  permutation p-value (Gretton et al. 2012, "A kernel two-sample test", JMLR 13).
- :func:`linear_mmd_test`: the same paper's linear-time MMD for very large samples, with a
  normal approximation.
- :func:`bbsd_test`: black-box shift detection, a KS test on each column of the model's softmax
  outputs (Lipton et al. 2018; Rabanser et al. 2019, "Failing loudly", found it the best single
  method across the shifts they planted).

Each returns a :class:`MultivariateResult`; ``drifted`` is ``p_value < alpha``. Every random
choice (subsamples, the split, the trees, the permutations) is drawn from ``seed``.

Examples
--------
>>> import numpy as np
>>> rng = np.random.default_rng(0)
>>> reference = rng.normal(size=(400, 5))
>>> same = rng.normal(size=(400, 5))
>>> moved = same + np.array([0.0, 0.0, 0.8, 0.0, 0.0])  # one feature's mean moves by 0.8 sd
>>> mmd_test(reference, same, seed=0).drifted
False
>>> result = mmd_test(reference, moved, seed=0)
>>> result.drifted, result.p_value == 1 / 201
(True, True)
>>> classifier = domain_classifier_test(reference, moved, seed=0)
>>> classifier.drifted, classifier.details["top_features"][0]
(True, 2)
>>> round(classifier.statistic, 2)  # the held-out AUC
0.58
>>> large_reference = rng.normal(size=(20_000, 5))
>>> large_current = rng.normal(size=(20_000, 5)) + np.array([0.0, 0.0, 0.3, 0.0, 0.0])
>>> linear_mmd_test(large_reference, large_current, seed=0).drifted
True
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

import numpy as np
from scipy import stats

from amploop.errors import UsageError

__all__ = ["MultivariateResult", "bbsd_test", "domain_classifier_test", "linear_mmd_test", "mmd_test"]

_TOP_FEATURES = 5
_BANDWIDTH_ROWS = 1000  # rows of the pooled sample the linear-time test's median heuristic looks at


@dataclass(frozen=True)
class MultivariateResult:
    """One two-sample test of the reference rows against the current rows."""

    method: str  # domain_classifier, mmd, linear_mmd, bbsd
    statistic: float  # AUC, MMD^2 (unbiased or linear-time), or the smallest-p column's KS statistic
    p_value: float
    drifted: bool  # p_value < alpha
    alpha: float
    n_reference: int  # rows given, before any subsampling
    n_current: int
    details: dict[str, Any]  # what the method saw: rows used, bandwidth, per-column results, ...

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def _matrices(reference: Any, current: Any, what: str = "rows") -> tuple[np.ndarray, np.ndarray]:
    """Both samples as finite 2-D float arrays with the same columns, or a UsageError that says why not."""
    arrays = []
    for name, value in (("reference", reference), ("current", current)):
        try:
            array = np.asarray(value, dtype=float)
        except (TypeError, ValueError) as exc:
            raise UsageError(f"{name} {what} are not numeric ({exc}); encode them as a float array first") from exc
        if array.ndim != 2:
            raise UsageError(
                f"{name} {what} must be a 2-D array (rows x columns), got {array.ndim}-D; "
                "use .reshape(-1, 1) for a single column"
            )
        if len(array) < 2:
            raise UsageError(f"{name} has {len(array)} row(s); each side needs at least 2")
        if array.shape[1] == 0:
            raise UsageError(f"{name} {what} have no columns; pass at least one")
        finite = np.isfinite(array).all(axis=0)
        if not finite.all():
            column = int(np.flatnonzero(~finite)[0])
            raise UsageError(f"{name} column {column} holds NaN or infinite values; impute or drop them before testing")
        arrays.append(array)
    if arrays[0].shape[1] != arrays[1].shape[1]:
        raise UsageError(
            f"reference has {arrays[0].shape[1]} columns but current has {arrays[1].shape[1]}; "
            "encode both with the same encoder"
        )
    return arrays[0], arrays[1]


def _decided(
    method: str,
    statistic: float,
    p_value: float,
    alpha: float,
    reference: np.ndarray,
    current: np.ndarray,
    *,
    details: dict[str, Any],
) -> MultivariateResult:
    """A test's result: drifted when its p-value is below ``alpha``."""
    return MultivariateResult(
        method=method,
        statistic=float(statistic),
        p_value=float(p_value),
        drifted=bool(p_value < alpha),
        alpha=alpha,
        n_reference=len(reference),
        n_current=len(current),
        details=details,
    )


def _check_alpha(alpha: float) -> None:
    if not 0 < alpha < 1:
        raise UsageError(f"alpha must lie strictly between 0 and 1, got {alpha}; 0.05 is usual")


def _check_at_least(name: str, value: int, least: int) -> None:
    if int(value) != value or value < least:
        raise UsageError(f"{name} must be an integer >= {least}, got {value!r}")


def _subsample(rows: np.ndarray, max_rows: int, rng: np.random.Generator) -> np.ndarray:
    if len(rows) <= max_rows:
        return rows
    return rows[np.sort(rng.choice(len(rows), max_rows, replace=False))]


def _scaled(*samples: np.ndarray) -> list[np.ndarray]:
    """Each column divided by its standard deviation over all samples together.

    A feature measured in thousands would otherwise decide every kernel distance alone. Pooled
    (not reference-only) scales are a symmetric function of the pooled rows, so the permutation
    test stays exact.
    """
    scale = np.vstack(samples).std(axis=0)
    scale[scale == 0] = 1.0
    return [sample / scale for sample in samples]


def _one_thread() -> Any:
    """Limit OpenMP and BLAS to one thread, as the label-issue screen does.

    On a busy two-core machine, threads that wait for each other made the trees' fits, and even
    400-row distance matrices, up to ten times slower; one thread gives the same results.
    """
    from threadpoolctl import threadpool_limits

    return threadpool_limits(limits=1)


def _squared_distances(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    a_norms, b_norms = (a * a).sum(axis=1), (b * b).sum(axis=1)
    return np.maximum(a_norms[:, None] + b_norms[None, :] - 2.0 * a @ b.T, 0.0)  # rounding can go below 0


def _median_bandwidth(squared: np.ndarray) -> float:
    """The median heuristic (Gretton et al. 2012, section 8): the median distance between distinct pooled rows."""
    upper = squared[np.triu_indices_from(squared, k=1)]
    positive = upper[upper > 0]
    return float(np.sqrt(np.median(positive))) if len(positive) else 1.0  # all rows equal: any width gives MMD 0


def domain_classifier_test(
    reference: np.ndarray, current: np.ndarray, *, max_rows: int = 5000, alpha: float = 0.05, seed: int = 0
) -> MultivariateResult:
    """Fit a classifier to tell current rows from reference rows; test its held-out AUC against 0.5.

    Each side is first subsampled to at most ``max_rows`` rows, then split 50/50 (stratified)
    into a fit half and a held-out half. The classifier is scikit-learn's
    ``HistGradientBoostingClassifier`` with 100 iterations and no early stopping: trees need no
    scaling, catch interactions, and fit 10,000 rows in about a second.

    ``details["top_features"]`` lists up to five column indices the classifier leaned on most,
    by the split gain summed over its trees; that needs the fitted trees' nodes, which
    scikit-learn keeps in a private attribute, so where it is missing the ranking falls back to
    the absolute difference of the columns' standardized means (``details["top_features_by"]``
    says which). Permutation importance would rank better but costs a prediction per column.
    """
    from sklearn.ensemble import HistGradientBoostingClassifier  # import on use: sklearn takes a second to load
    from sklearn.model_selection import train_test_split

    reference, current = _matrices(reference, current)
    _check_alpha(alpha)
    _check_at_least("max_rows", max_rows, 2)
    rng = np.random.default_rng(seed)
    ref_rows, cur_rows = _subsample(reference, max_rows, rng), _subsample(current, max_rows, rng)
    rows = np.vstack([ref_rows, cur_rows])
    labels = np.r_[np.zeros(len(ref_rows), dtype=int), np.ones(len(cur_rows), dtype=int)]
    fit_rows, held_rows, fit_labels, held_labels = train_test_split(
        rows, labels, test_size=0.5, stratify=labels, random_state=seed
    )
    model = HistGradientBoostingClassifier(max_iter=100, early_stopping=False, random_state=seed)
    with _one_thread():
        model.fit(fit_rows, fit_labels)
        scores = model.predict_proba(held_rows)[:, 1]
    cur_scores, ref_scores = scores[held_labels == 1], scores[held_labels == 0]
    # U counts the (current, reference) pairs the classifier orders correctly, ties as halves: U / (n1 n2) is the AUC.
    test = stats.mannwhitneyu(cur_scores, ref_scores, alternative="greater")
    auc = float(test.statistic) / (len(cur_scores) * len(ref_scores))

    trees = getattr(model, "_predictors", None)
    if trees is not None:
        importance = np.zeros(rows.shape[1])
        for iteration in trees:
            for tree in iteration:
                split = tree.nodes[tree.nodes["is_leaf"] == 0]
                importance += np.bincount(split["feature_idx"], weights=split["gain"], minlength=rows.shape[1])
        ranked_by = "split_gain"
    else:
        fit_ref, fit_cur = fit_rows[fit_labels == 0], fit_rows[fit_labels == 1]
        spread = fit_rows.std(axis=0)
        importance = np.abs(fit_cur.mean(axis=0) - fit_ref.mean(axis=0)) / np.where(spread > 0, spread, 1.0)
        ranked_by = "mean_difference"
    order = np.argsort(-importance, kind="stable")[:_TOP_FEATURES]
    p_value = float(test.pvalue)
    return _decided(
        "domain_classifier",
        auc,
        p_value,
        alpha,
        reference,
        current,
        details={
            "auc": auc,
            "top_features": [int(i) for i in order if importance[i] > 0],
            "top_features_by": ranked_by,
            "fit_rows": len(fit_rows),
            "held_out_rows": len(held_rows),
        },
    )


def mmd_test(
    reference: np.ndarray,
    current: np.ndarray,
    *,
    permutations: int = 200,
    max_rows: int = 1000,
    alpha: float = 0.05,
    seed: int = 0,
) -> MultivariateResult:
    """Unbiased MMD^2 with a Gaussian kernel and a permutation p-value.

    Columns are scaled by their pooled standard deviations; the kernel is
    ``exp(-|x - y|^2 / (2 s^2))`` with ``s`` the median distance between pooled rows (the
    median heuristic). Each side is subsampled to at most ``max_rows`` rows, so the pooled
    kernel matrix, and the memory, stay O(max_rows^2) whatever the number of rows given (a
    peak of about 100 MB at the default). The matrix is computed once; each permutation only
    relabels its rows.

    The p-value is ``(1 + #{permuted MMD^2 >= observed}) / (1 + permutations)``: the observed
    labelling counts as one of the permutations, so it is never 0 and is exactly valid
    (Phipson & Smyth 2010).
    """
    reference, current = _matrices(reference, current)
    _check_alpha(alpha)
    _check_at_least("permutations", permutations, 1)
    _check_at_least("max_rows", max_rows, 2)
    rng = np.random.default_rng(seed)
    ref_rows, cur_rows = _scaled(_subsample(reference, max_rows, rng), _subsample(current, max_rows, rng))
    pooled = np.vstack([ref_rows, cur_rows])
    m, total = len(ref_rows), len(pooled)
    n = total - m
    with _one_thread():
        squared = _squared_distances(pooled, pooled)
        bandwidth = _median_bandwidth(squared)
        kernel = np.exp(-squared / (2.0 * bandwidth**2))
        del squared
        np.fill_diagonal(kernel, 0.0)  # the unbiased estimate leaves out each row's kernel with itself

        # Column 0 is the observed labelling, the others random relabellings: u marks the "reference" rows.
        labellings = np.tile(np.arange(total), (permutations + 1, 1))
        labellings[1:] = rng.permuted(labellings[1:], axis=1)
        u = np.zeros((total, permutations + 1))
        np.put_along_axis(u.T, labellings[:, :m], 1.0, axis=1)
        # With K's diagonal zeroed, u'Ku sums the reference pairs, (1-u)'K(1-u) the current, u'K(1-u) the cross.
        row_sums = kernel.sum(axis=1)
        within_reference = (u * (kernel @ u)).sum(axis=0)
        cross = u.T @ row_sums - within_reference
        within_current = row_sums.sum() - 2.0 * cross - within_reference
        mmd = within_reference / (m * (m - 1)) + within_current / (n * (n - 1)) - 2.0 * cross / (m * n)
    observed = float(mmd[0])
    # Sums of the same kernel values in another order differ by rounding alone: count those as ties.
    exceed = int(np.sum(mmd[1:] >= observed - 1e-12))
    p_value = (1 + exceed) / (1 + permutations)
    return _decided(
        "mmd",
        observed,
        p_value,
        alpha,
        reference,
        current,
        details={
            "bandwidth": bandwidth,
            "permutations": int(permutations),
            "reference_rows_used": m,
            "current_rows_used": n,
        },
    )


def linear_mmd_test(
    reference: np.ndarray, current: np.ndarray, *, alpha: float = 0.05, seed: int = 0
) -> MultivariateResult:
    """The linear-time MMD^2 (Gretton et al. 2012, section 6) for samples too large to subsample well.

    Both sides are shuffled (rows may arrive in time order) and cut to the same length 2k. Pair
    i takes reference rows x, x' and current rows y, y' and gives
    ``h = k(x, x') + k(y, y') - k(x, y') - k(x', y)``; the statistic is the mean of the k values
    of h, whose standard error is their standard deviation over sqrt(k). The p-value is one-sided
    from the normal distribution (a shift makes MMD^2 positive). Memory is O(rows), never a
    kernel matrix; the power per row is lower than :func:`mmd_test`'s, so use it past what
    ``max_rows`` there can hold. Columns are scaled and the kernel width chosen as in
    :func:`mmd_test`, the width from a seeded 1,000-row subsample of the pooled rows.
    """
    reference, current = _matrices(reference, current)
    _check_alpha(alpha)
    pairs = min(len(reference), len(current)) // 2
    if pairs < 2:
        raise UsageError(
            f"the linear-time MMD needs at least 4 rows on each side (2 pairs), got {len(reference)} and "
            f"{len(current)}; use mmd_test for small samples"
        )
    rng = np.random.default_rng(seed)
    ref_rows = reference[rng.permutation(len(reference))[: 2 * pairs]]
    cur_rows = current[rng.permutation(len(current))[: 2 * pairs]]
    ref_rows, cur_rows = _scaled(ref_rows, cur_rows)
    pooled_sample = _subsample(np.vstack([ref_rows, cur_rows]), _BANDWIDTH_ROWS, rng)
    with _one_thread():
        bandwidth = _median_bandwidth(_squared_distances(pooled_sample, pooled_sample))

    def k(a: np.ndarray, b: np.ndarray) -> np.ndarray:
        return np.exp(-((a - b) ** 2).sum(axis=1) / (2.0 * bandwidth**2))

    x, x2, y, y2 = ref_rows[0::2], ref_rows[1::2], cur_rows[0::2], cur_rows[1::2]
    h = k(x, x2) + k(y, y2) - k(x, y2) - k(x2, y)
    statistic = float(h.mean())
    standard_error = float(h.std(ddof=1) / np.sqrt(pairs))
    # When every h is equal there is no spread to judge by: only a positive statistic counts as a difference.
    p_value = float(stats.norm.sf(statistic / standard_error)) if standard_error > 0 else float(statistic <= 0)
    return _decided(
        "linear_mmd",
        statistic,
        p_value,
        alpha,
        reference,
        current,
        details={"bandwidth": bandwidth, "pairs": pairs, "standard_error": standard_error},
    )


def bbsd_test(
    reference_probabilities: np.ndarray, current_probabilities: np.ndarray, *, alpha: float = 0.05
) -> MultivariateResult:
    """Black-box shift detection: a two-sample KS test on each column of the model's softmax outputs.

    The model serves as the encoder: a shift that changes its outputs is one that matters to it.
    The p-value is the smallest column p-value times the number of columns tested (Bonferroni,
    capped at 1). With two columns only the second (the positive class) is tested, since
    ``p0 = 1 - p1`` makes the two tests the same. The KS test runs on the exact values (exact
    p-values for small samples, scipy's asymptotic ones for large).
    """
    reference, current = _matrices(reference_probabilities, current_probabilities, "probabilities")
    _check_alpha(alpha)
    columns = [1] if reference.shape[1] == 2 else list(range(reference.shape[1]))
    tests = [stats.ks_2samp(reference[:, c], current[:, c]) for c in columns]
    p_values = [float(t.pvalue) for t in tests]
    statistics = [float(t.statistic) for t in tests]
    most = int(np.argmin(p_values))
    p_value = min(1.0, p_values[most] * len(columns))
    return _decided(
        "bbsd",
        statistics[most],
        p_value,
        alpha,
        reference,
        current,
        details={
            "columns_tested": columns,
            "ks_statistics": statistics,
            "p_values": p_values,
            "most_shifted_column": columns[most],
        },
    )
