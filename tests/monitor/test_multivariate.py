"""Multivariate drift tests on seeded synthetic matrices: planted shifts found, no-shift alarms rare.

False-alarm rates are checked over many seeded no-shift pairs against alpha plus a margin of
three binomial standard deviations, 3 * sqrt(alpha (1 - alpha) / trials): a correct test
exceeds it with probability about 0.002, a test that fires on noise far more often.
"""

import json
import math

import numpy as np
import pytest
from scipy import stats
from scipy.spatial.distance import cdist

from amploop.errors import UsageError
from amploop.monitor.multivariate import (
    MultivariateResult,
    bbsd_test,
    domain_classifier_test,
    linear_mmd_test,
    mmd_test,
)

SHIFT = np.r_[np.full(3, 0.5), np.zeros(7)]  # 0.5 sd in features 0, 1, 2 of 10


def _pair(seed: int, rows: int = 500, shift: np.ndarray | float = 0.0, features: int = 10):
    rng = np.random.default_rng(seed)
    return rng.normal(size=(rows, features)), rng.normal(size=(rows, features)) + shift


def _margin(alpha: float, trials: int) -> float:
    return 3 * math.sqrt(alpha * (1 - alpha) / trials)


_WEIGHTS = np.random.default_rng(99).normal(size=(10, 3))  # a fixed "model": logistic regression, 3 classes


def _softmax_outputs(rows: np.ndarray) -> np.ndarray:
    logits = rows @ _WEIGHTS
    exp = np.exp(logits - logits.max(axis=1, keepdims=True))
    return exp / exp.sum(axis=1, keepdims=True)


def _plain(value) -> bool:
    """True when ``value`` is built from JSON's own Python types only (no numpy scalars)."""
    if isinstance(value, dict):
        return all(type(k) is str and _plain(v) for k, v in value.items())
    if isinstance(value, list):
        return all(_plain(v) for v in value)
    return type(value) in (str, int, float, bool) or value is None


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_domain_classifier_finds_a_mean_shift_in_3_of_10_features_and_names_them(seed):
    reference, current = _pair(seed, shift=SHIFT)
    result = domain_classifier_test(reference, current, seed=seed)
    assert result.drifted and result.p_value < 1e-4
    assert result.statistic > 0.6  # held-out AUC
    assert result.details["top_features_by"] == "split_gain"
    assert set(result.details["top_features"][:3]) == {0, 1, 2}


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_mmd_finds_a_mean_shift_in_3_of_10_features(seed):
    reference, current = _pair(seed, shift=SHIFT)
    result = mmd_test(reference, current, seed=seed)
    assert result.drifted and result.p_value == 1 / 201  # no relabelling comes close
    assert result.statistic > 0


def test_domain_classifier_rarely_fires_without_a_shift():
    trials = 20
    results = [domain_classifier_test(*_pair(100 + s, rows=200), seed=s) for s in range(trials)]
    assert sum(r.drifted for r in results) / trials <= 0.05 + _margin(0.05, trials)  # 0.196: at most 3 of 20
    # one-sided: a held-out AUC below 0.5 is no evidence of drift
    below_half = [r for r in results if r.statistic < 0.5]
    assert below_half and all(r.p_value > 0.5 for r in below_half)


def test_mmd_false_alarm_rate_without_a_shift_is_at_most_alpha():
    trials = 200
    p_values = np.array([mmd_test(*_pair(1000 + s, rows=50), permutations=99, seed=s).p_value for s in range(trials)])
    rate = float(np.mean(p_values < 0.05))
    assert rate <= 0.05 + _margin(0.05, trials)  # 0.096
    assert np.mean(p_values < 0.5) > 0.3  # and not so conservative that it never fires: p-values spread out


def test_linear_mmd_false_alarm_rate_without_a_shift_is_at_most_alpha():
    trials = 200
    rate = np.mean([linear_mmd_test(*_pair(3000 + s, rows=200), seed=s).drifted for s in range(trials)])
    assert rate <= 0.05 + _margin(0.05, trials)


