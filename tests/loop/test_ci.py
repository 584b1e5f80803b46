"""`amploop ci` as a CI system runs it: a separate process, its lines, its exit code, and what the store holds after."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import yaml

import amploop
from amploop.config import AmploopConfig
from amploop.errors import GateFailed, UsageError
from amploop.loop.ci import CiStage, run_ci
from amploop.registry import Store
from amploop.registry.aliases import alias_history
from amploop.workspace import Workspace
from tests.conftest import worker_env
from tests.serve.conftest import MODEL, plants_table

SETTINGS = {
    "data": {"target": "kind"},
    "model": {"name": MODEL},
    "train": {"epochs": 4, "batch_size": 32, "learning_rate": 0.01, "precision": "fp32"},
    "evaluate": {"robustness": False, "bootstrap_samples": 100},
}
STAGES = ["data", "train", "evaluate", "gate"]
IMPOSSIBLE_GATE = [{"metric": "accuracy", "min": 0.999}]


def workspace_in(tmp_path: Path) -> Workspace:
    return Workspace.from_env({"AMPLOOP_HOME": str(tmp_path / ".amploop")})


def write_settings(tmp_path: Path, **evaluate: object) -> Path:
    path = tmp_path / "amploop.yaml"
    path.write_text(yaml.safe_dump({**SETTINGS, "evaluate": {**SETTINGS["evaluate"], **evaluate}}))
    return path


def write_plants(tmp_path: Path, *, rows: int = 300, noise: float = 0.0) -> Path:
    """Three separable kinds of plant; ``noise`` is the share of rows given a random kind."""
    table = plants_table(rows, seed=5)
    rng = np.random.default_rng(6)
    flipped = rng.random(rows) < noise
    table.loc[flipped, "kind"] = rng.choice(["fern", "moss", "palm"], int(flipped.sum()))
    path = tmp_path / "plants.csv"
    table.to_csv(path, index=False)
    return path


def ci(ws: Workspace, settings: Path, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "amploop", "--config", str(settings), "ci", *args],
        env={**worker_env(ws), "COLUMNS": "200", "OMP_NUM_THREADS": "1"},  # no thread contention on small CPUs
        cwd=ws.home.parent,
        capture_output=True,
        text=True,
        timeout=300,
    )


def test_a_passing_run_registers_evaluates_and_promotes(tmp_path: Path):
    ws, data = workspace_in(tmp_path), write_plants(tmp_path)
    done = ci(ws, write_settings(tmp_path), "--dataset", str(data), "--promote", "champion", "--json")
    assert done.returncode == 0, done.stderr
    result = json.loads(done.stdout)  # exactly CiResult.to_dict()
    assert (result["model"], result["version"], result["passed"], result["exit_code"]) == (MODEL, 1, True, 0)
    assert result["promoted"] == "champion" and result["failed_rules"] == []
    assert [s["stage"] for s in result["stages"]] == STAGES and all(s["ok"] for s in result["stages"])
    assert result["stages"][1]["summary"].startswith("registered plants:1: test accuracy ")
    assert result["stages"][3]["summary"].endswith("; champion is now plants:1")
    with Store.open(ws) as store:
        assert [v.version for v in store.list_model_versions(MODEL)] == [1]
        assert [(e.id, e.passed) for e in store.list_evaluations(MODEL, 1)] == [(result["evaluation_id"], True)]
        assert store.alias_version(MODEL, "champion") == 1
        moves = alias_history(store, MODEL)
    assert [(m.alias, m.to_version, m.reason) for m in moves] == [("champion", 1, "ci: passed its release gate")]


def test_a_gate_that_cannot_pass_exits_9_with_one_line_and_moves_no_alias(tmp_path: Path):
    ws, data = workspace_in(tmp_path), write_plants(tmp_path, noise=0.3)
    done = ci(ws, write_settings(tmp_path, gate=IMPOSSIBLE_GATE), "--dataset", str(data), "--promote", "champion")
    assert done.returncode == GateFailed.exit_code == 9
    lines = done.stdout.splitlines()
    assert [line.split()[:2] for line in lines] == [["[ok]", stage] for stage in STAGES[:3]] + [["[FAIL]", "gate"]]
    assert lines[3].endswith("fail: accuracy (1 of 1 rule failed)")
    [line] = done.stderr.strip().splitlines()
    assert line.startswith("gate failed: plants:1: accuracy = ")
    assert line.endswith("misses >= 0.999: even the interval's upper end does")
    with Store.open(ws) as store:
        assert [v.version for v in store.list_model_versions(MODEL)] == [1]
        assert [e.passed for e in store.list_evaluations(MODEL, 1)] == [False]
        assert store.alias_version(MODEL, "champion") is None
        assert alias_history(store, MODEL) == []


def _without_target(path: Path) -> None:
    plants_table(200, seed=5).drop(columns=["kind"]).to_csv(path, index=False)


def _one_kind(path: Path) -> None:
    plants_table(200, seed=5).assign(kind="fern").to_csv(path, index=False)


def _not_a_table(path: Path) -> None:
    path.write_bytes(b"\x89PNG\r\n\x1a\n")


@pytest.mark.parametrize(
    ("file_name", "write", "exit_code", "message"),
    [
        ("plants.csv", _without_target, 5, "target column 'kind' is not in the data; columns: length, "),
        ("plants.csv", _one_kind, 6, "training refused: the target 'kind' has a single class ('fern')"),
        ("plants.png", _not_a_table, 4, "plants.png: unknown file type; amploop reads .csv"),
    ],
    ids=["target-missing", "blocking-finding", "not-a-table"],
)
def test_data_with_a_mistake_exits_with_its_code_and_registers_nothing(
    tmp_path: Path, file_name: str, write, exit_code: int, message: str
):
    ws, data = workspace_in(tmp_path), tmp_path / file_name
    write(data)
    done = ci(ws, write_settings(tmp_path), "--dataset", str(data), "--promote", "champion")
    assert done.returncode == exit_code, done.stderr
    [line] = done.stderr.strip().splitlines()
    assert line.startswith("error: ") and message in line
    assert done.stdout == ""
    with Store.open(ws) as store:
        assert store.list_model_versions() == [] and store.list_runs() == []


def test_a_malformed_alias_is_refused_before_anything_trains(sqlite_workspace: Workspace, tmp_path: Path):
    with Store.open(sqlite_workspace) as store:
        with pytest.raises(UsageError, match="alias 'the champion' is not valid") as raised:
            run_ci(
                AmploopConfig(**SETTINGS), dataset=str(write_plants(tmp_path)), store=store, promote_to="the champion"
            )
        assert raised.value.exit_code == 2
        assert store.list_model_versions() == [] and store.list_runs() == []


def test_run_ci_reports_each_stage_as_it_finishes_on_each_backend(workspace: Workspace, tmp_path: Path):
    config = AmploopConfig(**SETTINGS)
    seen: list[CiStage] = []
    with Store.open(workspace) as store:
        result = amploop.run_ci(
            config, dataset=str(write_plants(tmp_path)), store=store, promote_to="candidate", on_stage=seen.append
        )
        assert store.alias_version(MODEL, "candidate") == 1 and store.alias_version(MODEL, "champion") is None
    assert amploop.run_ci is run_ci and isinstance(result, amploop.CiResult)
    assert result.stages == tuple(seen) and [s.stage for s in seen] == STAGES
    assert (result.reference, result.passed, result.promoted, result.exit_code) == ("plants:1", True, "candidate", 0)
    assert seen[0].summary.startswith("300 rows: no blocking findings")
    assert result.to_dict()["stages"][3] == {
        "stage": "gate",
        "seconds": round(seen[3].seconds, 3),
        "ok": True,
        "summary": seen[3].summary,
    }
