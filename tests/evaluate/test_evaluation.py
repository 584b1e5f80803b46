"""`evaluate_model` in process: the typed report, its JSON form, the options from one config, one fp32 pass."""

import json
import subprocess
import sys
from dataclasses import replace

import numpy as np
import pytest

from amploop.config import AmploopConfig, EvaluateConfig, GateRuleConfig, TrainConfig
from amploop.data import from_numpy
from amploop.evaluate import (
    CalibrationSummary,
    ChampionComparison,
    EvaluationReport,
    GateVerdict,
    ParityResult,
    RobustnessReport,
    SliceReport,
    evaluate_model,
    render_html,
)
from amploop.models import runtime
from amploop.train.fit import bundle_from_fit, fit

REPORT_KEYS = [
    "model",
    "dataset",
    "task",
    "classes",
    "metrics",
    "intervals",
    "baselines",
    "calibration",
    "slices",
    "robustness",
    "parity",
    "champion",
    "verdict",
    "holdout",
    "shift",
    "created_at",
    "seconds",
]


def _dataset(task: str, rows: int = 1200):
    rng = np.random.default_rng(0)
    x = rng.normal(size=(rows, 4)).astype(np.float32)
    signal = x @ np.array([1.5, -1.0, 0.5, 0.0], dtype=np.float32)
    y = (signal + rng.normal(0, 0.5, rows) > 0).astype(np.int64) if task == "classification" else signal
    return from_numpy(x, y, name=f"synthetic-{task}")


@pytest.fixture(scope="module")
def classifier():
    result = fit(_dataset("classification"), AmploopConfig(train=TrainConfig(epochs=1, max_steps=30)))
    return replace(bundle_from_fit(result), temperature=1.3), result.splits.test


@pytest.fixture(scope="module")
def regressor():
    result = fit(_dataset("regression"), AmploopConfig(train=TrainConfig(epochs=1, max_steps=30)))
    return bundle_from_fit(result), result.splits.test


def _count_passes(monkeypatch) -> list[tuple[str, int]]:
    calls: list[tuple[str, int]] = []
    original = runtime.Predictor.logits

    def counting(self, table, arrays=None, **kwargs):
        calls.append((self.precision, kwargs.get("validate", True)))
        return original(self, table, arrays, **kwargs)

    monkeypatch.setattr(runtime.Predictor, "logits", counting)
    return calls


def test_typed_parts_and_their_json_form(classifier, monkeypatch):
    bundle, test = classifier
    calls = _count_passes(monkeypatch)
    champion = ({"name": "synthetic", "version": 1}, replace(bundle, temperature=1.0))
    report = evaluate_model(bundle, test, model={"name": "synthetic", "version": 2}, champion=champion)
    assert isinstance(report, EvaluationReport)
    assert isinstance(report.calibration, CalibrationSummary) and report.calibration.temperature == 1.3
    assert isinstance(report.slices, SliceReport) and report.slices.worst is None
    assert isinstance(report.robustness, RobustnessReport) and report.robustness.corruptions
    assert all(isinstance(p, ParityResult) for p in report.parity)
    assert isinstance(report.champion, ChampionComparison) and report.champion.version == 1
    assert report.champion.delta == 0.0  # the same weights: temperature never changes the predicted class
    assert isinstance(report.verdict, GateVerdict) and report.passed == report.verdict.passed
    assert report.values["ece"] == report.calibration.ece_after == report.metrics["ece"]
    assert report.values["corruption_drop"] == report.robustness.largest_drop
    assert (
        report.failed_rules()
        == report.verdict.failed_rules()
        == [r for r in report.verdict.rules if r.outcome == "fail"]
    )

    flat = report.to_dict()
    assert list(flat) == REPORT_KEYS
    assert list(flat["verdict"]) == ["passed", "verdict", "rules", "values", "intervals", "confidence_level"]
    assert flat["holdout"] is None and flat["shift"] is None  # only for rows of the user's choosing
    assert flat["verdict"]["values"] == report.values and flat["champion"]["name"] == "synthetic"
    assert list(flat["robustness"]) == ["clean_metric", "metric", "corruptions"]
    assert "row_scores" not in flat["robustness"]["corruptions"][0] and "agrees" not in flat["parity"][0]
    assert flat["slices"]["discovered"] == [d.__dict__ for d in report.slices.discovered]
    assert json.loads(json.dumps(flat)) == flat  # plain JSON all the way down
    assert render_html(report) == render_html(flat)

    # one fp32 pass over the clean rows (and one for the champion); the rest are corruptions and precisions
    clean_fp32 = [c for c in calls if c == ("fp32", True)]
    assert len(clean_fp32) == 2
    assert sorted(p for p, _ in calls if p != "fp32") == ["bf16", "fp16", "int8"]


def test_options_come_from_the_evaluate_config(classifier, monkeypatch):
    bundle, test = classifier
    calls = _count_passes(monkeypatch)
    config = EvaluateConfig(
        gate=[GateRuleConfig(metric="accuracy", min=0.999), GateRuleConfig(metric="champion_delta", min=0.0)],
        parity_precisions=["bf16"],
        robustness=False,
        min_slice_size=40,
        confidence_level=0.9,
    )
    report = evaluate_model(
        bundle, test, model={"name": "s", "version": 1}, config=config, slice_columns=["x0"], no_champion_reason="why"
    )
    assert report.robustness is None and report.to_dict()["robustness"] is None
    assert [p.precision for p in report.parity] == ["bf16"]
    assert report.slices.min_slice_size == 40 and report.slices.confidence_level == 0.9
    assert report.slices.worst is not None and report.values["worst_slice_gap"] == report.slices.worst_gap
    assert [(r.metric, r.outcome) for r in report.verdict.rules] == [
        ("accuracy", "fail"),
        ("champion_delta", "skipped"),
    ]
    assert report.verdict.skipped_rules()[0].reason == "why" and not report.passed
    assert calls == [("fp32", True), ("bf16", True)]


def test_regression_report(regressor):
    bundle, test = regressor
    report = evaluate_model(
        bundle, test, model={"name": "r", "version": 1}, config=EvaluateConfig(parity_precisions=[])
    )
    flat = report.to_dict()
    assert report.calibration is None and flat["calibration"] is None and flat["parity"] == []
    assert report.slices.metric == "mae" and "rmse" in report.metrics
    assert report.robustness is not None and report.robustness.clean_metric == pytest.approx(report.metrics["rmse"])


def test_the_package_imports_nothing_heavy_until_a_name_is_used():
    code = (
        "import sys, amploop.evaluate as e\n"
        "lazy = set(dir(e)) - set(vars(e))\n"  # listed by dir() but not loaded yet: the names loaded on use
        "assert not [m for m in ('torch', 'pandas', 'pydantic') if m in sys.modules]\n"
        "assert sorted(e.__all__) == sorted(lazy), set(e.__all__) ^ lazy\n"
        "assert all(getattr(e, n) is not None for n in e.__all__)\n"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr
