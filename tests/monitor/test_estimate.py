"""CBPE against labels drawn from the model's own probabilities; F1 and Wilson intervals by hand."""

import json
import re

import numpy as np
import pytest
from sklearn.metrics import f1_score

from amploop.errors import UsageError
from amploop.evaluate.calibration import decide_temperature, expected_calibration_error, softmax
from amploop.monitor.estimate import (
    DEFAULT_WIDENING,
    calibration_from_decision,
    estimate_performance,
    realized_performance,
)

# a record saying the served probabilities are exactly calibrated: the interval is sampling noise only
CALIBRATED = {"temperature_kept": True, "reason": "synthetic", "ece": 0.0, "validation_rows": 10_000}


def draw_labels(rng: np.random.Generator, probabilities: np.ndarray) -> np.ndarray:
    """One label per row from its probabilities: what a perfectly calibrated model's labels look like."""
    return (rng.random((len(probabilities), 1)) >= np.cumsum(probabilities, axis=1)[:, :-1]).sum(axis=1)


def logistic_window(rng: np.random.Generator, mean: float, rows: int = 1000) -> np.ndarray:
    x = rng.normal(mean, 1.0, rows)
    positive = 1 / (1 + np.exp(-2.5 * (x - 1.0)))  # the class boundary sits at x = 1
    return np.column_stack([1 - positive, positive])


def test_estimate_tracks_realized_performance_across_covariate_shift():
    # x ~ N(0, 1) puts most rows far from the boundary at x = 1; x ~ N(1, 1) centres them on it, so
    # accuracy falls and the positive class's F1 rises. P(y | x) never changes: pure covariate shift.
    rng = np.random.default_rng(7)
    rows = []
    for window in range(100):
        mean = 0.0 if window % 2 == 0 else 1.0
        probabilities = logistic_window(rng, mean)
        labels = draw_labels(rng, probabilities)
        estimate = estimate_performance(probabilities, calibration=CALIBRATED, seed=window)
        realized = realized_performance(labels, probabilities.argmax(1), 2)
        confidence = probabilities.max(axis=1)
        # the realized accuracy is a mean of independent Bernoulli(confidence) flags
        sampling_sd = np.sqrt(np.sum(confidence * (1 - confidence))) / len(confidence)
        rows.append(
            (
                mean,
                estimate.accuracy,
                realized.accuracy,
                estimate.accuracy_low <= realized.accuracy <= estimate.accuracy_high,
                estimate.f1,
                realized.f1,
                estimate.f1_low <= realized.f1 <= estimate.f1_high,
                (estimate.accuracy_high - estimate.accuracy_low) / (2 * 1.959964 * sampling_sd),
            )
        )
    table = np.array(rows, dtype=float)
    shifted = table[:, 0] == 1.0
    estimated, realized, f1_estimated, f1_realized = table[:, 1], table[:, 2], table[:, 4], table[:, 5]
    # the shift moves realized accuracy by ~0.06 and F1 by ~0.17, and the estimate moves with it
    assert realized[~shifted].mean() - realized[shifted].mean() > 0.04
    assert f1_realized[shifted].mean() - f1_realized[~shifted].mean() > 0.1
    for group in (shifted, ~shifted):
        assert estimated[group].mean() == pytest.approx(realized[group].mean(), abs=0.005)
        assert f1_estimated[group].mean() == pytest.approx(f1_realized[group].mean(), abs=0.01)
    assert np.abs(estimated - realized).mean() <= 0.03  # measured: 0.0069
    assert np.abs(f1_estimated - f1_realized).mean() <= 0.03  # measured: 0.0126
    # Each window's realized value falls in a correct 95% interval with probability 0.95, so the
    # count inside of 100 windows is Binomial(100, 0.95): P(fewer than 90) = 1.1%. An interval
    # covering only 85% passes with P = 10%; the width check below catches what that misses.
    assert table[:, 3].mean() >= 0.90  # measured: 0.96
    assert table[:, 6].mean() >= 0.90  # measured: 0.95
    # width against the normal approximation's 2 * 1.96 sd; 500 draws make single ratios wobble ~10%
    assert table[:, 7].mean() == pytest.approx(1.0, abs=0.05)
    assert table[:, 7].min() > 0.8 and table[:, 7].max() < 1.2


