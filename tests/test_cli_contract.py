"""The CLI's error contract, under generated input: names, references, flag values, broken files.

Whatever a user types, amploop answers with an exit code from the error table (never 1, which
is an internal error), one ``error:`` line on stderr and no traceback; under ``--json`` stdout
holds exactly one JSON object; and no file outside the workspace's own folders is touched
(sentinel files in AMPLOOP_HOME and in the working directory survive, and the working directory
holds the same files afterwards).

The commands run in this process through the real ``amploop`` command group (the same object
the ``amploop`` script calls), which keeps hundreds of generated cases fast.
"""

from __future__ import annotations

import json
import os
import string
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from typer.testing import CliRunner

from amploop.cli import app
from amploop.errors import UsageError

# Exit codes a user can cause (amploop.errors); 1 is an internal error, never expected here.
EXIT_CODES = {0, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14}
SENTINEL = "do not delete\n"
EXAMPLES = settings(
    max_examples=int(os.environ.get("AMPLOOP_CONTRACT_EXAMPLES", "25")),
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
    derandomize=True,
)

NASTY_NAMES = [
    "..",
    ".",
    "../..",
    "/",
    "/tmp",
    "~",
    "a/b",
    "../x",
    ".hidden",
    "-rf",
    "-x",
    "x" * 129,
    "x" * 300,
    "",
    " ",
    "a b",
    "名前",
    "adult\n",
    "con",
    "a" * 128,
]
names = st.one_of(
    st.sampled_from(NASTY_NAMES),
    st.text(
        alphabet=st.characters(blacklist_categories=("Cs",), blacklist_characters="\x00"),
        min_size=0,
        max_size=40,
    ),
    st.text(alphabet=string.ascii_letters + string.digits + "._-/", min_size=1, max_size=12),
)
references = st.one_of(
    names,
    st.builds(lambda n, v: f"{n}:{v}", names, st.one_of(st.integers(-5, 10**22).map(str), names)),
    st.builds(lambda n, a: f"{n}@{a}", names, names),
    st.sampled_from(["adult:99999999999999999999", "adult:0", "adult:-1", "adult@", ":1", "@champion", "a:1:2"]),
)


class Workspace:
    """A working directory and AMPLOOP_HOME, each with a sentinel file, and a small table to train on."""

    def __init__(self, root: Path) -> None:
        self.cwd = root / "project"
        self.home = self.cwd / ".amploop"
        self.cwd.mkdir(parents=True)
        self.home.mkdir()
        (self.cwd / "sentinel.txt").write_text(SENTINEL)
        (self.home / "sentinel.txt").write_text(SENTINEL)
        rng = np.random.default_rng(0)
        x = rng.normal(size=(240, 3))
        table = pd.DataFrame(x, columns=["a", "b", "c"])
        table["y"] = np.where(x[:, 0] + 0.5 * x[:, 1] > 0, "yes", "no")
        table.to_csv(self.cwd / "small.csv", index=False)
        self.inputs = {p.name for p in self.cwd.iterdir()}
        self.runner = CliRunner()

    def invoke(self, args: list[str], env: dict[str, str] | None = None):
        environ = {k: None for k in os.environ if k.startswith("AMPLOOP_")}
        environ.update({"AMPLOOP_HOME": str(self.home), "COLUMNS": "120", **(env or {})})
        before = os.getcwd()
        os.chdir(self.cwd)
        try:
            result = self.runner.invoke(app, args, env=environ, catch_exceptions=True)
        finally:
            os.chdir(before)
        self.check(args, result)
        return result

    def check(self, args: list[str], result) -> None:
        shown = f"amploop {' '.join(map(repr, args))}\nstdout: {result.stdout[-2000:]}\nstderr: {result.stderr[-2000:]}"
        assert result.exception is None or isinstance(result.exception, SystemExit), shown
        assert result.exit_code in EXIT_CODES, shown
        assert "Traceback" not in result.stdout + result.stderr, shown
        if result.exit_code != 0:
            lines = [line for line in result.stderr.splitlines() if line.strip()]
            assert len(lines) == 1 and lines[0].startswith("error: "), shown
        if "--json" in args:
            obj = json.loads(result.stdout)  # exactly one JSON document ...
            assert isinstance(obj, dict), shown  # ... and it is an object
            assert obj.get("error") != "InternalError", shown
            if result.exit_code != 0 and "findings" not in obj:  # `data check` answers with its report
                assert obj["error"] and obj["message"], shown
        assert (self.cwd / "sentinel.txt").read_text() == SENTINEL, shown
        assert (self.home / "sentinel.txt").read_text() == SENTINEL, shown
        created = {p.name for p in self.cwd.iterdir()} - self.inputs - {".amploop"}
        assert not created, f"{shown}\nnew files in the working directory: {created}"


