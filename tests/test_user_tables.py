"""A user's own CSV tables through the whole command line, as real processes of the ``amploop`` CLI.

Each generated table (seeded; numeric only, categorical only, mixed, with an ID and a free-text
column; 2 and 10 classes; 100 to 100,000 rows) goes ``data check`` -> ``train`` -> ``evaluate``
-> ``models card`` -> ``models export --format onnx``, and the exported graph, run by onnxruntime,
must give the probabilities and labels that ``amploop.load_model`` gives. Every step must exit 0
with no traceback. Malformed files must fail with one ``error:`` line, a non-zero exit code
that names the kind of error, and nothing registered. Every step runs with its defaults (no
``--epochs`` or ``--max-steps``), the 100,000-row table included.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from amploop.errors import DataError, SchemaError

pytestmark = pytest.mark.slow  # real CLI processes that train: about 3 s of start-up per command

AMPLOOP = str(Path(sys.executable).with_name("amploop"))
INTERNAL_ERROR_EXIT = 1  # amploop's own bug: "internal error (...)"


def cli(workdir: Path, *args: str, timeout: float = 600) -> subprocess.CompletedProcess:
    """Run the CLI as a user would, in ``workdir``, with the workspace in ``workdir/.amploop``."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("AMPLOOP_")}
    env["AMPLOOP_HOME"] = str(workdir / ".amploop")
    return subprocess.run([AMPLOOP, *args], capture_output=True, text=True, env=env, cwd=workdir, timeout=timeout)


def succeeded(done: subprocess.CompletedProcess) -> subprocess.CompletedProcess:
    command = " ".join(done.args[1:])
    assert "Traceback" not in done.stderr, f"`amploop {command}` printed a traceback:\n{done.stderr[-3000:]}"
    assert done.returncode == 0, f"`amploop {command}` exited {done.returncode}: {done.stderr[-2000:]}"
    return done


def refused(done: subprocess.CompletedProcess) -> str:
    """The one error line of a command that failed as it should: known exit code, no traceback."""
    command = " ".join(done.args[1:])
    assert "Traceback" not in done.stderr, f"`amploop {command}` printed a traceback:\n{done.stderr[-3000:]}"
    assert done.returncode not in (0, INTERNAL_ERROR_EXIT), f"`amploop {command}`: {done.returncode} {done.stderr}"
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: "), f"`amploop {command}` stderr: {done.stderr!r}"
    return lines[0]


# -- generated tables -------------------------------------------------------------------------


def _labels(score: np.ndarray, classes: int, rng: np.random.Generator, integer: bool) -> list:
    """Classes by quantile of a noisy score: learnable, roughly balanced."""
    noisy = score + rng.normal(0, 0.3 * score.std(), len(score))
    bins = np.quantile(noisy, np.linspace(0, 1, classes + 1)[1:-1])
    index = np.searchsorted(bins, noisy)
    if integer:
        return index.tolist()
    return np.array(["no", "yes"], dtype=object)[index].tolist() if classes == 2 else [f"class_{i}" for i in index]


def make_table(shape: str, rows: int, classes: int, seed: int = 0) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    columns: dict[str, object] = {}
    score = np.zeros(rows)
    if shape in ("numeric", "mixed", "text_and_id"):
        for i, weight in enumerate((1.5, -1.0, 0.5)):
            values = rng.normal(10 * i, 1 + i, rows)
            columns[f"x{i}"] = values.round(4)
            score += weight * (values - 10 * i) / (1 + i)
    if shape in ("categorical", "mixed", "text_and_id"):
        for name, levels in (("colour", 6), ("size", 4), ("city", 12)):
            effect = rng.normal(0, 1, levels)
            picks = rng.integers(0, levels, rows)
            columns[name] = np.array([f"{name}_{k}" for k in range(levels)], dtype=object)[picks]
            score += effect[picks]
    if shape == "mixed":  # a few missing categories, as real exports have
        columns["colour"][rng.random(rows) < 0.02] = None
    if shape == "text_and_id":
        columns = {"customer_id": [f"CUST-{i:07d}" for i in rng.permutation(rows)], **columns}
        words = np.array(["late", "order", "refund", "great", "slow", "fast", "broken", "box", "price", "kind", "lost"])
        columns["comment"] = [" ".join(rng.choice(words, rng.integers(3, 9))) for _ in range(rows)]
    table = pd.DataFrame(columns)
    table["y"] = _labels(score, classes, rng, integer=shape == "numeric")
    return table


