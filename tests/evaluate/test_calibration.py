"""ECE and friends on small cases computed by hand; temperature scaling on seeded logits."""

import numpy as np
import pytest

from amploop.evaluate.calibration import (
    apply_temperature,
    classwise_ece,
    expected_calibration_error,
    fit_temperature,
    max_calibration_error,
    reliability_bins,
    softmax,
)


def test_ece_by_hand_two_bins():
    # confidences 0.9, 0.9 (bin (0.8, 1.0]) one right one wrong; 0.6 (bin (0.4, 0.6]) right
    p = np.array([[0.9, 0.1], [0.1, 0.9], [0.6, 0.4]])
    y = np.array([0, 0, 0])
    # bin A: accuracy 1/2, confidence 0.9 -> |0.5 - 0.9| * 2/3 ; bin B: |1 - 0.6| * 1/3
    assert expected_calibration_error(y, p, n_bins=5) == pytest.approx(0.4 * 2 / 3 + 0.4 / 3)
    assert max_calibration_error(y, p, n_bins=5) == pytest.approx(0.4)


def test_bin_edges_follow_guo_et_al():
    # 0.7 belongs to (0.6, 0.7], not (0.7, 0.8], despite 0.7 * 10 = 7.000000000000001 in floats
    bins = reliability_bins(np.array([0]), np.array([[0.7, 0.3]]), n_bins=10)
    assert [b["count"] for b in bins].index(1) == 6


def test_perfectly_calibrated_predictions_have_zero_ece():
    p = np.array([[0.75, 0.25]] * 4)
    y = np.array([0, 0, 0, 1])
    assert expected_calibration_error(y, p) == pytest.approx(0.0)


def test_adaptive_bins_hold_equal_counts():
    rng = np.random.default_rng(0)
    p = softmax(rng.normal(size=(300, 3)))
    bins = reliability_bins(rng.integers(0, 3, 300), p, n_bins=15, adaptive=True)
    assert {b["count"] for b in bins} == {20}


def test_classwise_ece_by_hand():
    p = np.array([[0.8, 0.2], [0.4, 0.6]])
    y = np.array([0, 0])
    # class 0: probs 0.8 (bin 4 of 5, happened 1), 0.4 (bin 2, happened 1): (0.2 + 0.6) / 2 = 0.4
    # class 1: probs 0.2 (happened 0), 0.6 (happened 0): (0.2 + 0.6) / 2 = 0.4
    assert classwise_ece(y, p, n_bins=5) == pytest.approx(0.4)


def test_temperature_scaling_recovers_the_true_temperature_and_keeps_predictions():
    rng = np.random.default_rng(1)
    true_logits = rng.normal(0, 2, size=(20000, 4))
    y = np.array([rng.choice(4, p=row) for row in softmax(true_logits)])
    overconfident = true_logits * 2.5  # the model's logits are 2.5 times too sharp
    t = fit_temperature(overconfident, y)
    assert t == pytest.approx(2.5, rel=0.05)
    before = expected_calibration_error(y, softmax(overconfident))
    after = expected_calibration_error(y, apply_temperature(overconfident, t))
    assert after < before / 2
    assert np.array_equal(softmax(overconfident).argmax(1), apply_temperature(overconfident, t).argmax(1))
