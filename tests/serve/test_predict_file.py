"""`amploop predict` and predict_file as a user runs them: a model trained once on a small table with an ID."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

import amploop
from amploop import AmploopConfig, ModelConfig, Store, TrainConfig
from amploop.errors import DataError, SchemaError, UsageError
from amploop.serve.predict import predict_file
from amploop.workspace import Workspace

AMPLOOP = str(Path(sys.executable).with_name("amploop"))
CHUNK = 37  # small, so a 300-row file is read in 9 chunks


def _table(rows: int, seed: int) -> pd.DataFrame:
    """Two numbers, a colour and a text ID; the label follows a and the colour."""
    rng = np.random.default_rng(seed)
    a, b = rng.normal(size=rows), rng.normal(size=rows).round(3)
    colour = rng.choice(["red", "green", "blue"], rows)
    label = np.where(a + 1.5 * (colour == "red") + 0.3 * rng.normal(size=rows) > 0.5, "yes", "no")
    ids = [f"c{i:05d}" for i in rng.permutation(rows)]  # shuffled: output order must follow the file, not the IDs
    return pd.DataFrame({"id": ids, "a": a, "b": b, "colour": colour, "y": label})


def _cli(home: Path, *args: str) -> subprocess.CompletedProcess:
    env = {k: v for k, v in os.environ.items() if not k.startswith("AMPLOOP_")}
    env.update(AMPLOOP_HOME=str(home), OMP_NUM_THREADS="1")
    return subprocess.run([AMPLOOP, *args], capture_output=True, text=True, env=env, cwd=home.parent, timeout=300)


@pytest.fixture(scope="module")
def home(tmp_path_factory) -> Path:
    """A SQLite workspace (as the sqlite_workspace fixture makes, once per module) holding toy:1."""
    root = tmp_path_factory.mktemp("predict")
    _table(500, seed=0).to_csv(root / "train.csv", index=False)
    config = AmploopConfig(
        data={"target": "y"},
        model=ModelConfig(name="toy"),
        train=TrainConfig(epochs=2, batch_size=64, precision="fp32", device="cpu"),
    )
    with Store.open(Workspace.from_env({"AMPLOOP_HOME": str(root / ".amploop")})) as store:
        assert amploop.train_version(config, dataset=str(root / "train.csv"), store=store).reference == "toy:1"
    return root / ".amploop"


@pytest.fixture
def store(home):
    with Store.open(Workspace.from_env({"AMPLOOP_HOME": str(home)})) as opened:
        yield opened


def _probabilities(frame: pd.DataFrame) -> np.ndarray:
    return frame[["probability_no", "probability_yes"]].to_numpy()


def test_a_csv_in_chunks_scores_every_row_in_file_order_as_the_python_api_does(home, store, tmp_path):
    rows = _table(300, seed=1)
    rows.to_csv(tmp_path / "rows.csv", index=False)
    done = _cli(
        home,
        "predict",
        "toy",
        str(tmp_path / "rows.csv"),
        "--output",
        str(tmp_path / "scores.csv"),
        "--chunk-rows",
        str(CHUNK),
        "--keep",
        "id",
        "--json",
    )
    assert done.returncode == 0, done.stderr
    result = json.loads(done.stdout)
    assert (result["rows"], result["chunks"], result["model_version"]) == (300, 9, "toy:1")
    assert result["columns"] == ["id", "prediction", "probability_no", "probability_yes", "confidence", "model_version"]
    scores = pd.read_csv(tmp_path / "scores.csv")
    assert scores["id"].tolist() == rows["id"].tolist()
    predictor = amploop.load_model("toy:1", store=store)
    expected = predictor.predict_outputs(pd.read_csv(tmp_path / "rows.csv"))
    # the model answers in float32; the CSV holds each value's shortest float32 text, which reads back exactly
    assert np.array_equal(_probabilities(scores).astype(np.float32), expected)
    assert scores["prediction"].tolist() == predictor.predict(rows)
    assert np.array_equal(scores["confidence"].to_numpy().astype(np.float32), expected.max(axis=1))
    assert set(scores["model_version"]) == {"toy:1"}
    assert sorted(p.name for p in tmp_path.iterdir()) == ["rows.csv", "scores.csv"]


def test_parquet_in_parquet_out_with_progress_against_the_files_row_count(store, tmp_path):
    rows = _table(200, seed=2)
    rows.to_parquet(tmp_path / "rows.parquet")
    seen: list[tuple[int, int | None]] = []
    result = predict_file(
        "toy:1",
        tmp_path / "rows.parquet",
        tmp_path / "scores.parquet",
        store=store,
        chunk_rows=64,
        keep_columns=["id", "y"],
        progress=lambda done, total: seen.append((done, total)),
    )
    assert (result.rows, result.chunks) == (200, 4)
    assert seen == [(0, 200), (64, 200), (128, 200), (192, 200), (200, 200)]
    scores = pd.read_parquet(tmp_path / "scores.parquet")
    assert scores["id"].tolist() == rows["id"].tolist() and scores["y"].tolist() == rows["y"].tolist()
    expected = amploop.load_model("toy:1", store=store).predict_outputs(rows)
    assert np.array_equal(_probabilities(scores), expected)


def test_a_missing_column_is_named_before_anything_is_written(home, tmp_path):
    _table(50, seed=3).rename(columns={"colour": "color"}).to_csv(tmp_path / "rows.csv", index=False)
    done = _cli(home, "predict", "toy:1", str(tmp_path / "rows.csv"), "--output", str(tmp_path / "scores.csv"))
    assert done.returncode == SchemaError.exit_code
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1 and "missing column(s) 'colour' (the file has 'color')" in lines[0], done.stderr
    assert sorted(p.name for p in tmp_path.iterdir()) == ["rows.csv"]  # no output, no temporary file


def test_a_bad_value_in_the_third_chunk_names_its_file_row_and_leaves_the_old_output_untouched(home, tmp_path):
    rows = _table(300, seed=4).astype({"a": object})
    rows.loc[80, "a"] = "n/a?"  # row 80 lies in the third chunk of 37 rows (74..110)
    rows.to_csv(tmp_path / "rows.csv", index=False)
    (tmp_path / "scores.csv").write_bytes(b"yesterday's scores\n")
    done = _cli(
        home,
        "predict",
        "toy:1",
        str(tmp_path / "rows.csv"),
        "-o",
        str(tmp_path / "scores.csv"),
        "--chunk-rows",
        str(CHUNK),
    )
    assert done.returncode == SchemaError.exit_code
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1 and "column 'a' row 80: 'n/a?' is not a number" in lines[0], done.stderr
    assert (tmp_path / "scores.csv").read_bytes() == b"yesterday's scores\n"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["rows.csv", "scores.csv"]


def test_unknown_extensions_and_overwriting_the_input_are_refused(store, tmp_path):
    _table(20, seed=5).to_csv(tmp_path / "rows.csv", index=False)
    (tmp_path / "rows.json").write_text("[]")
    with pytest.raises(UsageError, match=r"rows.json: amploop predict reads .csv, .csv.gz, .tsv, .parquet, .pq"):
        predict_file("toy:1", tmp_path / "rows.json", tmp_path / "scores.csv", store=store)
    with pytest.raises(UsageError, match=r"scores.xlsx: amploop predict writes .csv, .parquet, .pq"):
        predict_file("toy:1", tmp_path / "rows.csv", tmp_path / "scores.xlsx", store=store)
    with pytest.raises(UsageError, match="would overwrite the file being scored"):
        predict_file("toy:1", tmp_path / "rows.csv", tmp_path / "." / "rows.csv", store=store)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["rows.csv", "rows.json"]


def test_a_header_only_file_gives_a_header_only_output(store, tmp_path):
    _table(10, seed=6).head(0).to_csv(tmp_path / "rows.csv", index=False)
    result = predict_file("toy:1", tmp_path / "rows.csv", tmp_path / "scores.csv", store=store, keep_columns=["id"])
    assert (result.rows, result.chunks) == (0, 1)
    assert (tmp_path / "scores.csv").read_text().splitlines() == [
        '"id","prediction","probability_no","probability_yes","confidence","model_version"'
    ]


def test_a_ragged_line_is_named_by_its_line_rather_than_shifted_into_other_columns(store, tmp_path):
    lines = _table(60, seed=7).to_csv(index=False).splitlines()
    lines[45] = lines[45].replace(",", ",1,5,", 1)  # an unquoted "1,5": one field too many
    (tmp_path / "rows.csv").write_text("\n".join(lines) + "\n")
    with pytest.raises(DataError, match=r"rows.csv line 46: expected 5 fields, saw 7"):
        predict_file("toy:1", tmp_path / "rows.csv", tmp_path / "scores.csv", store=store, chunk_rows=CHUNK)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["rows.csv"]


def test_a_parquet_batch_names_the_files_row_too(store, tmp_path):
    rows = _table(200, seed=8)
    rows["a"] = rows["a"].map(repr)  # a column of numbers exported as text: readable, but for row 150
    rows.loc[150, "a"] = "unknown"  # in the third batch of 64 rows (128..191)
    rows.to_parquet(tmp_path / "rows.parquet")
    with pytest.raises(SchemaError, match=r"column 'a' row 150: 'unknown' is not a number"):
        predict_file("toy:1", tmp_path / "rows.parquet", tmp_path / "scores.parquet", store=store, chunk_rows=64)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["rows.parquet"]
