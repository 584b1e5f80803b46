"""Each check finds the problem planted for it; clean seeded data raises no warning."""

import numpy as np
import pandas as pd
import pytest

from amploop.data import Dataset, load_builtin
from amploop.data.quality import average_hash, check_quality, find_label_issues, luhn_valid


def clean_table(n: int = 2000, seed: int = 0) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    x1, x2 = rng.normal(size=n), rng.normal(size=n)
    group = rng.choice(["north", "south", "east", "west"], size=n)
    y = (x1 + 0.5 * x2 + rng.normal(0, 0.05, n) > 0).astype(int)  # labels almost fully determined
    return pd.DataFrame({"x1": x1, "x2": x2, "region": group, "y": y})


def dataset(table: pd.DataFrame, **kwargs) -> Dataset:
    return Dataset.from_table("planted", table, target="y", **kwargs)


def checks(report, severity=None):
    return {f.check for f in report.findings if severity is None or f.severity == severity}


def test_clean_seeded_data_raises_no_warning_or_block():
    report = check_quality(dataset(clean_table()), slice_columns=["region"])
    assert [f for f in report.findings if f.severity in ("warn", "block")] == []


def test_duplicates_across_splits_are_found():
    train = clean_table(seed=1)
    test = clean_table(500, seed=2)
    test.iloc[:60] = train.iloc[100:160].to_numpy()  # 12% of the test rows copied from training
    report = check_quality(dataset(test), against=dataset(train))
    leak = next(f for f in report.findings if f.check == "split_leakage" and f.details["kind"] == "exact")
    assert leak.severity == "block" and leak.count == 60 and leak.rows[:3] == [0, 1, 2]


def test_near_duplicates_across_splits_are_found():
    train = clean_table(seed=1)
    test = clean_table(500, seed=2)
    copied = train.iloc[:40].copy()
    copied["x1"] = copied["x1"] * (1 + 1e-4)  # not equal, but equal to 3 significant digits
    copied["region"] = copied["region"].str.upper() + " "
    test.iloc[:40] = copied.to_numpy()
    report = check_quality(dataset(test), against=dataset(train))
    near = next(f for f in report.findings if f.check == "split_leakage" and f.details["kind"] == "near")
    assert near.count >= 38 and near.severity == "block"


def test_perceptual_hash_finds_an_image_and_its_slightly_brighter_copy():
    mnist = load_builtin("mnist5k").arrays["image"]
    dimmer = mnist[:50].astype(np.float64) * 0.8 + 5  # same picture, other exposure
    assert np.array_equal(average_hash(mnist[:50]), average_hash(dimmer))
    assert len(set(average_hash(mnist).tolist())) > 4500  # distinct digits rarely collide


def test_a_leaking_feature_blocks():
    table = clean_table()
    table["approved_flag"] = table["y"].map({0: "no", 1: "yes"})
    report = check_quality(dataset(table))
    leak = next(f for f in report.findings if f.check == "target_leakage")
    assert leak.severity == "block" and leak.columns == ["approved_flag"]
    assert {f.columns[0] for f in report.findings if f.check == "target_leakage"} == {"approved_flag"}


@pytest.mark.parametrize(
    ("value", "kind", "severity"),
    [
        ("contact me at jane.doe@example.org", "e-mail addresses", "warn"),
        ("card 4111 1111 1111 1111 on file", "payment card numbers (Luhn-valid)", "block"),
        ("GB82 WEST 1234 5698 7654 32", "IBANs (checksum-valid)", "block"),
        ("ssn 078-05-1120", "national ID numbers (US SSN format)", "block"),
        ("from 192.168.10.25", "IP addresses", "warn"),
        ("call +1 415 555 2671", "phone numbers", "warn"),
    ],
)
def test_personal_data_is_counted_never_shown(value, kind, severity):
    table = clean_table(200)
    table["note"] = "nothing here"
    table.loc[:9, "note"] = value
    report = check_quality(dataset(table), label_issues=False)
    found = [f for f in report.findings if f.check == "personal_data"]
    assert [(f.details["kind"], f.severity, f.count, f.columns) for f in found] == [(kind, severity, 10, ["note"])]
    assert value not in str(report.to_dict())  # counts and column names only


def test_card_numbers_failing_luhn_are_not_flagged():
    assert not luhn_valid("4111 1111 1111 1112")
    table = clean_table(200)
    table["ref"] = "order 4111 1111 1111 1112"
    assert "personal_data" not in checks(check_quality(dataset(table), label_issues=False))


def test_label_flips_are_found_by_confident_learning():
    table = clean_table(3000)
    rng = np.random.default_rng(5)
    flipped = rng.choice(len(table), 150, replace=False)
    table.loc[flipped, "y"] = 1 - table.loc[flipped, "y"]
    report = check_quality(dataset(table))
    issue = next(f for f in report.findings if f.check == "label_issues")
    flagged = {r.row for r in report.suspicious_rows if "label issue" in r.reasons}
    assert issue.count == len(flagged)
    hits = len(flagged & set(flipped.tolist()))
    assert hits / 150 > 0.8 and hits / len(flagged) > 0.7  # recall and precision


def test_confident_joint_by_hand():
    labels = np.array([0, 0, 1, 1])
    p = np.array([[0.9, 0.1], [0.2, 0.8], [0.1, 0.9], [0.6, 0.4]])
    # thresholds: class 0 = mean(0.9, 0.2) = 0.55, class 1 = mean(0.9, 0.4) = 0.65
    flagged, confidence = find_label_issues(labels, p)
    assert flagged.tolist() == [False, True, False, True]
    assert confidence.tolist() == [0.9, 0.2, 0.9, 0.4]


def test_imbalance_and_an_outlier_cluster():
    table = clean_table(3000)
    table["y"] = 0
    table.loc[:99, "y"] = 1  # 1 : 29
    table.loc[200:239, "x1"] = 40.0  # a tight cluster far from everything
    report = check_quality(dataset(table), label_issues=False)
    assert "class_imbalance" in checks(report, "warn")
    outliers = next(f for f in report.findings if f.check == "outliers")
    assert outliers.count == 40 and set(outliers.rows) == set(range(200, 240)) and outliers.columns == ["x1"]
    assert {r.row for r in report.suspicious_rows} == set(range(200, 240))


def test_missing_constant_duplicates_and_rare_slices():
    table = clean_table(1000)
    table.loc[:299, "x2"] = np.nan  # 30% missing
    table["source"] = "web"
    table.iloc[500:520] = table.iloc[0:20].to_numpy()
    table.loc[900:904, "region"] = "island"  # 0.5% of rows
    report = check_quality(dataset(table), slice_columns=["region"], label_issues=False)
    warned = {(f.check, tuple(f.columns)) for f in report.findings if f.severity == "warn"}
    assert ("missing_values", ("x2",)) in warned and ("constant_column", ("source",)) in warned
    assert ("duplicate_rows", ()) in warned and ("slice_representation", ("region",)) in warned


def test_the_full_report_on_adult_runs_every_check():
    report = check_quality(load_builtin("adult"), slice_columns=["sex", "race"])
    assert set(report.checks) >= {"split_leakage", "label_issues", "target_leakage", "personal_data"}
    assert report.blocking == []