def test_bbsd_false_alarm_rate_without_a_shift_is_at_most_alpha():
    trials = 200
    rate = np.mean(
        [bbsd_test(*(_softmax_outputs(x) for x in _pair(5000 + s, rows=200))).drifted for s in range(trials)]
    )
    assert rate <= 0.05 + _margin(0.05, trials)


def test_linear_mmd_finds_a_shift_in_a_large_sample():
    reference, current = _pair(7, rows=20_000, shift=SHIFT)
    result = linear_mmd_test(reference, current)
    assert result.drifted and result.p_value < 1e-6
    assert result.details["pairs"] == 10_000


def test_bbsd_finds_an_input_shift_through_the_models_outputs():
    reference, current = _pair(11, shift=SHIFT)
    result = bbsd_test(_softmax_outputs(reference), _softmax_outputs(current))
    assert result.drifted and result.details["columns_tested"] == [0, 1, 2]
    # Bonferroni over the three columns, exactly
    assert result.p_value == pytest.approx(min(1.0, 3 * min(result.details["p_values"])))
    assert not bbsd_test(_softmax_outputs(reference), _softmax_outputs(_pair(12)[1])).drifted


def test_bbsd_tests_one_column_of_binary_outputs():
    rng = np.random.default_rng(3)
    positive_ref, positive_cur = rng.beta(2, 5, 300), rng.beta(2, 3, 300)
    result = bbsd_test(np.c_[1 - positive_ref, positive_ref], np.c_[1 - positive_cur, positive_cur])
    assert result.details["columns_tested"] == [1]
    expected = stats.ks_2samp(positive_ref, positive_cur)
    assert result.p_value == pytest.approx(expected.pvalue)  # no Bonferroni factor for a redundant column
    assert result.statistic == pytest.approx(expected.statistic)


@pytest.mark.parametrize("permutations", [1, 9, 50])
def test_mmd_p_value_is_a_multiple_of_one_over_one_plus_permutations(permutations):
    for seed, shift in [(0, 0.0), (1, 0.3), (2, 3.0)]:
        p = mmd_test(*_pair(seed, rows=30, shift=shift), permutations=permutations, seed=seed).p_value
        count = p * (1 + permutations)
        assert count == pytest.approx(round(count)) and p >= 1 / (1 + permutations)
    # a shift of 3 sd leaves every relabelling below the observed statistic: the smallest possible p
    assert p == pytest.approx(1 / (1 + permutations))


def test_mmd_of_identical_constant_rows_is_zero_with_p_value_one():
    rows = np.ones((20, 3))
    result = mmd_test(rows, rows.copy(), permutations=30)
    assert result.statistic == pytest.approx(0.0, abs=1e-12)
    assert result.p_value == 1.0  # every relabelling ties with the observed statistic


def test_mmd_statistic_is_the_unbiased_estimate_by_hand():
    reference, current = _pair(4, rows=15, features=3)
    current = current[:11] * 2.0  # unequal sizes and scales
    result = mmd_test(reference, current, permutations=5)
    scale = np.vstack([reference, current]).std(axis=0)
    x, y = reference / scale, current / scale
    width = result.details["bandwidth"]

    def kernel(a, b):
        return np.exp(-cdist(a, b, "sqeuclidean") / (2 * width**2))

    kxx, kyy, kxy = kernel(x, x), kernel(y, y), kernel(x, y)
    m, n = len(x), len(y)
    by_hand = (kxx.sum() - np.trace(kxx)) / (m * (m - 1)) + (kyy.sum() - np.trace(kyy)) / (n * (n - 1)) - 2 * kxy.mean()
    assert result.statistic == pytest.approx(by_hand, rel=1e-9)
    pooled = np.vstack([x, y])
    distances = cdist(pooled, pooled)[np.triu_indices(m + n, k=1)]
    assert width == pytest.approx(np.median(distances))  # the median heuristic