@pytest.fixture(scope="module")
def workspace(tmp_path_factory) -> Workspace:
    return Workspace(tmp_path_factory.mktemp("contract"))


TRAIN = ["train", "--dataset", "small.csv", "--target", "y", "--epochs", "1", "--batch-size", "32", "--max-steps", "2"]


@EXAMPLES
@given(name=names, as_json=st.booleans())
def test_generated_model_names_never_escape_the_workspace(workspace, name, as_json):
    args = [*TRAIN, "--name", name] + (["--json"] if as_json else [])
    result = workspace.invoke(args)
    from amploop.names import is_valid_name

    if is_valid_name(name):
        assert result.exit_code == 0, result.stderr
    else:
        assert result.exit_code in (2, 3), result.stderr
    result = workspace.invoke([*TRAIN, "--json"], env={"AMPLOOP_MODEL__NAME": name})
    assert (result.exit_code == 0) == is_valid_name(name), result.stderr


@EXAMPLES
@given(ref=references, command=st.sampled_from(["show", "promote", "lineage", "card", "evaluate", "history"]))
def test_generated_references_get_a_usage_or_not_found_answer(workspace, ref, command):
    if command == "promote":
        args = ["models", "promote", ref, "--reason", "generated", "--json"]
    elif command == "evaluate":
        args = ["evaluate", ref, "--json"]
    else:
        args = ["models", command, ref, "--json"]
    result = workspace.invoke(args)
    assert result.exit_code != 0 or command in ("show", "lineage", "card", "history", "evaluate")


flag_values = st.one_of(
    st.integers(min_value=-(10**30), max_value=10**30).map(str),
    st.floats(allow_nan=True, allow_infinity=True).map(str),
    st.text(max_size=20),
    st.sampled_from(["0", "-1", "abc", "quantum", "cuda:99999", "1:0", "nan", "1e400", "", " "]),
)


@EXAMPLES
@given(
    flag=st.sampled_from(
        ["--seed", "--epochs", "--batch-size", "--learning-rate", "--device", "--nnodes", "--precision", "--compile"]
        + ["--max-steps", "--checkpoint-every", "--nproc-per-node", "--max-restarts", "--model"]
    ),
    value=flag_values,
)
def test_generated_flag_values_on_train(workspace, flag, value):
    workspace.invoke([*TRAIN, flag, value, "--json"])


@EXAMPLES
@given(
    flag=st.sampled_from(["--epochs", "--batch-size", "--seed", "--device", "--modes", "--learning-rate"]),
    value=flag_values,
)
def test_generated_flag_values_on_bench_precision(workspace, flag, value):
    args = ["bench", "precision", "--dataset", "small.csv", "--model", "mlp", "--epochs", "1", "--batch-size", "64"]
    workspace.invoke([*args, flag, value, "--json"])


def _csv_cases(rng: np.random.Generator) -> dict[str, bytes]:
    return {
        "ragged": b"a,b,y\n1,2,no\n3,4,5,yes\n",
        "header only": b"a,b,y\n",
        "empty": b"",
        "not utf-8": b"a,b,y\n1,2,no\n" + b"3,\xff\xfe,yes\n" * 3,
        "all-missing column": b"a,b,y\n" + b"1,,no\n2,,yes\n" * 40,
        "one class": b"a,b,y\n" + b"".join(f"{i},{i % 7},yes\n".encode() for i in range(80)),
        "missing labels": b"a,b,y\n" + b"".join(f"{i},{i % 7},{'yes' if i % 3 else ''}\n".encode() for i in range(90)),
        "infinities": b"a,b,y\n" + b"".join(f"{i},{'inf' if i % 9 == 0 else i},{i % 2}\n".encode() for i in range(90)),
        "overflow": b"a,b,y\n" + b"".join(f"{i},{'1e308' if i % 5 == 0 else i},{i % 2}\n".encode() for i in range(90)),
        "unbalanced quote": b'a,b,y\n1,"2,no\n3,4,yes\n',
        "empty header names": b",,y\n1,2,no\n3,4,yes\n",
        "no target column": b"a,b\n1,2\n3,4\n",
        "random bytes": rng.bytes(200),
    }


