"""Model cards, lineage, ONNX export and artifact integrity for registered versions."""

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import onnxruntime
import pytest

from amploop.config import AmploopConfig, EvaluateConfig
from amploop.data import load_builtin
from amploop.errors import ArtifactError, ConfigError
from amploop.models.runtime import ModelBundle, Predictor, model_inputs
from amploop.registry import Store
from amploop.registry.aliases import promote
from amploop.registry.evaluations import evaluate_version
from amploop.registry.export import export_version
from amploop.registry.lineage import lineage
from amploop.workspace import Workspace
from tests.conftest import open_page

AMPLOOP = str(Path(sys.executable).with_name("amploop"))


@pytest.fixture(scope="module")
def home(tmp_path_factory) -> Path:
    """adult (mlp) and mnist5k (cnn), trained briefly and registered through the real CLI."""
    home = tmp_path_factory.mktemp("registry") / ".amploop"
    env = {k: v for k, v in os.environ.items() if not k.startswith("AMPLOOP_")}
    env["AMPLOOP_HOME"] = str(home)
    for args in (
        ["--dataset", "adult", "--model", "mlp", "--epochs", "1"],
        ["--dataset", "mnist5k", "--model", "cnn", "--epochs", "1", "--batch-size", "128"],
    ):
        done = subprocess.run(
            [AMPLOOP, "train", *args, "--json"], capture_output=True, text=True, env=env, cwd=home.parent, timeout=600
        )
        assert done.returncode == 0, done.stderr
    return home


def _store(home: Path) -> Store:
    return Store.open(Workspace.from_env({"AMPLOOP_HOME": str(home)}))


def _real_rows(bundle: ModelBundle, name: str, rows: int, seed: int):
    """``rows`` rows of the built-in dataset: as a table and arrays (what a user passes the predictor),
    and encoded by the version's own encoder into model inputs (what an exported graph takes)."""
    dataset = load_builtin(name)
    pool = dataset.splits.get("test", np.arange(len(dataset.table)))
    positions = np.sort(np.random.default_rng(seed).choice(pool, rows, replace=False))
    table = dataset.table.iloc[positions].reset_index(drop=True)
    arrays = {column: np.asarray(values)[positions] for column, values in dataset.arrays.items()}
    return table, arrays, model_inputs(bundle.encoder().transform(table, arrays))


@pytest.mark.parametrize("name", ["adult", "mnist5k"])
def test_onnx_export_matches_torch(home, name):
    with _store(home) as store:
        result = export_version(store, name, 1)
        record = store.get_model_version(name, 1)
        bundle = ModelBundle.from_files(store.load_model_files(record))
    assert result.max_abs_difference <= 1e-4
    session = onnxruntime.InferenceSession(Path(result.uri).read_bytes(), providers=["CPUExecutionProvider"])
    table, arrays, inputs = _real_rows(bundle, name, 37, seed=3)  # another batch size than the export used
    got = session.run(["probabilities"], {i.name: inputs[i.name].numpy() for i in session.get_inputs()})[0]
    expected = Predictor(bundle).predict_outputs(table, arrays)  # what amploop serves for those rows
    assert got.shape == expected.shape == (37, len(bundle.classes))
    assert np.max(np.abs(got - expected)) <= 1e-4


def test_unknown_export_format(home):
    with _store(home) as store, pytest.raises(ConfigError, match="valid: onnx, mlflow"):
        export_version(store, "adult", 1, fmt="tflite")


def test_lineage_reaches_run_config_code_data_and_evaluations(home):
    with _store(home) as store:
        config = AmploopConfig(evaluate=EvaluateConfig(robustness=False, parity_precisions=[]))
        evaluate_version("adult:1", config, store=store)
        store.record_loop_decision(
            "adult", "rejected", reasons=["lineage test"], champion_version=1, challenger_version=9
        )
        store.record_loop_decision("adult", "retrain", reasons=["another version"], champion_version=7)
        facts = lineage(store, "adult", 1)
    assert facts["run"]["config"]["model"]["architecture"] == "mlp"
    assert facts["run"]["precision"] in ("bf16", "fp32") and facts["run"]["precision_reason"]
    assert set(facts["data"]) == {"source", "train", "validation", "test"}
    train = facts["data"]["train"]
    assert train["rows"] == 29305 and train["parents"][0]["fingerprint"] == facts["data"]["source"]["fingerprint"]
    assert facts["evaluations"] and facts["evaluations"][-1]["rules"]
    assert [(d["kind"], d["reasons"]) for d in facts["loop_decisions"]] == [("rejected", ["lineage test"])]


