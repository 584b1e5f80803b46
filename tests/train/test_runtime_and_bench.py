import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from amploop.config import AmploopConfig, ModelConfig, TrainConfig
from amploop.data import load_builtin
from amploop.errors import SchemaError
from amploop.models.runtime import ModelBundle, Predictor
from amploop.train.fit import bundle_from_fit, fit
from amploop.train.precision import cpu_has_native_bf16

AMPLOOP = str(Path(sys.executable).with_name("amploop"))


@pytest.fixture(scope="module")
def adult_fit():
    return fit(
        load_builtin("adult"),
        AmploopConfig(model=ModelConfig(architecture="tabular"), train=TrainConfig(epochs=1, precision="fp32")),
    )


def test_bundle_roundtrip_predicts_what_the_trained_model_predicts(adult_fit):
    bundle = ModelBundle.from_files(bundle_from_fit(adult_fit).to_files())
    test = adult_fit.splits.test
    predicted = Predictor(bundle).predict(test.table)
    accuracy = float(np.mean(np.array(predicted) == test.labels.to_numpy()))
    assert accuracy == pytest.approx(adult_fit.metrics["test_accuracy"], abs=1e-9)
    bf16 = Predictor(bundle, precision="bf16").predict(test.table)
    assert np.mean(np.array(bf16) == np.array(predicted)) > 0.98


def test_predictor_validates_the_schema(adult_fit):
    predictor = Predictor(ModelBundle.from_files(bundle_from_fit(adult_fit).to_files()))
    table = adult_fit.splits.test.table.drop(columns=["age"]).head(3)
    with pytest.raises(SchemaError, match="missing columns: age"):
        predictor.predict(table)


def test_bench_precision_json_on_mnist_cnn(tmp_path):
    env = {k: v for k, v in os.environ.items() if not k.startswith("AMPLOOP_")}
    env["AMPLOOP_HOME"] = str(tmp_path)
    result = subprocess.run(
        [
            AMPLOOP,
            "bench",
            "precision",
            "--dataset",
            "mnist5k",
            "--model",
            "cnn",
            "--modes",
            "fp32,bf16",
            "--epochs",
            "8",
            "--json",
        ],
        capture_output=True,
        text=True,
        env=env,
        timeout=900,
    )
    assert result.returncode == 0, result.stderr
    out = json.loads(result.stdout)
    rows = {r["mode"]: r for r in out["rows"]}
    assert set(rows) == {"fp32", "bf16"}
    assert rows["fp32"]["agreement_with_fp32"] == 1.0 and rows["bf16"]["agreement_with_fp32"] > 0.97
    assert abs(rows["bf16"]["validation_accuracy"] - rows["fp32"]["validation_accuracy"]) <= 0.005 + 1e-9
    assert rows["fp32"]["validation_accuracy"] > 0.95
    # the speed is the measured throughput against fp32's, and the note says exactly what it implies
    assert (rows["fp32"]["speed_vs_fp32"], rows["fp32"]["note"]) == (1.0, "")
    speed = rows["bf16"]["samples_per_s"] / rows["fp32"]["samples_per_s"]
    assert rows["bf16"]["speed_vs_fp32"] == pytest.approx(speed, abs=1e-3)
    emulated = out["device"] == "cpu" and not cpu_has_native_bf16()
    expected_note = "" if speed >= 1 else "slower than fp32" + (": this CPU has no native bf16" if emulated else "")
    assert rows["bf16"]["note"] == expected_note


def test_gpu_benchmark_script_runs_on_the_cpu():
    result = subprocess.run(
        [sys.executable, "bench/train_gpu.py", "--device", "cpu", "--small"],
        capture_output=True,
        text=True,
        timeout=600,
        cwd=Path(__file__).parents[2],
        env={**os.environ, "PYTHONPATH": "."},
    )
    assert result.returncode == 0, result.stderr
    assert "amploop default" in result.stdout and "plain best" in result.stdout


def test_the_one_device_call_script_runs_every_step_on_the_cpu(tmp_path):
    result = subprocess.run(
        ["bash", "bench/gpu_all.sh", "--small"],
        capture_output=True,
        text=True,
        timeout=900,
        cwd=Path(__file__).parents[2],
        env={**os.environ, "OUT": str(tmp_path), "PYTHON": sys.executable},
    )
    assert result.returncode == 0, result.stderr
    summary = json.loads((tmp_path / "summary.json").read_text())
    assert [(s["step"], s["rc"]) for s in summary["steps"]] == [
        ("train_gpu", 0),
        ("precision", 0),
        ("train_defaults", 0),
    ], result.stderr
    trained = json.loads((tmp_path / "train_defaults.txt").read_text())
    assert trained["precision"]["reason"]  # the choice amploop made, with its reason, is in what comes back
    assert "amploop default" in (tmp_path / "train_gpu.txt").read_text()
