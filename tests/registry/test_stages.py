"""The stage functions below the CLI, driven from Python on a user's own small tables."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import torch
from torch import nn

import amploop
from amploop import AmploopConfig, ConfigError, EvaluateConfig, ModelConfig, Store, TrainConfig, UsageError
from amploop.config import GateRuleConfig
from amploop.data import Dataset
from amploop.models.runtime import Predictor
from amploop.registry.model_versions import load_model_bundle


def _table(rows: int, seed: int) -> pd.DataFrame:
    """Three well-separated classes in four numeric columns."""
    rng = np.random.default_rng(seed)
    label = rng.integers(0, 3, rows)
    x = rng.normal(size=(rows, 4)) + np.eye(3, 4)[label] * 4.0
    table = pd.DataFrame(x, columns=["a", "b", "c", "d"])
    table["kind"] = np.array(["setosa", "versicolor", "virginica"])[label]
    return table


def _config(name: str) -> AmploopConfig:
    return AmploopConfig(
        data={"target": "kind"},
        model=ModelConfig(name=name),
        train=TrainConfig(epochs=15, batch_size=32, learning_rate=0.01, precision="fp32"),
        evaluate=EvaluateConfig(
            gate=[GateRuleConfig(metric="accuracy", min=0.9)],
            bootstrap_samples=100,
            robustness=False,
            parity_precisions=["int8"],
        ),
    )


def test_train_evaluate_promote_load_card_and_rollback_from_python(workspace, tmp_path):
    path = tmp_path / "plants.csv"
    _table(400, seed=0).to_csv(path, index=False)
    config = _config("plants")
    with Store.open(workspace) as store:
        first = amploop.train_version(config, dataset=str(path), store=store)
        assert first.reference == "plants:1" and first.metrics["test_accuracy"] > 0.9
        run = store.get_run(first.run_id)
        assert run.config["data"]["source"] == str(path.resolve())  # any directory finds the file again
        assert run.dataset_fingerprints == first.data and set(first.data) == {"source", "train", "validation", "test"}
        assert first.to_dict()["model"] == {
            "name": "plants",
            "version": 1,
            "artifact_uri": first.version.artifact_uri,
        }

        evaluated = amploop.evaluate_version("plants:1", config, store=store)
        assert evaluated.report.passed
        assert [e.id for e in store.list_evaluations("plants", 1)] == [evaluated.stored.id]
        move = amploop.promote(store, "plants", 1, reason="passed its gate")
        assert (move.from_version, move.to_version) == (None, 1)

        predictor = amploop.load_model("plants@champion", store=store)
        rows = pd.read_csv(path).head(25)
        _, bundle = load_model_bundle(store, "plants", 1)
        assert predictor.reference == "plants:1"
        assert predictor.predict(rows) == Predictor(bundle).predict(rows)
        assert set(predictor.predict(rows)) <= {"setosa", "versicolor", "virginica"}

        card = amploop.write_model_card(store, "plants", 1, config=config)
        assert card.format == "markdown" and "plants" in card.text
        assert store.artifacts.get_bytes("models/plants/cards/plants-1.md") == card.text.encode()
        assert card.uri == store.artifacts.uri("models/plants/cards/plants-1.md")

        second = amploop.train_version(config, dataset=str(path), store=store)
        amploop.evaluate_version(second.reference, config, store=store)
        amploop.promote(store, "plants", 2, reason="newer")
        back = amploop.rollback(store, "plants", reason="the newer one misbehaves")
        assert (back.from_version, back.to_version) == (2, 1)
        assert amploop.load_model("plants@champion", store=store).reference == "plants:1"


class Net(nn.Module):
    """A user's own module: it reads the numeric inputs only."""

    def __init__(self, hidden: int = 16) -> None:
        super().__init__()
        self.body = nn.Sequential(nn.Linear(4, hidden), nn.ReLU(), nn.Linear(hidden, 3))

    def forward(self, inputs: dict[str, torch.Tensor]) -> torch.Tensor:
        return self.body(inputs["numeric"])


def test_a_users_own_module_registers_and_loads_into_its_class(sqlite_workspace):
    dataset = Dataset.from_table("lab-plants", _table(300, seed=1), target="kind")
    with Store.open(sqlite_workspace) as store:
        trained = amploop.train_version(_config("own-net"), dataset=dataset, model=Net(), store=store)
        assert trained.fit.architecture == "custom"
        assert trained.fit.options == {"class": f"{__name__}.Net"}
        assert store.get_run(trained.run_id).config["data"]["source"] == "lab-plants"  # an in-memory table
        with pytest.raises(ConfigError, match=r"custom .*\.Net; pass module="):
            amploop.load_model("own-net:1", store=store)
        with pytest.raises(ConfigError, match="does not fit this model's weights"):
            amploop.load_model("own-net:1", store=store, module=Net(hidden=8))
        predictor = amploop.load_model("own-net:1", store=store, module=Net())
        rows = dataset.table.head(50)
        accuracy = np.mean(np.array(predictor.predict(rows)) == rows["kind"].to_numpy())
        assert accuracy > 0.8
        evaluated = amploop.evaluate_version("own-net:1", _config("own-net"), store=store, data=dataset, module=Net())
        assert evaluated.report.to_dict()["metrics"]["accuracy"] > 0.8


@pytest.mark.parametrize("reference", ["", "bad name", "x@", "x:0", "x:-1", "../x"])
def test_a_malformed_reference_is_a_usage_error(sqlite_workspace, reference):
    with Store.open(sqlite_workspace) as store:
        with pytest.raises(UsageError):
            amploop.evaluate_version(reference, store=store)
        with pytest.raises(UsageError):
            amploop.load_model(reference, store=store)