def test_monte_carlo_labels_follow_each_class_probability():
    # every row [0.2, 0.3, 0.5]: a model always predicting class c is right Binomial(1000, p_c) / 1000 of the time
    probabilities = np.tile([0.2, 0.3, 0.5], (1000, 1))
    for predicted_class, p in enumerate([0.2, 0.3, 0.5]):
        predicted = np.full(1000, predicted_class)
        estimate = estimate_performance(probabilities, predicted, calibration=CALIBRATED, draws=2000)
        half_width = 1.959964 * np.sqrt(p * (1 - p) / 1000)
        assert estimate.accuracy == pytest.approx(p)
        assert estimate.accuracy_low == pytest.approx(p - half_width, abs=0.004)
        assert estimate.accuracy_high == pytest.approx(p + half_width, abs=0.004)


def test_certain_probabilities_give_an_interval_of_one_point():
    probabilities = np.eye(3)[[0, 1, 2, 2, 1]]
    predicted = np.array([0, 1, 2, 0, 0])  # the last two are certainly wrong
    estimate = estimate_performance(probabilities, predicted, calibration=CALIBRATED)
    assert (estimate.accuracy_low, estimate.accuracy, estimate.accuracy_high) == pytest.approx((0.6, 0.6, 0.6))
    assert estimate.f1 == pytest.approx(f1_score([0, 1, 2, 2, 1], predicted, average="macro"))
    assert estimate.f1_low == pytest.approx(estimate.f1) and estimate.f1_high == pytest.approx(estimate.f1)


def test_expected_f1_by_hand_binary():
    probabilities = np.array([[0.2, 0.8], [0.6, 0.4], [0.3, 0.7]])
    estimate = estimate_performance(probabilities)  # predicted: argmax = [1, 0, 1]
    # class 1: TP = 0.8 + 0.7 = 1.5, FP = 0.2 + 0.3 = 0.5, FN = 0.4 -> F1 = 3 / (3 + 0.5 + 0.4) = 10/13
    assert estimate.accuracy == pytest.approx(2.1 / 3)
    assert estimate.f1 == pytest.approx(10 / 13)
    assert estimate.f1_kind == "binary"
    # predicting 1 everywhere: TP = 1.9, FP = 1.1, FN = 0 -> F1 = 3.8 / 4.9
    everywhere = estimate_performance(probabilities, np.array([1, 1, 1]))
    assert everywhere.accuracy == pytest.approx(1.9 / 3)
    assert everywhere.f1 == pytest.approx(38 / 49)


def test_expected_f1_by_hand_macro():
    probabilities = np.array([[0.7, 0.2, 0.1], [0.1, 0.6, 0.3], [0.2, 0.3, 0.5], [0.5, 0.4, 0.1]])
    estimate = estimate_performance(probabilities)  # predicted: [0, 1, 2, 0]
    # class 0: TP 1.2, FP 0.8, FN 0.3 -> 24/35; class 1: TP 0.6, FP 0.4, FN 0.9 -> 12/25;
    # class 2: TP 0.5, FP 0.5, FN 0.5 -> 1/2; macro = (24/35 + 12/25 + 1/2) / 3 = 583/1050
    assert estimate.accuracy == pytest.approx(0.575)
    assert estimate.f1 == pytest.approx(583 / 1050)
    assert estimate.f1_kind == "macro"