def _parquet_bytes(table: pa.Table) -> bytes:
    sink = pa.BufferOutputStream()
    pq.write_table(table, sink)
    return sink.getvalue().to_pybytes()


def _npy_bytes(array: np.ndarray, **arrays: np.ndarray) -> bytes:
    import io

    buffer = io.BytesIO()
    if arrays:
        np.savez(buffer, **arrays)
    else:
        np.save(buffer, array, allow_pickle=True)
    return buffer.getvalue()


def _binary_cases(rng: np.random.Generator) -> dict[str, tuple[str, bytes]]:
    labels = np.array([0, 1] * 30)
    return {
        "nested parquet": (
            ".parquet",
            _parquet_bytes(pa.table({"a": [[1, 2], [3], [4, 5]] * 20, "y": [0, 1, 0] * 20})),
        ),
        "struct parquet": (".parquet", _parquet_bytes(pa.table({"s": [{"u": 1}, {"u": 2}] * 20, "y": [0, 1] * 20}))),
        "empty parquet": (".parquet", _parquet_bytes(pa.table({"a": pa.array([], pa.float64()), "y": []}))),
        "random parquet": (".parquet", rng.bytes(300)),
        "object npy": (".npy", _npy_bytes(np.array([{"a": 1}, None], dtype=object))),
        "1-d npy": (".npy", _npy_bytes(np.arange(10.0))),
        "object npz": (".npz", _npy_bytes(None, X=np.array([[1, "a"], [2, None]], dtype=object), y=np.array([0, 1]))),
        "npz without X": (".npz", _npy_bytes(None, features=rng.normal(size=(60, 2)), y=labels)),
        "npz label count": (".npz", _npy_bytes(None, X=rng.normal(size=(60, 2)), y=labels[:10])),
        "npz one class": (".npz", _npy_bytes(None, X=rng.normal(size=(60, 2)), y=np.zeros(60, dtype=int))),
        "npz with inf": (".npz", _npy_bytes(None, X=np.full((60, 2), np.inf), y=labels)),
        "random npz": (".npz", rng.bytes(300)),
        "random npy": (".npy", rng.bytes(300)),
    }


CASES = sorted(_csv_cases(np.random.default_rng(0))) + sorted(_binary_cases(np.random.default_rng(0)))


@EXAMPLES
@given(
    case=st.sampled_from(CASES),
    suffix=st.sampled_from([".csv", ".tsv", ".csv.gz"]),
    command=st.sampled_from(["show", "check", "train", "datasheet"]),
    target=st.sampled_from(["y", "target", "nope", None]),
    as_json=st.booleans(),
)
def test_malformed_files_of_every_format(workspace, tmp_path_factory, case, suffix, command, target, as_json):
    rng = np.random.default_rng(1)
    binary = _binary_cases(rng)
    if case in binary:
        suffix, data = binary[case]
    else:
        data = _csv_cases(rng)[case]
        if suffix == ".tsv":
            data = data.replace(b",", b"\t")
        elif suffix == ".csv.gz":
            import gzip

            data = gzip.compress(data) if case != "random bytes" else data
    path = tmp_path_factory.mktemp("files") / f"case{suffix}"
    path.write_bytes(data)
    targets = ["--target", target] if target else []
    if command == "train":
        args = ["train", "--dataset", str(path), *targets, "--epochs", "1", "--max-steps", "1"]
    elif command == "datasheet":
        args = ["data", "datasheet", str(path), *targets, "--output", str(path.with_name("sheet.md"))]
    else:
        args = ["data", command, str(path), *targets]
    workspace.invoke(args + (["--json"] if as_json else []))


@EXAMPLES
@given(value=st.text(max_size=30), field=st.sampled_from(["PROJECT__NAME", "TRAIN__EPOCHS", "TRAIN__DEVICE"]))
def test_generated_environment_overrides(workspace, value, field):
    if "\x00" in value:
        return  # the environment cannot hold it
    workspace.invoke(["config", "show", "--json"], env={f"AMPLOOP_{field}": value})


def test_usage_errors_are_one_json_object_too(workspace):
    result = workspace.invoke(["train", "--no-such-flag", "--json"])
    assert result.exit_code == UsageError.exit_code
    assert json.loads(result.stdout)["error"] == "UsageError"
    result = workspace.invoke(["models", "show", "--json"])  # a missing argument
    assert result.exit_code == UsageError.exit_code and "Missing argument" in json.loads(result.stdout)["message"]
