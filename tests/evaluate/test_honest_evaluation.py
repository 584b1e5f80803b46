"""Calibration that never hurts, a default gate that judges with intervals and a floor, on seeded data.

The models here are real: trained by ``fit``, or a user's own ``nn.Module`` holding known
weights (a perfectly calibrated logistic model, a model that always answers the majority
class), registered as the ``custom`` architecture and evaluated through the one inference path.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import torch
from torch import nn

from amploop.config import AmploopConfig, DataConfig, EvaluateConfig, TrainConfig
from amploop.data import Dataset
from amploop.evaluate import (
    DEFAULT_GATE,
    apply_gate,
    bootstrap_intervals,
    classification_baselines,
    decide_temperature,
    evaluate_model,
    fit_temperature,
    regression_baselines,
    softmax,
)
from amploop.evaluate import metrics as plain
from amploop.evaluate.bootstrap import classification_statistics, regression_statistics
from amploop.evaluate.calibration import expected_calibration_error, max_calibration_error
from amploop.train.fit import bundle_from_fit, fit

# -- calibration that never hurts ------------------------------------------------------------------


def _labelled_logits(rows: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Logits and labels drawn from softmax(logits): these logits are calibrated."""
    rng = np.random.default_rng(seed)
    logits = rng.normal(0, 2, size=(rows, 3))
    labels = np.array([rng.choice(3, p=row) for row in softmax(logits)])
    return logits, labels


def test_a_tiny_validation_split_keeps_temperature_one():
    logits, labels = _labelled_logits(46, seed=0)
    # fitted on its 46 rows alone, a temperature for these 3x overconfident logits would be kept blindly
    decision = decide_temperature(logits * 3, labels)
    assert (decision.temperature, decision.kept, decision.rows, decision.folds) == (1.0, False, 46, 0)
    assert decision.reason == (
        "kept T = 1: 46 validation rows are fewer than the 200 needed to check scaling on held-out rows"
    )
    assert decision.to_dict()["fitted_temperature"] is None


def test_a_temperature_is_kept_when_it_helps_held_out_rows():
    logits, labels = _labelled_logits(1000, seed=1)
    decision = decide_temperature(logits * 3, labels)  # three times too sharp: scaling helps rows it never saw
    assert decision.kept and decision.temperature == decision.fitted_temperature
    assert 2.5 < decision.temperature < 3.5 and decision.folds_improved == 5
    assert decision.nll_after < 0.8 * decision.nll_before and decision.ece_after < decision.ece_before
    assert decision.reason.startswith(f"kept T = {decision.temperature:.3f}: held-out NLL ")


def test_a_temperature_is_dropped_when_it_does_not_help_held_out_rows():
    logits, labels = _labelled_logits(1000, seed=2)
    # already calibrated: a temperature fitted on some rows can only fit their noise
    decision = decide_temperature(logits, labels)
    assert not decision.kept and decision.temperature == 1.0
    assert decision.fitted_temperature is not None and decision.fitted_temperature != 1.0
    assert decision.nll_after >= decision.nll_before * (1 - 0.005)
    assert decision.reason.startswith(f"kept T = 1 (fitted {decision.fitted_temperature:.3f}): held-out NLL ")


def test_the_temperature_stays_in_its_range_on_separable_rows():
    # every row right and the margins wide: the NLL keeps falling as T -> 0 (T = 0.10 from 46 such rows)
    logits = np.array([[4.0, 0.0], [0.0, 4.0]] * 23)
    labels = np.array([0, 1] * 23)
    assert fit_temperature(logits, labels) == pytest.approx(0.5)


# -- the default gate --------------------------------------------------------------------------------


class KnownLogistic(nn.Module):
    """Logits (0, w . x) over the numeric inputs: with labels drawn from that model, perfectly calibrated."""

    def __init__(self, weights: list[float]) -> None:
        super().__init__()
        self.weight = nn.Parameter(torch.tensor(weights))

    def forward(self, inputs: dict[str, torch.Tensor]) -> torch.Tensor:
        score = inputs["numeric"] @ self.weight
        return torch.stack([torch.zeros_like(score), score], dim=1)