def test_model_card_html_opens_in_chromium(home, browser, tmp_path):
    with _store(home) as store:
        # The card only needs a champion; whether adult:1 passed its gate after one epoch does not matter.
        promote(store, "adult", 1, reason="card test", force=True)
    config = tmp_path / "amploop.yaml"
    config.write_text("project:\n  name: income-demo\n  card:\n    intended_use: Teaching & testing <only>.\n")
    env = {k: v for k, v in os.environ.items() if not k.startswith("AMPLOOP_")}
    env["AMPLOOP_HOME"] = str(home)
    done = subprocess.run(
        [AMPLOOP, "--config", str(config), "models", "card", "adult:1", "--format", "html", "--json"],
        capture_output=True,
        text=True,
        env=env,
        timeout=300,
    )
    assert done.returncode == 0, done.stderr
    uri = json.loads(done.stdout)["uri"]
    page, problems = open_page(browser, Path(uri).as_uri(), tmp_path / "card.png")
    assert problems == []
    text = page.inner_text("body")
    for section in (
        "Model details",
        "Intended use",
        "Factors",
        "Metrics",
        "Evaluation data",
        "Training data",
        "Quantitative analyses",
        "Ethical considerations",
        "Caveats and recommendations",
    ):
        assert section in text
    assert "Teaching & testing <only>." in text  # the user's text, escaped, not markup
    assert page.locator("#slices tr").count() > 5
    page.close()


def test_a_tampered_weights_file_is_refused_on_load(home):
    with _store(home) as store:
        record = store.get_model_version("mnist5k", 1)
        weights = Path(record.artifact_uri) / "model.safetensors"
        original = weights.read_bytes()
        try:
            weights.write_bytes(original[:-8] + b"\x00" * 8)
            with pytest.raises(ArtifactError, match="does not match the SHA-256 stored at registration"):
                store.load_model_files(record)
        finally:
            weights.write_bytes(original)
        assert store.load_model_files(record)["model.safetensors"] == original


def test_mlflow_export_logs_a_model_that_predicts_like_torch(home, tmp_path, monkeypatch):
    import mlflow.pyfunc

    monkeypatch.setenv("MLFLOW_TRACKING_URI", f"sqlite:///{tmp_path / 'mlflow.db'}")
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    monkeypatch.chdir(elsewhere)  # MLflow's default artifact folder is ./mlruns: nothing may land here
    with _store(home) as store:
        result = export_version(store, "adult", 1, fmt="mlflow")
    assert list(elsewhere.iterdir()) == []
    with _store(home) as store:
        bundle = ModelBundle.from_files(store.load_model_files(store.get_model_version("adult", 1)))
    assert result.uri.startswith("models:/")
    loaded = mlflow.pyfunc.load_model(result.uri)
    table, arrays, inputs = _real_rows(bundle, "adult", 11, seed=4)
    assert set(inputs) == {"numeric", "categorical"}  # what the graph of a table model takes
    got = loaded.predict({k: v.numpy() for k, v in inputs.items()})["probabilities"]
    expected = Predictor(bundle).predict_outputs(table, arrays)
    assert np.asarray(got).shape == expected.shape and np.max(np.abs(np.asarray(got) - expected)) <= 1e-4


@pytest.mark.parametrize("fmt", ["markdown", "html"])
def test_a_card_for_a_version_registered_without_a_training_run(sqlite_workspace, fmt):
    from amploop.registry.cards import write_model_card

    with Store.open(sqlite_workspace) as store:
        store.register_model_version("churn", {"weights.bin": b"w"})
        card = write_model_card(store, "churn", 1, fmt=fmt)
        assert lineage(store, "churn", 1)["run"] is None
    assert "churn" in card.text
