"""Per-column drift from profiles: agreement with scipy, merging, power, and the false-alarm rate."""

import numpy as np
import pandas as pd
import pytest
from scipy import stats
from scipy.spatial import distance

from amploop.errors import UsageError
from amploop.monitor.profile import Profile
from amploop.monitor.univariate import (
    chi_square_from_counts,
    compare_profiles,
    jensen_shannon_from_counts,
    psi_from_counts,
)

KINDS = {"dose": "numeric", "score": "numeric", "city": "categorical", "plan": "categorical"}


def table(n: int, seed: int, *, dose_shift: float = 0.0, city_p=(0.5, 0.3, 0.2)) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    return pd.DataFrame(
        {
            "dose": rng.normal(10 + dose_shift, 2, n),
            "score": rng.integers(0, 40, n).astype(float),  # 40 distinct values: a bin each
            "city": rng.choice(["oslo", "lima", "pune"], n, p=list(city_p)),
            "plan": rng.choice(["free", "pro"], n),
            "customer_id": [f"c-{seed}-{i}" for i in range(n)],
        }
    )


def approx_tree(value):
    """``value`` with every float compared to 1e-9 (relative), through dicts and lists."""
    if isinstance(value, dict):
        return {k: approx_tree(v) for k, v in value.items()}
    if isinstance(value, list):
        return [approx_tree(v) for v in value]
    if isinstance(value, float):
        return pytest.approx(value, rel=1e-9, abs=1e-12)
    return value


def test_binned_statistics_equal_scipys_when_every_value_has_its_own_bin():
    rng = np.random.default_rng(1)
    ref = rng.integers(0, 30, 4000).astype(float)
    cur = rng.integers(2, 30, 700).astype(float)  # the same values, other shares
    reference = Profile.from_table(pd.DataFrame({"x": ref}), {"x": "numeric"})
    current = reference.empty().add(pd.DataFrame({"x": cur}))
    column = compare_profiles(reference, current, method="ks").columns[0]
    exact = stats.ks_2samp(ref, cur, method="asymp")
    assert column.statistic == pytest.approx(exact.statistic, abs=1e-9)
    assert column.p_value == pytest.approx(exact.pvalue, abs=1e-9)
    expected_w = stats.wasserstein_distance(ref, cur) / np.std(ref)
    assert column.wasserstein == pytest.approx(expected_w, abs=1e-9)
    ref_counts = np.bincount(ref.astype(int), minlength=31)
    cur_counts = np.bincount(cur.astype(int), minlength=31)
    assert column.jensen_shannon == pytest.approx(
        distance.jensenshannon(ref_counts / ref_counts.sum(), cur_counts / cur_counts.sum()), abs=1e-9
    )


def test_chi_square_psi_and_jensen_shannon_from_counts_match_their_definitions():
    ref, cur = np.array([500, 300, 200]), np.array([40, 35, 25])
    statistic, p_value, dof = chi_square_from_counts(ref, cur)
    expected = stats.chi2_contingency(np.vstack([ref, cur]), correction=False)
    assert (statistic, p_value, dof) == pytest.approx((expected[0], expected[1], expected[2]), abs=1e-9)
    r, c = ref / ref.sum(), cur / cur.sum()
    assert psi_from_counts(ref, cur) == pytest.approx(np.sum((c - r) * np.log(c / r)), abs=1e-12)
    assert jensen_shannon_from_counts(ref, cur) == pytest.approx(distance.jensenshannon(r, c), abs=1e-12)
    # a category expected fewer than 5 times in the window is pooled with the other sparse ones
    _, _, pooled_dof = chi_square_from_counts(np.array([1000, 1000, 3, 2]), np.array([50, 50, 1, 0]))
    assert pooled_dof == 2


def test_ks_on_percentile_bins_is_within_one_bin_of_the_exact_statistic():
    rng = np.random.default_rng(2)
    ref, cur = rng.normal(0, 1, 20_000), rng.normal(0.15, 1.1, 800)
    reference = Profile.from_table(pd.DataFrame({"x": ref}), {"x": "numeric"})
    column = compare_profiles(reference, reference.empty().add(pd.DataFrame({"x": cur})), method="ks").columns[0]
    exact = stats.ks_2samp(ref, cur).statistic
    assert exact - 0.011 <= column.statistic <= exact + 1e-12  # the gap is read at the edges only


def test_two_halves_merged_give_the_same_report_as_the_whole():
    reference = Profile.from_table(table(5000, 0), KINDS)
    window = table(900, 1, dose_shift=0.5)
    whole = reference.empty().add(window)
    halves = reference.empty().add(window[:400]).merge(reference.empty().add(window[400:]))
    replicas = [reference.empty().add(window.iloc[i::3]) for i in range(3)]
    three = replicas[2].merge(replicas[0]).merge(replicas[1])  # any order
    expected = compare_profiles(reference, whole).to_dict()
    # counts add exactly; sums of floats added in another order differ in the last bits only
    assert compare_profiles(reference, halves).to_dict() == approx_tree(expected)
    assert compare_profiles(reference, three).to_dict() == approx_tree(expected)
    assert expected["drifted"] == ["dose"]
    stored, samples = Profile.from_bytes(whole.to_bytes({"probabilities": np.eye(3)}))
    assert compare_profiles(reference, stored).to_dict() == approx_tree(expected)
    assert np.array_equal(samples["probabilities"], np.eye(3))
    with pytest.raises(UsageError, match="same reference"):
        whole.merge(Profile.from_table(table(100, 3), {"dose": "numeric"}))