class AlwaysMajority(nn.Module):
    """Ignores its inputs and answers the log prior of a 51:1 table: always the majority class."""

    def __init__(self) -> None:
        super().__init__()
        self.bias = nn.Parameter(torch.tensor([np.log(51.0), 0.0], dtype=torch.float32))

    def forward(self, inputs: dict[str, torch.Tensor]) -> torch.Tensor:
        return self.bias.repeat(inputs["numeric"].shape[0], 1)


WEIGHTS = [1.5, -1.0, 0.5, 0.0]
UNTRAINED = AmploopConfig(train=TrainConfig(epochs=1, max_steps=1, learning_rate=1e-9, precision="fp32"))


def _logistic_table(rows: int, seed: int) -> Dataset:
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(rows, 4))
    probability = 1 / (1 + np.exp(-(x @ np.array(WEIGHTS))))
    table = pd.DataFrame(x, columns=["a", "b", "c", "d"])
    table["label"] = np.where(rng.random(rows) < probability, "yes", "no")
    return Dataset.from_table("logistic", table, target="label")


def _known_model(dataset: Dataset, module: nn.Module):
    """Register ``module`` with the weights it holds (one step at a learning rate of 1e-9 changes nothing)."""
    result = fit(dataset, UNTRAINED, model=module)
    return bundle_from_fit(result), result.splits


@pytest.fixture(scope="module")
def calibrated_on_114_rows():
    bundle, splits = _known_model(_logistic_table(570, seed=3), KnownLogistic(WEIGHTS))
    test = splits.test
    assert test.n_rows == 114
    report = evaluate_model(bundle, test, model={"name": "logistic", "version": 1}, module=KnownLogistic(WEIGHTS))
    return report


def test_a_decent_model_on_114_test_rows_passes_despite_noise(calibrated_on_114_rows):
    report = calibrated_on_114_rows
    rules = {r.metric: r for r in report.verdict.rules}
    # the model's probabilities are the true ones, yet 114 rows in 15 bins measure an ECE above 0.05
    ece = rules["ece"]
    assert ece.value == report.calibration.ece_after > 0.05
    assert ece.outcome == "pass" and ece.judged_on == "interval" and ece.lower <= 0.05
    assert "above <= 0.05, but within the interval, so not shown to miss it" in ece.reason
    assert report.passed
    # judged on the point values alone, as the gate did before, the same numbers fail
    assert not apply_gate(DEFAULT_GATE, report.values).passed
    assert [r.metric for r in apply_gate(DEFAULT_GATE, report.values).failed_rules()] == ["ece"]


def test_every_rule_lists_its_value_interval_threshold_outcome_and_reason(calibrated_on_114_rows):
    report = calibrated_on_114_rows
    assert [r["metric"] for r in DEFAULT_GATE] == [r.metric for r in report.verdict.rules]
    for rule in report.verdict.rules:
        if rule.outcome == "skipped":
            assert rule.metric == "champion_delta" and rule.reason.startswith("no champion")
            continue
        assert rule.value == report.values[rule.metric]
        assert (rule.lower, rule.upper) == report.intervals[rule.metric] and rule.lower <= rule.value <= rule.upper
        assert f"{rule.value:.4f} (95% interval {rule.lower:.4f} to {rule.upper:.4f})" in rule.reason
        assert f"{rule.comparison} {rule.threshold:g}" in rule.reason