def test_overconfident_model_interval_widened_by_exactly_its_ece():
    rng = np.random.default_rng(3)
    true_logits = rng.normal(0, 1.5, (5000, 3))
    labels = draw_labels(rng, softmax(true_logits))
    served = softmax(1.5 * true_logits)  # too confident: logits 1.5 times too large
    validation, window = slice(0, 3000), slice(3000, 5000)
    ece = expected_calibration_error(labels[validation], served[validation])
    assert 0.05 < ece < 0.12  # measured: 0.083
    record = {"temperature_kept": False, "reason": "kept T = 1: too few folds improved", "ece": ece}
    narrow = estimate_performance(served[window], calibration=CALIBRATED)
    widened = estimate_performance(served[window], calibration={**record, "validation_rows": 3000})
    assert widened.calibration_widening == ece
    for end in ("accuracy_low", "f1_low"):
        assert getattr(widened, end) == pytest.approx(getattr(narrow, end) - ece, abs=1e-12)
    for end in ("accuracy_high", "f1_high"):
        assert getattr(widened, end) == pytest.approx(getattr(narrow, end) + ece, abs=1e-12)
    # the widening is what makes the interval honest: confidence overstates accuracy by about the ECE
    realized = realized_performance(labels[window], served[window].argmax(1), 3)
    assert realized.accuracy < narrow.accuracy_low
    assert widened.accuracy_low <= realized.accuracy <= widened.accuracy_high
    assert any("unscaled" in note and f"{ece:.4f}" in note for note in widened.notes)


def test_no_calibration_record_widens_by_the_default_and_says_so():
    probabilities = logistic_window(np.random.default_rng(0), 0.0)
    narrow = estimate_performance(probabilities, calibration=CALIBRATED)
    default = estimate_performance(probabilities)
    assert default.calibration_widening == DEFAULT_WIDENING == 0.05
    assert default.accuracy_low == pytest.approx(narrow.accuracy_low - 0.05, abs=1e-12)
    assert any("no calibration record" in note for note in default.notes)
    no_ece = estimate_performance(probabilities, calibration=calibration_from_decision(None))
    assert no_ece.calibration_widening == 0.05 and any("holds no ECE" in note for note in no_ece.notes)


def test_concept_drift_is_invisible_to_the_estimate_and_says_so():
    rng = np.random.default_rng(1)
    probabilities = logistic_window(rng, 0.0)
    flipped = 1 - draw_labels(rng, probabilities)  # P(y | x) reversed: the model is now mostly wrong
    estimate = estimate_performance(probabilities, calibration=CALIBRATED)
    realized = realized_performance(flipped, probabilities.argmax(1), 2)
    assert estimate.accuracy > 0.8 and realized.accuracy < 0.2  # only the labels show it
    assert any("concept drift" in note for note in estimate.notes)


def test_calibration_from_a_real_temperature_decision():
    rng = np.random.default_rng(0)
    true_logits = rng.normal(0, 2, (1000, 3))
    labels = draw_labels(rng, softmax(true_logits))
    kept = decide_temperature(true_logits * 3, labels)  # too confident: scaling is kept
    assert kept.kept
    record = calibration_from_decision(kept.to_dict())
    assert record == {"temperature_kept": True, "reason": kept.reason, "ece": kept.ece_after, "validation_rows": 1000}
    assert calibration_from_decision(kept) == record
    not_kept = decide_temperature(true_logits, labels)  # calibrated already: the unscaled ECE is served
    assert calibration_from_decision(not_kept.to_dict())["ece"] == not_kept.ece_before
    too_few = decide_temperature(true_logits[:46], labels[:46])  # no ECE measured on 46 rows
    assert calibration_from_decision(too_few.to_dict(), ece=0.04)["ece"] == 0.04
    estimate = estimate_performance(softmax(true_logits[:46]), calibration=calibration_from_decision(too_few, ece=0.04))
    assert estimate.calibration_widening == 0.04
    assert any("46 validation rows" in note for note in estimate.notes)


def test_wilson_interval_by_hand():
    # Wilson (1927): (p + z^2/2n) / (1 + z^2/n) -+ z / (1 + z^2/n) * sqrt(p(1-p)/n + z^2/4n^2), z = 1.959964
    eighty = realized_performance(np.array([1] * 80 + [0] * 20), np.ones(100, dtype=int), 2, window_rows=400)
    assert eighty.accuracy == 0.8
    assert eighty.accuracy_low == pytest.approx(0.7111708344068411, abs=1e-12)
    assert eighty.accuracy_high == pytest.approx(0.8666330666689676, abs=1e-12)
    assert eighty.labelled_share == 0.25
    # none right of 10: the interval is [0, z^2 / (n + z^2)], not the empty [0, 0] of p -+ z se
    none_right = realized_performance(np.zeros(10, dtype=int), np.ones(10, dtype=int), 2)
    z_squared = 1.959963984540054**2
    assert (none_right.accuracy_low, none_right.accuracy_high) == pytest.approx((0.0, z_squared / (10 + z_squared)))


