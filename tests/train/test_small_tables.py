"""A user's own small table through `amploop train`: split seed, model size flags, exclusions, findings, resume."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd

import amploop
from amploop import AmploopConfig, Store, TrainConfig
from amploop.config import ModelConfig
from amploop.data import Dataset
from amploop.registry.model_versions import load_model_bundle
from amploop.workspace import Workspace

AMPLOOP = str(Path(sys.executable).with_name("amploop"))


def _table(rows: int, seed: int = 0) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    label = rng.integers(0, 2, rows)
    x = rng.normal(size=(rows, 5)) + label[:, None] * 1.5
    table = pd.DataFrame(x, columns=[f"x{i}" for i in range(5)])
    table["email"] = [f"user{i}@example.com" for i in range(rows)]  # personal data: a non-blocking finding
    table["y"] = np.where(label == 1, "yes", "no")
    return table


def _cli(home: Path, *args: str) -> subprocess.CompletedProcess:
    env = {"AMPLOOP_HOME": str(home), "OMP_NUM_THREADS": "1", "PATH": "/usr/bin:/bin"}
    return subprocess.run([AMPLOOP, *args], capture_output=True, text=True, env=env, cwd=home.parent, timeout=600)


def test_a_new_seed_keeps_the_test_rows_and_the_split_seed_moves_them(sqlite_workspace, tmp_path):
    dataset = Dataset.from_table("small", _table(300), target="y")
    fingerprints = {}
    with Store.open(sqlite_workspace) as store:
        for label, train_seed, split_seed in (("a", 0, 0), ("b", 5, 0), ("c", 0, 5)):
            config = AmploopConfig(
                model=ModelConfig(name=f"small-{label}"),
                data={"split_seed": split_seed},
                train=TrainConfig(seed=train_seed, epochs=2, precision="fp32"),
            )
            fingerprints[label] = amploop.train_version(config, dataset=dataset, store=store).data["test"]
    assert fingerprints["a"] == fingerprints["b"]  # --seed alone: the same test rows
    assert fingerprints["a"] != fingerprints["c"]  # --split-seed: other test rows


def test_width_depth_and_dropout_flags_size_the_model_and_findings_and_notes_are_printed(tmp_path):
    csv = tmp_path / "small.csv"
    _table(409).to_csv(csv, index=False)
    home = tmp_path / "home"
    args = ["train", "--dataset", str(csv), "--target", "y", "--precision", "fp32"]
    done = _cli(home, *args, "--width", "24", "--depth", "3", "--dropout", "0.1")
    assert done.returncode == 0, done.stderr
    assert "trained " in done.stdout and "steps on" in done.stdout  # the run's summary line
    assert "batch size 256 capped" in done.stdout
    assert "data findings (not blocking):" in done.stdout and "email" in done.stdout
    with Store.open(Workspace.from_env({"AMPLOOP_HOME": str(home)})) as store:
        _, bundle = load_model_bundle(store, "small", 1)
    assert bundle.options == {"hidden": [24, 24, 24], "dropout": 0.1}
    hidden = [w for k, w in bundle.weights.items() if k.endswith("weight") and w.dim() == 2]
    assert sorted(w.shape[0] for w in hidden) == [2, 24, 24, 24]  # three hidden layers of 24, two classes out


def test_exclusions_are_separate_and_counted(tmp_path):
    table = _table(400)
    table.loc[:29, "x0"] = 1e6  # thirty far outliers in a continuous column
    csv = tmp_path / "odd.csv"
    table.to_csv(csv, index=False)
    home = tmp_path / "home"
    base = ["train", "--dataset", str(csv), "--target", "y", "--precision", "fp32", "--epochs", "2", "--json"]
    only_outliers = json.loads(_cli(home, *base, "--exclude-outliers").stdout)
    assert only_outliers["excluded_rows"]["label_issues"] == 0
    assert only_outliers["excluded_rows"]["outliers"] >= 30
    plain = json.loads(_cli(home, *base).stdout)
    assert plain["excluded_rows"] == {"label_issues": 0, "outliers": 0}


def test_resume_after_a_finished_run_names_its_version_and_registers_nothing(tmp_path):
    csv = tmp_path / "small.csv"
    _table(200).to_csv(csv, index=False)
    home = tmp_path / "home"
    args = ["train", "--dataset", str(csv), "--target", "y", "--precision", "fp32", "--epochs", "2"]
    assert _cli(home, *args).returncode == 0
    again = _cli(home, *args, "--resume")
    assert again.returncode == 7, again.stderr  # a training error, one line
    assert "already finished" in again.stderr and "small:1" in again.stderr
    assert "Traceback" not in again.stderr
    with Store.open(Workspace.from_env({"AMPLOOP_HOME": str(home)})) as store:
        assert [v.version for v in store.list_model_versions("small")] == [1]


def test_resume_that_asks_for_a_longer_run_goes_on_training(tmp_path):
    csv = tmp_path / "small.csv"
    _table(200).to_csv(csv, index=False)
    home = tmp_path / "home"
    args = ["train", "--dataset", str(csv), "--target", "y", "--precision", "fp32"]
    assert _cli(home, *args, "--epochs", "2").returncode == 0
    longer = _cli(home, *args, "--epochs", "3", "--resume", "--json")
    assert longer.returncode == 0, longer.stderr
    out = json.loads(longer.stdout)
    assert out["model"]["version"] == 2 and out["train"]["resumed_from_step"] > 0
    assert out["train"]["epochs_run"] == 3