def test_the_corruption_drop_is_a_rule_of_the_default_gate(calibrated_on_114_rows):
    report = calibrated_on_114_rows
    rule = next(r for r in report.verdict.rules if r.metric == "mild_corruption_drop")
    mild = [c for c in report.robustness.corruptions if c.mild]
    assert {(c.corruption, c.level) for c in mild} == {("feature_noise", 0.1), ("missing_values", 0.1)}
    assert rule.value == max(c.drop for c in mild) == report.robustness.largest_mild_drop
    assert rule.comparison == "<=" and rule.threshold == 0.10 and rule.judged_on == "interval"
    # a drop the suite's mildest level causes fails the gate when the whole interval is above the threshold
    fragile = apply_gate(
        [{"metric": "mild_corruption_drop", "max": 0.10}],
        {"mild_corruption_drop": 0.3},
        intervals={"mild_corruption_drop": (0.22, 0.38)},
    )
    assert not fragile.passed and fragile.rules[0].reason.endswith("even the interval's lower end does")


def test_a_majority_class_model_fails_the_default_gate():
    rng = np.random.default_rng(4)
    table = pd.DataFrame(rng.normal(size=(2600, 4)), columns=["a", "b", "c", "d"])
    table["label"] = np.where(np.arange(2600) % 52 == 0, "rare", "common")  # 1:51
    bundle, splits = _known_model(Dataset.from_table("skewed", table, target="label"), AlwaysMajority())
    report = evaluate_model(
        bundle, splits.test, model={"name": "skewed", "version": 1}, module=AlwaysMajority(), training_rows=splits.train
    )
    assert report.metrics["accuracy"] > 0.97 and report.metrics["balanced_accuracy"] == 0.5
    rules = {r.metric: r for r in report.verdict.rules}
    floor = rules["baseline_margin"]
    assert floor.value == 0.0 and floor.upper == 0.0 and floor.outcome == "fail"
    assert not report.passed and [r.metric for r in report.failed_rules()] == ["baseline_margin"]
    # everything else this model does is fine: the old default gate (ECE, parity, champion) passed it
    assert apply_gate(
        [{"metric": "ece", "max": 0.05}, {"metric": "parity_agreement", "min": 0.99}], report.values
    ).passed
    baselines = report.baselines
    assert baselines.skewed and baselines.best == "majority_class" and baselines.source == "training rows"
    assert [b.name for b in baselines.baselines] == ["majority_class", "prior"]
    assert baselines.baselines[0].metrics["accuracy"] == pytest.approx(report.metrics["accuracy"])


def test_user_rules_keep_working_on_intervals(calibrated_on_114_rows):
    report = calibrated_on_114_rows
    values, intervals = report.values, {k: report.intervals[k] for k in ("accuracy",)}
    accuracy = values["accuracy"]
    upper = intervals["accuracy"][1]
    # a minimum above the point value but inside the interval is not shown to be missed; one above the interval is
    inside = apply_gate([{"metric": "accuracy", "min": (accuracy + upper) / 2}], values, intervals=intervals)
    above = apply_gate([{"metric": "accuracy", "min": upper + 0.01}], values, intervals=intervals)
    assert inside.passed and not above.passed


# -- baselines and intervals, exactly -------------------------------------------------------------


def test_baselines_by_hand():
    y = np.array([0, 0, 0, 1, 2, 2])  # shares 1/2, 1/6, 1/3
    p = np.eye(3)[[0, 0, 1, 1, 2, 0]]
    report = classification_baselines(y, p, classes=["a", "b", "c"], training_shares=np.array([0.6, 0.2, 0.2]))
    majority, prior = report.baselines
    assert majority.metrics["accuracy"] == pytest.approx(0.5)
    assert majority.metrics["balanced_accuracy"] == pytest.approx(1 / 3)
    assert prior.metrics["accuracy"] == pytest.approx(0.6 * 0.5 + 0.2 / 6 + 0.2 / 3)
    assert prior.metrics["balanced_accuracy"] == pytest.approx((0.6 + 0.2 + 0.2) / 3)
    # the model: recalls 2/3, 1, 1/2
    assert report.model_value == pytest.approx((2 / 3 + 1 + 1 / 2) / 3)
    assert report.margin == pytest.approx((2 / 3 + 1 + 1 / 2) / 3 - 1 / 3) and report.skewed
    balanced = classification_baselines(np.array([0, 1, 0, 1]), np.eye(2)[[0, 1, 1, 1]])
    assert not balanced.skewed and balanced.source == "evaluation rows"
    single = classification_baselines(np.array([1, 1, 1]), np.eye(2)[[1, 1, 0]])
    assert single.margin is None and single.note.startswith("the evaluation rows hold a single class")
    regression = regression_baselines(np.array([1.0, 2.0, 3.0]), np.array([1.0, 2.0, 2.0]), training_mean=2.0)
    assert regression.baselines[0].metrics["rmse"] == pytest.approx(np.sqrt(2 / 3))
    assert regression.margin == pytest.approx(1 - np.sqrt(1 / 3) / np.sqrt(2 / 3))