def test_realized_f1_matches_scikit_learn_and_its_interval_holds_it():
    rng = np.random.default_rng(2)
    labels = rng.integers(0, 3, 300)
    predicted = np.where(rng.random(300) < 0.7, labels, rng.integers(0, 3, 300))
    realized = realized_performance(labels, predicted, 3)
    assert realized.f1 == pytest.approx(f1_score(labels, predicted, average="macro"))
    assert realized.f1_low < realized.f1 < realized.f1_high
    assert 0.05 < realized.f1_high - realized.f1_low < 0.2  # ~ 2 * 1.96 * sqrt(0.75 * 0.25 / 300) = 0.1
    binary = realized_performance(labels[:100] % 2, predicted[:100] % 2, 2)
    assert binary.f1 == pytest.approx(f1_score(labels[:100] % 2, predicted[:100] % 2))
    assert binary.f1_low <= binary.f1 <= binary.f1_high
    assert realized_performance(np.array([1]), np.array([1]), 2).f1_low == 0.0  # one row: no spread to bootstrap


def test_results_are_json_ready():
    estimate = estimate_performance(logistic_window(np.random.default_rng(0), 1.0, rows=50))
    realized = realized_performance(np.array([0, 1, 1]), np.array([0, 1, 0]), 2)
    for result in (estimate, realized):
        data = result.to_dict()
        assert json.loads(json.dumps(data)) == data
        assert all(type(v) in (str, int, float, list, type(None)) for v in data.values())


@pytest.mark.parametrize(
    ("probabilities", "options", "message"),
    [
        (np.array([0.3, 0.7]), {}, "1 dimension"),
        (np.zeros((0, 2)), {}, "no rows"),
        (np.ones((3, 1)), {}, "1 class column"),
        (np.array([[0.5, 0.5], [np.nan, 1.0]]), {}, "row 1 holds NaN"),
        (np.array([[0.5, 0.5], [0.5, 0.5], [0.6, 0.5]]), {}, "row 2 sums to 1.1"),
        (np.array([[1.2, -0.2]]), {}, "row 0 holds a negative"),
        (np.array([[0.5, 0.5]]), {"predicted": np.array([2])}, "class indices 0..1"),
        (np.array([[0.5, 0.5]]), {"predicted": np.array([0, 1])}, "shape (1,)"),
        (np.array([[0.5, 0.5]]), {"confidence_level": 95}, "between 0 and 1"),
        (np.array([[0.5, 0.5]]), {"draws": 0}, "at least 1"),
        (np.array([[0.5, 0.5]]), {"calibration": {"kept": True, "ece_after": 0.02}}, "calibration_from_decision"),
        (np.array([[0.5, 0.5]]), {"calibration": {"ece": 1.5}}, "in [0, 1]"),
    ],
)
def test_estimate_rejects_bad_input(probabilities, options, message):
    with pytest.raises(UsageError, match=re.escape(message)):
        estimate_performance(probabilities, **options)


@pytest.mark.parametrize(
    ("labels", "predicted", "n_classes", "options", "message"),
    [
        (np.array([], dtype=int), np.array([], dtype=int), 2, {}, "no labelled rows"),
        (np.array([0, 2]), np.array([0, 1]), 2, {}, "labels must hold integer class indices"),
        (np.array([0.0, 1.0]), np.array([0, 1]), 2, {}, "labels must hold integer class indices"),
        (np.array([0, 1]), np.array([0]), 2, {}, "predicted has shape"),
        (np.array([0, 1]), np.array([0, 1]), 1, {}, "at least 2 classes"),
        (np.array([0, 1]), np.array([0, 1]), 2, {"window_rows": 1}, "fewer than the 2 labelled rows"),
    ],
)
def test_realized_rejects_bad_input(labels, predicted, n_classes, options, message):
    with pytest.raises(UsageError, match=message):
        realized_performance(labels, predicted, n_classes, **options)