SHAPES = [
    pytest.param("numeric", 100, 2, id="numeric-100x2"),
    pytest.param("categorical", 2_000, 10, id="categorical-2000x10"),
    pytest.param("text_and_id", 500, 10, id="text_and_id-500x10"),
    pytest.param("mixed", 100_000, 2, id="mixed-100000x2"),  # default settings too: about 40 s in all
]


@pytest.mark.parametrize(("shape", "rows", "classes"), SHAPES)
def test_a_users_table_goes_through_the_whole_command_line(tmp_path, shape, rows, classes):
    import onnxruntime

    import amploop
    from amploop.registry import Store
    from amploop.workspace import Workspace

    table = make_table(shape, rows, classes)
    data = tmp_path / f"{shape}.csv"
    table.to_csv(data, index=False)
    name = f"{shape}-{rows}"

    succeeded(cli(tmp_path, "data", "check", str(data), "--target", "y"))  # exit 0: nothing blocks training
    train = cli(tmp_path, "train", "--dataset", str(data), "--target", "y", "--name", name, "--json")
    trained = json.loads(succeeded(train).stdout)
    assert (trained["model"]["name"], trained["model"]["version"]) == (name, 1)
    evaluated = json.loads(succeeded(cli(tmp_path, "evaluate", name, "--json")).stdout)
    assert evaluated["model"] == {"name": name, "version": 1}
    assert evaluated["dataset"]["rows"] == round(0.2 * rows)  # the held-out rows, rebuilt
    assert evaluated["metrics"]["accuracy"] > 1 / classes + 0.1, evaluated["metrics"]  # it learned the signal
    card = succeeded(cli(tmp_path, "models", "card", f"{name}:1")).stdout
    assert f"{name} version 1" in card
    exported = json.loads(
        succeeded(cli(tmp_path, "models", "export", f"{name}:1", "--format", "onnx", "--json")).stdout
    )

    features = table.drop(columns=["y"]).head(2_000)
    with Store.open(Workspace.from_env({"AMPLOOP_HOME": str(tmp_path / ".amploop")})) as store:
        model = amploop.load_model(f"{name}:1", store=store)
    expected = model.predict_outputs(features)
    batch = model.encoder_.transform(features)
    session = onnxruntime.InferenceSession(Path(exported["uri"]).read_bytes(), providers=["CPUExecutionProvider"])
    encoded = {"numeric": batch.numeric.astype(np.float32), "categorical": batch.categorical.astype(np.int64)}
    inputs = {i.name: encoded[i.name] for i in session.get_inputs()}
    got = session.run(["probabilities"], inputs)[0]
    assert got.shape == (len(features), classes)
    np.testing.assert_allclose(got, expected, atol=1e-4)
    top_two = np.sort(got, axis=1)[:, -2:]
    clear = top_two[:, 1] - top_two[:, 0] > 1e-3  # a near-tie may fall either way within the tolerance
    from_onnx = np.asarray(model.bundle.classes, dtype=object)[got.argmax(axis=1)]
    assert from_onnx[clear].tolist() == np.asarray(model.predict(features), dtype=object)[clear].tolist()


# -- malformed files --------------------------------------------------------------------------


def test_malformed_files_fail_with_one_line_and_register_nothing(tmp_path):
    good = make_table("mixed", 200, 2)
    files = {
        "wrong_target.csv": (good.rename(columns={"y": "label"}).to_csv(index=False), SchemaError, "'y' is not in"),
        "empty.csv": ("", DataError, "is empty"),
        "header_only.csv": ("x0,colour,y\n", DataError, "has a header but no rows"),
        "ragged.csv": ("x0,colour,y\n1.0,red,yes\n2.0,blue,no,extra\n3.0,red,yes\n", DataError, "line 3"),
    }
    for file, (text, error, message) in files.items():
        (tmp_path / file).write_text(text)
        path = str(tmp_path / file)
        for args in (
            ("data", "check", path, "--target", "y"),
            ("train", "--dataset", path, "--target", "y", "--name", "bad"),
        ):
            done = cli(tmp_path, *args)
            line = refused(done)
            assert done.returncode == error.exit_code, f"{file}: {line}"
            assert message in line, f"{file}: {line}"
    listed = json.loads(succeeded(cli(tmp_path, "models", "list", "--json")).stdout)
    assert listed["models"] == []