def test_fifty_thousand_rows_are_subsampled():
    reference, current = _pair(5, rows=50_000, shift=SHIFT)
    mmd = mmd_test(reference, current)
    assert (mmd.n_reference, mmd.n_current) == (50_000, 50_000)
    assert (mmd.details["reference_rows_used"], mmd.details["current_rows_used"]) == (1000, 1000)
    assert mmd.drifted
    classifier = domain_classifier_test(reference, current, max_rows=2000)  # fewer than 5000 rows: a quick test
    assert classifier.details["fit_rows"] + classifier.details["held_out_rows"] == 4000
    assert classifier.drifted
    assert linear_mmd_test(reference, current).details["pairs"] == 25_000


def test_results_are_seeded_and_json_ready():
    reference, current = _pair(6, rows=200, shift=SHIFT)
    for run in (
        lambda: domain_classifier_test(reference, current, seed=3),
        lambda: mmd_test(reference, current, permutations=20, seed=3),
        lambda: linear_mmd_test(reference, current, seed=3),
        lambda: bbsd_test(_softmax_outputs(reference), _softmax_outputs(current)),
    ):
        first, again = run(), run()
        assert isinstance(first, MultivariateResult) and first == again
        as_dict = first.to_dict()
        assert _plain(as_dict), as_dict
        assert json.loads(json.dumps(as_dict)) == as_dict
        assert as_dict["drifted"] == (as_dict["p_value"] < as_dict["alpha"])


def test_drifted_means_p_value_strictly_below_alpha():
    reference, current = _pair(8, rows=100, shift=0.15)
    p = linear_mmd_test(reference, current).p_value
    assert 0 < p < 1
    assert linear_mmd_test(reference, current, alpha=p).drifted is False
    assert linear_mmd_test(reference, current, alpha=float(np.nextafter(p, 1))).drifted is True


_ALL = [
    pytest.param(domain_classifier_test, id="domain_classifier"),
    pytest.param(mmd_test, id="mmd"),
    pytest.param(linear_mmd_test, id="linear_mmd"),
    pytest.param(bbsd_test, id="bbsd"),
]


@pytest.mark.parametrize("test", _ALL)
def test_bad_input_is_a_usage_error_that_says_what_is_wrong(test):
    good = np.random.default_rng(0).random((10, 4))
    with pytest.raises(UsageError, match="current has 1 row"):
        test(good, good[:1])
    with pytest.raises(UsageError, match="reference has 0 row"):
        test(good[:0], good)
    with pytest.raises(UsageError, match="reference has 4 columns but current has 3"):
        test(good, good[:, :3])
    with_nan = good.copy()
    with_nan[5, 3] = np.nan
    with pytest.raises(UsageError, match="current column 3 holds NaN or infinite"):
        test(good, with_nan)
    with_inf = good.copy()
    with_inf[0, 1] = np.inf
    with pytest.raises(UsageError, match="reference column 1"):
        test(with_inf, good)
    with pytest.raises(UsageError, match="2-D"):
        test(good[:, 0], good[:, 0])
    with pytest.raises(UsageError, match="not numeric"):
        test(np.array([["a", "b"], ["c", "d"]]), good[:, :2])
    with pytest.raises(UsageError, match="alpha"):
        test(good, good, alpha=1.5)


def test_bad_options_are_usage_errors():
    good = np.random.default_rng(0).random((10, 4))
    with pytest.raises(UsageError, match="permutations must be an integer >= 1"):
        mmd_test(good, good, permutations=0)
    with pytest.raises(UsageError, match="max_rows"):
        mmd_test(good, good, max_rows=1)
    with pytest.raises(UsageError, match="max_rows"):
        domain_classifier_test(good, good, max_rows=0)
    with pytest.raises(UsageError, match="at least 4 rows on each side"):
        linear_mmd_test(good, good[:3])