@pytest.mark.parametrize("n_classes", [2, 4])
def test_weighted_metrics_are_the_plain_metrics_on_the_resampled_rows(n_classes):
    rng = np.random.default_rng(n_classes)
    p = softmax(np.round(rng.normal(0, 2, size=(300, n_classes)), 1))  # rounded: ties in the scores
    y = np.array([rng.choice(n_classes, p=row) for row in p])
    statistics = classification_statistics(y, p, majority_class=0, class_prior=np.full(n_classes, 1 / n_classes))
    counts = rng.integers(0, 3, size=300)
    drawn = np.repeat(np.arange(300), counts)  # the rows of one resample, each as often as its weight
    weights = counts[None, :].astype(float) * 300 / counts.sum()  # weights of a resample sum to the rows
    got = {k: float(s.compute(weights)[0]) for k, s in statistics.items()}
    expected = plain.classification_metrics(y[drawn], p[drawn])
    for name in ("accuracy", "balanced_accuracy", "f1_macro", "roc_auc", "log_loss", "brier"):
        assert got[name] == pytest.approx(expected[name], rel=1e-9), name
    assert got["ece"] == pytest.approx(expected_calibration_error(y[drawn], p[drawn]), rel=1e-9)
    assert got["mce"] == pytest.approx(max_calibration_error(y[drawn], p[drawn]), rel=1e-9)
    assert got["baseline_margin"] == pytest.approx(expected["balanced_accuracy"] - 1 / n_classes, rel=1e-9)


def test_regression_intervals_hold_the_value_and_shrink_with_rows():
    rng = np.random.default_rng(5)
    widths = []
    for rows in (50, 5000):
        y = rng.normal(size=rows)
        predicted = y + rng.normal(0, 0.5, rows)
        statistics = regression_statistics(y, predicted, baseline=0.0)
        intervals = bootstrap_intervals(rows, statistics, samples=300)
        rmse = plain.rmse(y, predicted)
        assert intervals["rmse"][0] <= rmse <= intervals["rmse"][1]
        widths.append(intervals["rmse"][1] - intervals["rmse"][0])
    assert widths[1] < widths[0] / 5  # about sqrt(100) = 10 times narrower


# -- a user's own small tables: a result or one line, never a traceback -----------------------------


def _table(kind: str, rows: int, seed: int = 0) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(rows, 3))
    signal = x @ np.array([1.5, -1.0, 0.5])
    table = pd.DataFrame({"a": x[:, 0], "b": x[:, 1], "c": x[:, 2]})
    if kind == "categorical":
        table = pd.DataFrame({name: np.where(x[:, i] > 0, "hi", "lo") for i, name in enumerate("abc")})
    if kind == "text":
        table["id"] = [f"row-{i:05d}" for i in range(rows)]
        table["note"] = [f"note {int(v * 1000)}" for v in rng.random(rows)]
    if kind == "regression":
        table["target"] = signal + rng.normal(0, 0.3, rows)
    elif kind == "ten_classes":
        table["target"] = pd.cut(signal, np.quantile(signal, np.linspace(0, 1, 11)), labels=False, include_lowest=True)
        table["target"] = "class-" + table["target"].astype(str)
    else:
        table["target"] = np.where(signal + rng.normal(0, 0.5, rows) > 0, "yes", "no")
    return table


