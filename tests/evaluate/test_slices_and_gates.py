import numpy as np
import pandas as pd
import pytest

from amploop.config import GateRuleConfig
from amploop.data import load_builtin
from amploop.errors import ConfigError
from amploop.evaluate.gates import GATE_METRICS, apply_gate
from amploop.evaluate.slices import discover_slices, evaluate_slices


@pytest.fixture(scope="module")
def adult_test():
    return load_builtin("adult").split("test")


def test_declared_slices_with_intervals_and_too_small_groups(adult_test):
    rng = np.random.default_rng(0)
    correct = rng.random(adult_test.n_rows) < 0.85
    women = (adult_test.table["sex"] == "Female").to_numpy()
    correct[women] &= rng.random(women.sum()) < 0.9  # women's accuracy about 0.765
    report = evaluate_slices(adult_test.table, slice_columns=["sex", "race"], correct=correct, min_slice_size=200)
    by_value = {(s.column, s.value): s for s in report.slices}
    female = by_value[("sex", "Female")]
    assert female.count == int(women.sum()) and female.lower < female.metric < female.upper
    assert female.metric == pytest.approx(correct[women].mean())
    assert female.upper - female.lower < 0.03  # about 4 standard errors at n = 5,421
    other = by_value[("race", "Other")]  # 135 rows < 200
    assert other.too_small and other.metric is None and other.lower is None
    assert report.worst.value == "Female"
    assert report.worst_gap == pytest.approx(correct.mean() - female.metric)


def test_numeric_slice_columns_become_bands(adult_test):
    report = evaluate_slices(adult_test.table, slice_columns=["age"], correct=np.ones(adult_test.n_rows, bool))
    values = [s.value for s in report.slices]
    assert len(values) == 5 and values[0].startswith("[17, ") and values[-1].endswith(", 90]")
    assert sum(s.count for s in report.slices) == adult_test.n_rows


def test_discovery_finds_a_planted_weak_slice_and_nothing_on_uniform_errors(adult_test):
    rng = np.random.default_rng(2)
    table = adult_test.table
    errors = rng.random(len(table)) < 0.1
    planted = ((table["education"] == "Bachelors") & (table["sex"] == "Female")).to_numpy()
    errors[planted] = rng.random(planted.sum()) < 0.5
    found = discover_slices(table, errors, columns=[c for c in table.columns if c != "income"])
    assert found and set(found[0].conditions) == {"education = Bachelors", "sex = Female"}
    assert found[0].size == int(planted.sum()) and found[0].p_value < 1e-10
    uniform = rng.random(len(table)) < 0.1
    assert discover_slices(table, uniform, columns=[c for c in table.columns if c != "income"]) == []


def test_regression_slices_report_mae():
    table = pd.DataFrame({"g": ["a"] * 50 + ["b"] * 50})
    errors = np.concatenate([np.full(50, 1.0), np.full(50, 3.0)])
    report = evaluate_slices(table, slice_columns=["g"], abs_errors=errors)
    assert report.metric == "mae" and report.worst.value == "b" and report.worst_gap == pytest.approx(1.0)


def test_gate_verdict_rules_and_skips():
    verdict = apply_gate(
        [{"metric": "accuracy", "min": 0.84}, {"metric": "champion_delta", "min": -0.005}],
        {"accuracy": 0.80, "champion_delta": None},
        {"champion_delta": "no champion yet"},
    )
    assert not verdict.passed
    assert [(r.outcome, r.reason) for r in verdict.rules] == [
        ("fail", "accuracy = 0.8000 misses >= 0.84"),
        ("skipped", "no champion yet"),
    ]
    assert [r.metric for r in verdict.failed_rules()] == ["accuracy"]
    assert [r.metric for r in verdict.skipped_rules()] == ["champion_delta"]
    assert verdict.values == {"accuracy": 0.80, "champion_delta": None}
    assert verdict.to_dict() == {
        "passed": False,
        "verdict": "fail",
        "rules": [r.to_dict() for r in verdict.rules],
        "values": {"accuracy": 0.80, "champion_delta": None},
        "intervals": {},
        "confidence_level": 0.95,
    }
    assert [(r.judged_on, r.lower, r.upper) for r in verdict.rules] == [("value", None, None), ("none", None, None)]


def test_gate_rules_as_config_models_judge_as_dicts_do():
    rules = [{"metric": "ece", "max": 0.05}, {"metric": "accuracy", "min": 0.9}]
    values = {"ece": 0.04, "accuracy": 0.85}
    typed = apply_gate([GateRuleConfig(**r) for r in rules], values)
    assert typed == apply_gate(rules, values) and typed.verdict == "fail"


def test_unknown_gate_metric_lists_the_valid_ones():
    with pytest.raises(ConfigError) as info:
        apply_gate([{"metric": "acuracy", "min": 0.8}], {})
    assert "unknown gate metric 'acuracy'" in info.value.message
    assert ", ".join(GATE_METRICS) in info.value.message