def test_planted_shifts_are_found_and_named():
    reference = Profile.from_table(table(5000, 0), KINDS)
    assert reference.skipped == {} and "customer_id" not in reference.columns
    shifted = table(500, 4, dose_shift=1.0, city_p=(0.2, 0.3, 0.5))
    report = compare_profiles(reference, reference.empty().add(shifted))
    assert report.drifted == ["dose", "city"]
    by_name = {c.column: c for c in report.columns}
    assert by_name["dose"].method == "ks" and by_name["city"].method == "chi_square"
    assert by_name["dose"].note.startswith("mean 9.99 → 11")
    assert "'oslo' 50.0% → " in by_name["city"].note or "'pune'" in by_name["city"].note
    # more missing values is drift by itself, even when the present values look the same
    holes = table(500, 5).assign(plan=lambda t: t["plan"].where(np.arange(500) % 4 != 0))
    missing = {c.column: c for c in compare_profiles(reference, reference.empty().add(holes)).columns}["plan"]
    assert missing.drifted and missing.note.startswith("missing values 0% → 25%")
    # values above anything the reference held fall in a bin of their own, so a constant reference still moves
    constant = Profile.from_table(pd.DataFrame({"v": [5.0] * 300}), {"v": "numeric"})
    moved = compare_profiles(constant, constant.empty().add(pd.DataFrame({"v": [5.0] * 50 + [7.0] * 50})))
    assert moved.drifted == ["v"] and moved.columns[0].wasserstein == 1.0


def test_large_windows_use_distances_with_thresholds_and_any_method_can_be_chosen():
    reference = Profile.from_table(table(20_000, 0), KINDS)
    big = reference.empty().add(table(5000, 6, dose_shift=0.05))  # significant at this size, but tiny
    auto = {c.column: c for c in compare_profiles(reference, big).columns}
    assert auto["dose"].method == "wasserstein" and not auto["dose"].drifted
    assert auto["city"].method == "jensen_shannon" and auto["city"].p_value is None
    forced = {c.column: c for c in compare_profiles(reference, big, method="ks", methods={"city": "psi"}).columns}
    assert forced["dose"].method == "ks" and forced["city"].method == "psi"
    with pytest.raises(UsageError, match="method 'kolmogorov' for column 'dose'"):
        compare_profiles(reference, big, methods={"dose": "kolmogorov"})
    with pytest.raises(UsageError, match="categorical; ks compares numbers"):
        compare_profiles(reference, big, methods={"city": "ks"})
    with pytest.raises(UsageError, match="correction"):
        compare_profiles(reference, big, correction="holm")


def test_benjamini_hochberg_and_bonferroni_adjust_as_defined():
    reference = Profile.from_table(table(3000, 0), KINDS)
    window = reference.empty().add(table(300, 8, dose_shift=0.3))
    raw = [c.p_value for c in compare_profiles(reference, window, correction="none").columns]
    bonferroni = [c.adjusted_p_value for c in compare_profiles(reference, window, correction="bonferroni").columns]
    bh = [c.adjusted_p_value for c in compare_profiles(reference, window, correction="bh").columns]
    m = len(raw)
    assert bonferroni == pytest.approx([min(1.0, p * m) for p in raw])
    order = np.argsort(raw)
    expected = np.minimum.accumulate((np.array(raw)[order] * m / np.arange(1, m + 1))[::-1])[::-1]
    assert np.array(bh)[order] == pytest.approx(np.minimum(expected, 1.0))


def test_windows_without_shift_alarm_no_more_often_than_alpha():
    """400 seeded windows from the reference's own distribution: any column drifted in at most ~alpha of them."""
    reference = Profile.from_table(table(20_000, 0), KINDS)
    alarms_bh = alarms_none = 0
    windows = 400
    for seed in range(1, windows + 1):
        window = reference.empty().add(table(300, 1000 + seed))
        alarms_bh += bool(compare_profiles(reference, window, alpha=0.05).drifted)
        alarms_none += bool(compare_profiles(reference, window, alpha=0.05, correction="none").drifted)
    margin = 3 * np.sqrt(0.05 * 0.95 / windows)  # three binomial standard errors: 0.033
    assert alarms_bh / windows <= 0.05 + margin
    # without the correction four columns alarm far more often: the test would notice a lost correction
    assert alarms_none > alarms_bh and alarms_none / windows > 0.1
