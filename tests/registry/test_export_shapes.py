"""ONNX and MLflow export of models whose tables have only numeric or only categorical columns."""

from __future__ import annotations

import numpy as np
import onnxruntime
import pandas as pd
import pytest

import amploop
from amploop import AmploopConfig, ModelConfig, Store, TrainConfig
from amploop.data import Dataset
from amploop.models.runtime import model_inputs
from amploop.registry.export import export_version
from amploop.registry.model_versions import load_model_bundle


def _numeric_only(rows: int = 400) -> pd.DataFrame:
    rng = np.random.default_rng(0)
    x = rng.normal(size=(rows, 4))
    table = pd.DataFrame(x, columns=["a", "b", "c", "d"])
    table["y"] = np.where(x[:, 0] + x[:, 1] + rng.normal(size=rows) > 0, "yes", "no")
    return table


def _categorical_only(rows: int = 400) -> pd.DataFrame:
    rng = np.random.default_rng(1)
    colour = rng.choice(["red", "green", "blue"], rows)
    size = rng.choice(["s", "m", "l", "xl"], rows)
    noisy = (colour == "red") ^ (rng.random(rows) < 0.1)
    return pd.DataFrame({"colour": colour, "size": size, "y": np.where(noisy, "hot", "cold")})


@pytest.mark.parametrize(
    ("table", "expected_inputs"), [(_numeric_only, ["numeric"]), (_categorical_only, ["categorical"])]
)
def test_onnx_export_of_a_table_with_one_kind_of_column(sqlite_workspace, table, expected_inputs):
    dataset = Dataset.from_table("shapes", table(), target="y")
    config = AmploopConfig(model=ModelConfig(name="shapes"), train=TrainConfig(epochs=3, batch_size=32))
    with Store.open(sqlite_workspace) as store:
        amploop.train_version(config, dataset=dataset, store=store, allow_quality_issues=True, reason="synthetic")
        exported = export_version(store, "shapes", 1, fmt="onnx")
        assert exported.max_abs_difference <= 1e-4
        _, bundle = load_model_bundle(store, "shapes", 1)
        graph = store.artifacts.get_bytes("models/shapes/exports/shapes-1.onnx")
    session = onnxruntime.InferenceSession(graph, providers=["CPUExecutionProvider"])
    assert [i.name for i in session.get_inputs()] == expected_inputs
    rows = dataset.table.head(50)
    inputs = model_inputs(bundle.encoder().transform(rows))
    got = session.run(["probabilities"], {n: inputs[n].numpy() for n in expected_inputs})[0]
    served = amploop.Predictor(bundle).predict_outputs(rows)
    assert np.max(np.abs(got - served)) <= 1e-4


def test_mlflow_export_of_a_numeric_only_model(sqlite_workspace, monkeypatch):
    monkeypatch.setenv("MLFLOW_TRACKING_URI", f"sqlite:///{sqlite_workspace.home / 'mlflow.db'}")
    dataset = Dataset.from_table("numbers", _numeric_only(), target="y")
    config = AmploopConfig(model=ModelConfig(name="numbers"), train=TrainConfig(epochs=3, batch_size=32))
    with Store.open(sqlite_workspace) as store:
        amploop.train_version(config, dataset=dataset, store=store)
        exported = export_version(store, "numbers", 1, fmt="mlflow")
    assert exported.uri.startswith("models:/") and exported.max_abs_difference <= 1e-4
