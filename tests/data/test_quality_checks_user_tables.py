"""The quality check on a user's own small tables: what users ran into, each pinned by a test.

Near-copies of the label, card numbers stored as plain digits, duplicate rows across the split that
training makes, label issues next to many-valued text columns, outliers on sparse and discrete
columns, the two row sets behind --exclude-*, the short summary training prints, and `data check`
without a target. Odd tables (numeric only, text only, all-missing or constant columns, 2 to 10
classes, 100 to 100,000 rows) give a report, never a traceback.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from amploop.data import Dataset, open_dataset
from amploop.data.quality import check_quality, luhn_valid
from amploop.data.splits import prepare_splits

AMPLOOP = str(Path(sys.executable).with_name("amploop"))


def by_check(report, check):
    return [f for f in report.findings if f.check == check]


def card_numbers(count: int, rng: np.random.Generator) -> list[int]:
    """Luhn-valid 16-digit numbers starting with 4 (test numbers, not anyone's card)."""
    numbers: list[int] = []
    while len(numbers) < count:
        text = "4" + "".join(map(str, rng.integers(0, 10, 15)))
        if luhn_valid(text):
            numbers.append(int(text))
    return numbers


# -- 1. target leakage: a near-copy of the label ---------------------------------------------------


@pytest.mark.parametrize("classes", [2, 10])
def test_a_label_plus_small_noise_blocks_and_an_honest_feature_does_not(classes):
    rng = np.random.default_rng(classes)
    n = 1500
    y = rng.integers(0, classes, n)
    table = pd.DataFrame(
        {
            "honest": y + rng.normal(0, 0.8, n),  # informative, far from perfect
            "noise": rng.normal(size=n),
            "near_copy": y + rng.normal(0, 0.05, n),  # the label, thinly disguised
            "y": y,
        }
    )
    report = check_quality(Dataset.from_table("near", table, target="y"), label_issues=False)
    leaks = by_check(report, "target_leakage")
    assert [(f.columns, f.severity) for f in leaks] == [(["near_copy"], "block")]
    assert leaks[0].details["metric"] == "balanced_accuracy" and leaks[0].details["score"] >= 0.99


def test_a_noisy_copy_of_a_regression_target_blocks():
    rng = np.random.default_rng(3)
    n = 1000
    x = rng.normal(size=n)
    price = 3 * x + rng.normal(0, 1, n)
    table = pd.DataFrame({"x": x, "price_again": price + rng.normal(0, 0.02, n), "price": price})
    dataset = Dataset.from_table("houses", table, target="price")
    assert dataset.task == "regression"
    report = check_quality(dataset)
    [leak] = by_check(report, "target_leakage")
    assert leak.columns == ["price_again"] and leak.severity == "block" and leak.details["metric"] == "r2"
    assert "label_issues" in report.skipped_checks and "class_imbalance" in report.skipped_checks


def test_a_recoded_label_is_an_exact_copy():
    rng = np.random.default_rng(4)
    y = rng.integers(0, 3, 400)
    table = pd.DataFrame({"x": rng.normal(size=400), "grade": np.array(["low", "mid", "high"])[y], "y": y})
    [leak] = by_check(
        check_quality(Dataset.from_table("copy", table, target="y"), label_issues=False), "target_leakage"
    )
    assert leak.columns == ["grade"] and leak.details["kind"] == "exact copy" and leak.severity == "block"


# -- 2. personal data in numeric columns -------------------------------------------------------------


def test_card_numbers_stored_as_digits_in_a_numeric_column_block(tmp_path):
    rng = np.random.default_rng(0)
    n = 300
    table = pd.DataFrame({"card": card_numbers(n, rng), "x": rng.normal(size=n), "y": rng.integers(0, 2, n)})
    path = tmp_path / "payments.csv"
    table.to_csv(path, index=False)
    dataset = open_dataset(str(path), target="y")
    assert dataset.schema.columns[0].kind == "numeric"  # read as numbers, so the text scan never saw them
    report = check_quality(dataset, label_issues=False)
    [found] = by_check(report, "personal_data")
    assert (found.severity, found.columns, found.count) == ("block", ["card"], n)
    assert found.details["kind"] == "payment card numbers (Luhn-valid)"
    assert str(table["card"][0]) not in json.dumps(report.to_dict())  # counts and column names only


def test_prices_and_long_numbers_failing_luhn_are_not_card_numbers():
    rng = np.random.default_rng(1)
    n = 300
    long_numbers = []
    while len(long_numbers) < n:  # 16 digits, every one failing the Luhn check
        number = int(rng.integers(10**15, 10**16 - 1))
        if not luhn_valid(str(number)):
            long_numbers.append(number)
    table = pd.DataFrame(
        {
            "price_cents": rng.integers(100_000, 99_999_999, n),  # up to 8 digits: a quantity
            "listed_at": rng.integers(1_600_000_000, 1_750_000_000, n),  # Unix seconds: 10 digits, no identifier
            "reference": long_numbers,
            "y": rng.integers(0, 2, n),
        }
    )
    found = by_check(check_quality(Dataset.from_table("shop", table, target="y"), label_issues=False), "personal_data")
    assert [(f.columns, f.severity) for f in found] == [(["reference"], "warn")]
    assert "card" not in found[0].details["kind"] and "identifier-like" in found[0].details["kind"]


# -- 3. duplicates crossing the split that training makes --------------------------------------------


def duplicated_table(n: int = 600, copies: int = 60, seed: int = 0) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    table = pd.DataFrame({"a": rng.normal(size=n), "b": rng.normal(size=n), "y": rng.integers(0, 2, n)})
    table.iloc[n - copies :, :2] = table.iloc[:copies, :2].to_numpy()  # same features; labels as drawn
    return table


def test_duplicates_across_the_split_training_makes_are_reported():
    dataset = Dataset.from_table("dups", duplicated_table(), target="y")
    report = check_quality(dataset, label_issues=False, validation_fraction=0.1, test_fraction=0.2, split_seed=7)
    found = {f.details["split"]: f for f in by_check(report, "split_leakage")}
    # the same split, made the way training makes it, and compared independently
    plan = prepare_splits(dataset, validation_fraction=0.1, test_fraction=0.2, seed=7)
    for part in ("test", "validation"):
        held = getattr(plan, part).table
        merged = held.reset_index().merge(plan.train.table, on=["a", "b"], suffixes=("", "_train"))
        crossing = merged["index"].nunique()
        conflicting = merged.groupby("index").apply(lambda g: not (g["y"] == g["y_train"]).any()).sum()
        assert crossing > 0
        finding = found[f"train/{part}"]
        assert finding.severity == "warn" and finding.count == crossing
        assert finding.details["conflicting_labels"] == conflicting
        assert set(finding.rows) <= set(range(dataset.n_rows))
    assert report.blocking == [] and "split_leakage" in report.checks


def test_no_split_leakage_check_without_the_split_or_with_the_datasets_own():
    table = duplicated_table()
    report = check_quality(Dataset.from_table("dups", table, target="y"), label_issues=False)
    assert by_check(report, "split_leakage") == [] and "split_leakage" not in report.checks
    own = Dataset.from_table("own", table, target="y", splits={"train": np.arange(300), "test": np.arange(300, 600)})
    report = check_quality(own, label_issues=False, validation_fraction=0.1, test_fraction=0.2)
    assert all(not f.details.get("generated_split") for f in by_check(report, "split_leakage"))


def test_split_leakage_rows_of_a_datasets_own_split_are_positions_in_the_dataset():
    table = duplicated_table(copies=0)
    table.iloc[590:600] = table.iloc[0:10].to_numpy()  # the last ten test rows copy training rows
    own = Dataset.from_table("own", table, target="y", splits={"train": np.arange(300), "test": np.arange(300, 600)})
    [exact] = [
        f for f in by_check(check_quality(own, label_issues=False), "split_leakage") if f.details["kind"] == "exact"
    ]
    assert exact.rows == list(range(590, 600))


# -- 4. label issues beside a 1,000-value text column, 10 classes -------------------------------------


def test_label_issues_are_found_beside_thousand_value_text_columns():
    from sklearn.datasets import load_digits

    digits = load_digits()
    rng = np.random.default_rng(0)
    n = len(digits.target)
    table = pd.DataFrame(digits.data, columns=[f"pixel_{i}" for i in range(64)])
    table["city"] = rng.choice([f"city-{i}" for i in range(1000)], n)
    table["customer_id"] = [f"C{i:06d}" for i in range(n)]
    labels = digits.target.copy()
    flipped = rng.choice(n, 90, replace=False)
    labels[flipped] = (labels[flipped] + rng.integers(1, 10, 90)) % 10
    table["digit"] = labels
    report = check_quality(Dataset.from_table("digits", table, target="digit"))
    found = set(report.label_issue_rows)
    hits = len(found & set(flipped.tolist()))
    assert hits / 90 >= 0.85 and hits / len(found) >= 0.8  # recall and precision


# -- 5. outliers on sparse, binary and discrete columns ----------------------------------------------


def sparse_and_discrete_table(n: int = 3000, seed: int = 0) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    return pd.DataFrame(
        {
            "sparse": np.where(rng.random(n) < 0.9, 0.0, rng.exponential(100, n)),  # 0 in 90% of rows
            "mostly_zero": np.where(rng.random(n) < 0.45, 0.0, rng.exponential(100, n)),
            "flag": (rng.random(n) < 0.3).astype(int),
            "rating": rng.choice([1, 2, 3, 4, 5], n, p=[0.02, 0.03, 0.05, 0.2, 0.7]),
            "level": rng.choice([0, 1, 10, 100, 1000], n, p=[0.3, 0.3, 0.2, 0.15, 0.05]),
            "hours": np.where(rng.random(n) < 0.48, 40, rng.integers(1, 99, n)),  # a spike at 40
            "near_binary": (rng.random(n) < 0.5) + rng.normal(0, 1e-3, n),
            "normal": rng.normal(size=n),
            "y": rng.integers(0, 2, n),
        }
    )


def test_clean_sparse_binary_and_discrete_columns_raise_almost_no_outliers():
    table = sparse_and_discrete_table()
    report = check_quality(Dataset.from_table("clean", table, target="y"), label_issues=False)
    assert len(report.outlier_rows) / len(table) <= 0.005


@pytest.mark.parametrize(
    ("column", "value"),
    [("normal", 40.0), ("sparse", 1e6), ("flag", 7), ("rating", -999), ("hours", 5000)],
)
def test_planted_extreme_values_are_still_flagged(column, value):
    table = sparse_and_discrete_table()
    clean = set(check_quality(Dataset.from_table("clean", table, target="y"), label_issues=False).outlier_rows)
    planted = [10, 500, 1200, 2999]
    table[column] = table[column].astype(float)
    table.loc[planted, column] = value
    report = check_quality(Dataset.from_table("planted", table, target="y"), label_issues=False)
    assert set(planted) <= set(report.outlier_rows) and set(report.outlier_rows) - set(planted) <= clean
    [finding] = by_check(report, "outliers")
    assert column in finding.columns


# -- 6. the two row sets behind --exclude-label-issues and --exclude-outliers -----------------------


def test_the_report_exposes_label_issue_rows_and_outlier_rows_apart():
    rng = np.random.default_rng(2)
    n = 2000
    x1, x2 = rng.normal(size=n), rng.normal(size=n)
    y = (x1 + 0.5 * x2 > 0).astype(int)
    flipped = rng.choice(np.arange(100, n), 60, replace=False)
    y[flipped] = 1 - y[flipped]
    x2[:5] = 50.0  # outliers in the first five rows
    report = check_quality(Dataset.from_table("both", pd.DataFrame({"x1": x1, "x2": x2, "y": y}), target="y"))
    assert report.outlier_rows == [0, 1, 2, 3, 4]
    assert report.label_issue_rows == sorted(report.label_issue_rows)
    assert len(set(report.label_issue_rows) & set(flipped.tolist())) >= 45
    assert all(type(row) is int for row in report.label_issue_rows + report.outlier_rows)
    assert set(report.label_issue_rows) | set(report.outlier_rows) == {r.row for r in report.suspicious_rows}


# -- 7. the short summary training prints -----------------------------------------------------------


def test_summary_lines_put_personal_data_split_duplicates_and_imbalance_first():
    rng = np.random.default_rng(5)
    n = 1100
    table = pd.DataFrame(
        {
            "account": rng.integers(10**10, 10**11, n),  # 11-digit account numbers: identifier-like, a warning
            "a": rng.normal(size=n),
            "b": rng.normal(size=n),
            "note": np.where(rng.random(n) < 0.3, None, "ok"),  # missing in 30%: a warning
            "y": np.where(np.arange(n) < 1000, "common", "rare"),  # 1:10
        }
    )
    table.iloc[1000:1100, :4] = table.iloc[:100, :4].to_numpy()  # duplicated features, other label
    dataset = Dataset.from_table("mixed", table, target="y")
    report = check_quality(dataset, label_issues=False, validation_fraction=0.1, test_fraction=0.2)
    lines = report.summary_lines(limit=3)
    assert [line.split(":")[0] for line in lines[:3]] == [
        "warn personal_data",
        "warn split_leakage",
        "warn split_leakage",
    ]
    non_blocking = [f for f in report.findings if f.severity != "block"]
    assert lines[3] == f"… and {len(non_blocking) - 3} more; run amploop data check for all"
    everything = report.summary_lines(limit=100)
    assert len(everything) == len(non_blocking)
    assert any(line.startswith("warn class_imbalance:") for line in everything)
    assert everything.index(next(x for x in everything if x.startswith("warn class_imbalance"))) < everything.index(
        next(x for x in everything if x.startswith("warn missing_values"))
    )
    assert all(line.startswith("warn") for line in everything[: report.counts()["warn"]])


# -- 8. `data check` without a target -----------------------------------------------------------------


def run(home: Path, *args: str) -> subprocess.CompletedProcess:
    env = {k: v for k, v in os.environ.items() if not k.startswith("AMPLOOP_")}
    env.update({"AMPLOOP_HOME": str(home), "COLUMNS": "200"})
    return subprocess.run([AMPLOOP, *args], capture_output=True, text=True, env=env, cwd=home.parent, timeout=300)


def test_data_check_without_a_target_says_what_it_skipped(tmp_path):
    rng = np.random.default_rng(0)
    table = pd.DataFrame({"a": rng.normal(size=300), "b": rng.integers(0, 3, 300)})
    table.loc[:2, "a"] = 80.0
    path = tmp_path / "features.csv"
    table.to_csv(path, index=False)
    shown = run(tmp_path / "h", "data", "check", str(path))
    assert shown.returncode == 0, shown.stderr
    assert (
        "no target column: skipped label issues, target leakage, class imbalance; pass --target COLUMN" in shown.stdout
    )
    assert "row (0-based)" in shown.stdout
    as_json = run(tmp_path / "h", "data", "check", str(path), "--json")
    report = json.loads(as_json.stdout)
    assert set(report["skipped_checks"]) == {"label_issues", "target_leakage", "class_imbalance"}
    assert "label_issues" not in report["checks"] and "outliers" in report["checks"]


# -- odd tables: a report, never a traceback ---------------------------------------------------------


def odd_table(kind: str, rng: np.random.Generator) -> tuple[pd.DataFrame, str | None]:
    n = 100 if kind == "hundred_rows" else 1000
    y = rng.integers(0, 10 if kind == "ten_classes" else 2, n)
    numbers = {"a": rng.normal(size=n) + y, "b": rng.integers(0, 5, n)}
    texts = {
        "colour": rng.choice(["red", "green", "blue"], n),
        "id": [f"ID{i:05d}-{rng.integers(1_000_000)}" for i in range(n)],
    }
    tables = {
        "numeric_only": {**numbers, "y": y},
        "categorical_only": {**texts, "y": np.where(y % 2 == 1, "yes", "no")},
        "many_valued_text": {**numbers, "note": [f"free text {i}" for i in rng.integers(0, 5000, n)], "y": y},
        "ten_classes": {**numbers, **texts, "y": y},
        "hundred_rows": {**numbers, "y": y},
        "all_missing_column": {**numbers, "nothing": np.full(n, np.nan), "y": y},
        "constant_column": {**numbers, "same": np.full(n, 3.0), "y": y},
        "no_target": {**numbers, **texts},
    }
    return pd.DataFrame(tables[kind]), None if kind == "no_target" else "y"


@pytest.mark.parametrize(
    "kind",
    [
        "numeric_only",
        "categorical_only",
        "many_valued_text",
        "ten_classes",
        "hundred_rows",
        "all_missing_column",
        "constant_column",
        "no_target",
    ],
)
def test_odd_tables_give_a_report(kind):
    table, target = odd_table(kind, np.random.default_rng(0))
    dataset = Dataset.from_table(kind, table, target=target)
    report = check_quality(dataset, validation_fraction=0.1, test_fraction=0.2)
    assert report.dataset["rows"] == len(table)
    assert isinstance(report.summary_lines(), list) and json.dumps(report.to_dict())
    if kind == "all_missing_column":
        assert [f.columns for f in report.blocking] == [["nothing"]]
    if kind == "constant_column":
        assert ["same"] in [f.columns for f in by_check(report, "constant_column")]


def test_a_hundred_thousand_rows_give_a_report():
    rng = np.random.default_rng(0)
    n = 100_000
    x = rng.normal(size=(n, 6))
    table = pd.DataFrame(x, columns=[f"x{i}" for i in range(6)])
    table["y"] = np.argmax(x[:, :3] + rng.normal(0, 0.5, (n, 3)), axis=1)
    report = check_quality(Dataset.from_table("big", table, target="y"), validation_fraction=0.1, test_fraction=0.2)
    assert report.blocking == [] and "label_issues" in report.checks and "target_leakage" in report.checks
