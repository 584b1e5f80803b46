"""The loop's trigger rules and brakes, on window reports built by the real monitoring functions."""

from datetime import UTC, datetime, timedelta

import numpy as np
import pandas as pd
import pytest

from amploop.config import AmploopConfig, LoopConfig, load_config
from amploop.errors import ConfigError
from amploop.loop.policy import decide_retrain
from amploop.monitor.estimate import estimate_performance, realized_performance
from amploop.monitor.multivariate import bbsd_test
from amploop.monitor.profile import Profile
from amploop.monitor.univariate import compare_profiles

NOW = datetime(2026, 11, 29, 12, tzinfo=UTC)
KINDS = {"a": "numeric", "b": "numeric", "c": "numeric"}


def window(*, shift: float = 0.0, wrong: float = 0.1, labels: int = 500, outputs_move: bool = False, seed: int = 0):
    """A DriftReport dict: 500 rows with ``shift`` added to two of three inputs, ``wrong`` of them mislabelled."""
    rng = np.random.default_rng(seed)
    reference = Profile.from_table(pd.DataFrame(rng.normal(size=(3000, 3)), columns=list("abc")), KINDS)
    rows = pd.DataFrame(rng.normal(size=(500, 3)), columns=list("abc"))
    rows[["a", "b"]] += shift
    confident = rng.uniform(0.85, 0.95, 500)
    probabilities = np.column_stack([confident, 1 - confident])
    reference_probabilities = probabilities if not outputs_move else np.column_stack([1 - confident, confident])
    truth = np.where(rng.random(500) < wrong, 1, 0)
    return {
        "window": {"first_row": 0, "last_row": 499},
        "features": compare_profiles(reference, reference.empty().add(rows)).to_dict(),
        "predictions": {"bbsd": bbsd_test(reference_probabilities, probabilities).to_dict()},
        "estimated": estimate_performance(probabilities).to_dict(),
        "realized": realized_performance(truth[:labels], np.zeros(labels, dtype=int), 2).to_dict() if labels else None,
    }


def decide(windows, config=None, **overrides):
    options = {"now": NOW, "new_rows": 5000, "retrains": [], "reference_accuracy": 0.9, "trained_at": NOW}
    return decide_retrain(windows, config or LoopConfig(), **{**options, **overrides})


def test_a_calm_window_is_no_reason_and_each_rule_names_what_fired():
    calm = decide([window()])
    assert (calm.retrain, calm.reasons, calm.blocked) == (False, [], None)
    drifted = decide([window(), window(shift=1.0)])  # the newest window decides
    assert drifted.retrain and drifted.reasons[0].startswith("inputs drifted: 2 columns, share 0.67 >= 0.5 (a, b)")
    assert decide([window(shift=1.0), window()]).reasons == []
    worse = decide([window(wrong=0.4)])
    assert worse.retrain and worse.reasons[0].startswith("realized accuracy 0.6") and "(500 labels)" in worse.reasons[0]
    few_labels = decide([window(wrong=0.4, labels=100)])  # below loop.triggers.min_labels (200)
    assert few_labels.reasons == []
    outputs = LoopConfig(triggers={"prediction_drift": True, "drift_share": None, "realized_drop": None})
    moved = decide([window(outputs_move=True, shift=1.0)], outputs)
    assert moved.reasons and moved.reasons[0].startswith("the outputs moved (BBSD p = ")
    estimated = LoopConfig(triggers={"estimated_drop": 0.02, "realized_drop": None})
    # the interval is widened by 0.05 without a calibration record: it must lie wholly below the reference
    assert decide([window()], estimated, reference_accuracy=0.97).reasons == []
    assert decide([window()], estimated, reference_accuracy=0.99).reasons[0].startswith("estimated accuracy 0.899")
    scheduled = LoopConfig(triggers={"schedule_s": 3600})
    assert decide([], scheduled, trained_at=NOW - timedelta(hours=2)).reasons == [
        "scheduled: 7200 s since the last training, every 3600 s"
    ]
    assert decide([], scheduled, trained_at=NOW - timedelta(minutes=30)).reasons == []


def test_brakes_hold_a_retrain_the_rules_asked_for():
    drifted = [window(shift=1.0)]
    few = decide(drifted, new_rows=10)
    assert not few.retrain and few.blocked == "only 10 new rows since the last retrain; loop.min_new_rows is 1000"
    recent = decide(drifted, retrains=[NOW - timedelta(minutes=10)])
    assert not recent.retrain and recent.blocked == "the last retrain was 600 s ago; loop.cooldown_s is 3600"
    busy = [NOW - timedelta(hours=h) for h in (2, 5, 9, 20)]
    many = decide(drifted, retrains=busy)
    assert not many.retrain and many.blocked == "4 retrains in the last 24 hours; loop.max_retrains_per_day is 4"
    yesterday = [NOW - timedelta(hours=h) for h in (2, 25, 26, 27)]
    assert decide(drifted, retrains=yesterday).retrain  # only the last 24 hours count
    assert decide([window()], new_rows=0).blocked is None  # nothing asked, so nothing held
    assert many.evidence["retrains_last_day"] == 4 and many.evidence["share_drifted"] == pytest.approx(2 / 3)


def test_invalid_rules_are_config_errors_naming_the_field(tmp_path):
    path = tmp_path / "amploop.yaml"
    path.write_text("loop:\n  triggers:\n    drift_share: 1.5\n")
    with pytest.raises(ConfigError, match=r"loop\.triggers\.drift_share"):
        load_config(path)
    path.write_text("loop:\n  triggers:\n    drift_shares: 0.5\n")
    with pytest.raises(ConfigError, match=r"loop\.triggers\.drift_shares"):
        load_config(path)
    path.write_text("loop:\n  cooldown_s: -1\n")
    with pytest.raises(ConfigError, match=r"loop\.cooldown_s"):
        load_config(path)
    assert AmploopConfig().loop.triggers.realized_drop == 0.05