@pytest.mark.parametrize(
    ("kind", "rows"),
    [
        ("numeric", 300),
        ("categorical", 300),
        ("text", 300),
        ("ten_classes", 600),
        ("regression", 300),
        ("numeric", 100),
    ],
)
def test_a_users_small_table_evaluates_without_a_traceback(sqlite_workspace, tmp_path, kind, rows):
    import json

    import amploop
    from amploop import Store

    path = tmp_path / "mine.csv"
    _table(kind, rows).to_csv(path, index=False)
    config = AmploopConfig(
        data=DataConfig(target="target"),
        train=TrainConfig(epochs=3, batch_size=32, learning_rate=0.01, precision="fp32"),
        evaluate=EvaluateConfig(bootstrap_samples=200),
    )
    with Store.open(sqlite_workspace) as store:
        trained = amploop.train_version(config, dataset=str(path), store=store)
        report = amploop.evaluate_version(trained.reference, config, store=store).report
        assert report.dataset["rows"] == round(0.2 * rows)  # 20 rows for the 100-row table
        flat = report.to_dict()
        json.dumps(flat, allow_nan=False)  # plain JSON: no NaN, whatever could not be computed
        assert [r["metric"] for r in flat["verdict"]["rules"]] == [r["metric"] for r in DEFAULT_GATE]
        if kind == "regression":
            assert report.calibration is None and flat["baselines"]["metric"] == "rmse"
            assert next(r for r in report.verdict.rules if r.metric == "ece").outcome == "skipped"
        else:
            decision = report.calibration.decision
            # 10% of the training rows validate: too few to show that a temperature helps, so none is served
            assert decision is not None and decision.rows < 200 and report.calibration.temperature == 1.0
            assert decision.reason.startswith(f"kept T = 1: {decision.rows} validation rows are fewer than")
        # new rows, of one class only (classification) or a narrow band of targets (regression)
        new = pd.read_csv(path)
        new = new[new["target"] == new["target"].iloc[0]] if kind != "regression" else new[new["target"] > 1]
        new.head(15).to_csv(tmp_path / "new.csv", index=False)
        again = amploop.evaluate_version(trained.reference, config, store=store, data=str(tmp_path / "new.csv"))
        flat = again.to_dict()
        json.dumps(flat, allow_nan=False)
        assert flat["shift"]["available"] and flat["holdout"]["source"].startswith("its own test rows")
        if kind != "regression":
            floor = next(r for r in flat["verdict"]["rules"] if r["metric"] == "baseline_margin")
            assert floor["outcome"] == "skipped" and "single class" in floor["reason"]
        if kind == "text":
            notes = {c["column"]: c["note"] for c in flat["shift"]["columns"]}
            assert notes["id"].startswith("free text or identifiers")
        card = amploop.write_model_card(store, trained.version.name, trained.version.version)
        assert "Release gate" in card.text


def test_the_decision_travels_with_the_bundle_and_older_bundles_still_load():
    from dataclasses import replace

    from amploop.models.bundle import ModelBundle

    result = fit(_logistic_table(300, seed=6), UNTRAINED, model=KnownLogistic(WEIGHTS))
    logits, labels = _labelled_logits(46, seed=0)
    decision = decide_temperature(logits, labels)
    older = bundle_from_fit(result)
    assert "temperature_decision" not in older.to_files()["model.json"].decode()  # as bundles were written before
    assert ModelBundle.from_files(older.to_files()).temperature_decision is None
    newer = replace(older, temperature=decision.temperature, temperature_decision=decision.to_dict())
    loaded = ModelBundle.from_files(newer.to_files())
    assert loaded.temperature_decision == decision.to_dict() and loaded.temperature == 1.0
