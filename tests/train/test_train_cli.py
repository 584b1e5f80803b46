"""`amploop train` as users run it: real processes, real torch steps, real torchrun (gloo on CPU)."""

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from safetensors.torch import load as load_safetensors

from amploop.errors import ConfigError, DataError
from amploop.registry import Store
from amploop.train.precision import resolve_precision
from amploop.workspace import Workspace

AMPLOOP = str(Path(sys.executable).with_name("amploop"))
TOLERANCE = 1e-5
ADULT_FP32 = [
    "--dataset",
    "adult",
    "--model",
    "mlp",
    "--precision",
    "fp32",
]  # loss curves of 1 and 2 processes agree to float32 rounding


def _env(home: Path) -> dict[str, str]:
    # No GIT_* variables: the code version amploop records must come from the working folder alone.
    env = {k: v for k, v in os.environ.items() if not k.startswith(("AMPLOOP_", "TORCHELASTIC_", "GIT_"))}
    env.update(AMPLOOP_HOME=str(home), OMP_NUM_THREADS="1")
    return env


def train(
    home: Path, *args: str, timeout: float = 300, cwd: Path | None = None, env: dict[str, str] | None = None
) -> subprocess.CompletedProcess:
    return subprocess.run(
        [AMPLOOP, "train", *args, "--json"],
        capture_output=True,
        text=True,
        env={**_env(home), **(env or {})},
        cwd=cwd or home.parent,
        timeout=timeout,
    )


def _git(repo: Path, *args: str) -> str:
    done = subprocess.run(
        [
            "git",
            "-c",
            "user.name=amploop test",
            "-c",
            "user.email=test@example.invalid",
            "-c",
            "commit.gpgsign=false",
            *args,
        ],
        cwd=repo,
        capture_output=True,
        text=True,
        env={k: v for k, v in os.environ.items() if not k.startswith("GIT_")},
        check=True,
    )
    return done.stdout.strip()


def _repo_with_one_commit(repo: Path) -> str:
    """A new git repository holding one committed file; returns the commit's full hash."""
    repo.mkdir(parents=True)
    _git(repo, "init", "--quiet")
    (repo / "train.txt").write_text("the code that was trained\n")
    _git(repo, "add", "train.txt")
    _git(repo, "commit", "--quiet", "-m", "the trained code")
    commit = _git(repo, "rev-parse", "HEAD")
    assert len(commit) == 40
    return commit


def _recorded_code_version(home: Path, run_id: str) -> dict:
    with Store.open(Workspace.from_env({"AMPLOOP_HOME": str(home)})) as store:
        return store.get_run(run_id).code_version


def _final_weights(home: Path) -> dict:
    with Store.open(Workspace.from_env({"AMPLOOP_HOME": str(home)})) as store:
        version = store.get_model_version("adult")
        return load_safetensors(store.load_model_files(version)["model.safetensors"])


def test_adult_mlp_auto_precision_three_epochs(tmp_path):
    commit = _repo_with_one_commit(tmp_path / "project")
    home = tmp_path / "h"
    result = train(
        home, "--dataset", "adult", "--model", "mlp", "--precision", "auto", "--epochs", "3", cwd=tmp_path / "project"
    )
    assert result.returncode == 0, result.stderr
    out = json.loads(result.stdout)
    assert out["model"] == {"name": "adult", "version": 1, "artifact_uri": out["model"]["artifact_uri"]}
    assert out["metrics"]["validation_accuracy"] >= 0.84 and out["metrics"]["test_accuracy"] >= 0.84
    # auto made the choice (and gave the reason) that this machine's device calls for
    by_device = resolve_precision("auto", out["precision"]["device_type"])
    if by_device.device_type == "cpu" and by_device.mode == "bf16":  # native bf16: a measured probe decides
        assert out["precision"]["mode"] in ("fp32", "bf16") and "measured on this model" in out["precision"]["reason"]
    else:
        assert out["precision"] == by_device.to_dict()
    assert out["samples_per_s"] > 0
    with Store.open(Workspace.from_env({"AMPLOOP_HOME": str(home)})) as store:
        run = store.get_run(out["run_id"])
        assert run.status == "finished" and run.metrics["precision_reason"] == out["precision"]["reason"]
        assert set(run.dataset_fingerprints) == {"source", "train", "validation", "test"}
        assert run.code_version == {"git_commit": commit, "dirty": False}  # the repository it was run in


def _tiny_csv(path: Path) -> Path:
    path.write_text("a,b,y\n" + "".join(f"{i},{(i * 7) % 13 * 0.5},{i % 2}\n" for i in range(200)))
    return path


@pytest.mark.parametrize("where", ["repository with uncommitted changes", "folder outside any repository"])
def test_the_code_version_of_the_working_folder_is_recorded_exactly(tmp_path, where):
    work = tmp_path / "work"
    if where == "folder outside any repository":
        work.mkdir()
        expected = {}
    else:
        commit = _repo_with_one_commit(work)
        (work / "train.txt").write_text("edited after the commit\n")
        expected = {"git_commit": commit, "dirty": True}
    csv = _tiny_csv(tmp_path / "d.csv")
    home = tmp_path / "h"
    # git must not find a repository above tmp_path (a checkout that happens to hold the temp folder)
    result = train(
        home,
        *("--dataset", str(csv), "--target", "y", "--epochs", "1", "--batch-size", "32", "--precision", "fp32"),
        cwd=work,
        env={"GIT_CEILING_DIRECTORIES": str(tmp_path)},
    )
    assert result.returncode == 0, result.stderr
    assert _recorded_code_version(home, json.loads(result.stdout)["run_id"]) == expected


def test_two_processes_match_one_process_with_the_same_global_batch(tmp_path):
    common = [*ADULT_FP32, "--epochs", "1", "--max-steps", "40"]
    ddp = train(tmp_path / "ddp", *common, "--batch-size", "128", "--nproc-per-node", "2", "--checkpoint-every", "10")
    single = train(tmp_path / "one", *common, "--batch-size", "256")
    assert ddp.returncode == 0, ddp.stderr[-3000:]
    assert single.returncode == 0, single.stderr[-3000:]
    a, b = json.loads(ddp.stdout), json.loads(single.stdout)  # one JSON document: only rank 0 printed
    assert a["train"]["world_size"] == 2 and b["train"]["world_size"] == 1
    assert len(a["train"]["loss_curve"]) == len(b["train"]["loss_curve"]) == 40
    diffs = [abs(x - y) for x, y in zip(a["train"]["loss_curve"], b["train"]["loss_curve"], strict=True)]
    assert max(diffs) <= TOLERANCE
    with Store.open(Workspace.from_env({"AMPLOOP_HOME": str(tmp_path / "ddp")})) as store:
        assert len(store.list_runs()) == 1 and len(store.list_model_versions()) == 1  # rank 0 only
    checkpoints = sorted(p.name for p in (tmp_path / "ddp" / "checkpoints" / "adult").iterdir())
    assert checkpoints == ["latest", "step-00000030", "step-00000040"]


def _wait_for_checkpoint(directory: Path, min_step: int, proc: subprocess.Popen, timeout: float = 120) -> None:
    deadline = time.time() + timeout
    while time.time() < deadline:
        latest = directory / "latest"
        if latest.exists() and int(latest.read_text().split("-")[1]) >= min_step:
            return
        if proc.poll() is not None:
            raise AssertionError(f"training ended before step {min_step}: {proc.stderr.read()[-2000:]}")
        time.sleep(0.01)
    raise AssertionError("no checkpoint in time")


def test_sigkill_then_resume_gives_the_weights_of_an_uninterrupted_run(tmp_path):
    args = [*ADULT_FP32, "--epochs", "2", "--batch-size", "128", "--checkpoint-every", "25"]
    home = tmp_path / "killed"
    proc = subprocess.Popen(
        [AMPLOOP, "train", *args, "--json"],
        env=_env(home),
        cwd=tmp_path,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    _wait_for_checkpoint(home / "checkpoints" / "adult", 275, proc)  # inside the second epoch
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    resumed = train(home, *args, "--resume")
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    assert json.loads(resumed.stdout)["train"]["resumed_from_step"] >= 275
    uninterrupted = train(tmp_path / "whole", *args)
    assert uninterrupted.returncode == 0
    a, b = _final_weights(home), _final_weights(tmp_path / "whole")
    assert a.keys() == b.keys()
    for key in a:
        assert (a[key] == b[key]).all(), key


def _worker_pid(home: Path, rank: int) -> int | None:
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            environ = (entry / "environ").read_bytes().split(b"\0")
        except OSError:
            continue
        if (
            f"AMPLOOP_HOME={home}".encode() in environ
            and f"RANK={rank}".encode() in environ
            and b"LOCAL_RANK=" + str(rank).encode() in environ
        ):
            return int(entry.name)
    return None


@pytest.mark.parametrize("max_restarts", [1, 0])
def test_a_rank_killed_under_torchrun(tmp_path, max_restarts):
    home = tmp_path / "h"
    args = [
        "train",
        *ADULT_FP32,
        "--epochs",
        "2",
        "--batch-size",
        "64",
        "--checkpoint-every",
        "20",
        "--nproc-per-node",
        "2",
        "--max-restarts",
        str(max_restarts),
        "--json",
    ]
    started = time.time()
    proc = subprocess.Popen(
        [AMPLOOP, *args],
        env=_env(home),
        cwd=tmp_path,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    _wait_for_checkpoint(home / "checkpoints" / "adult", 60, proc)
    pid = _worker_pid(home, 1)
    assert pid is not None
    os.kill(pid, signal.SIGKILL)
    stdout, stderr = proc.communicate(timeout=300)  # never a hang
    if max_restarts == 1:
        assert proc.returncode == 0, stderr[-3000:]
        out = json.loads(stdout)
        assert (
            out["train"]["resumed_from_step"] >= 60 and out["train"]["steps"] == 2 * 229
        )  # 229 steps per epoch: the last, short batch is kept
    else:
        assert proc.returncode != 0
        assert time.time() - started < 300


def test_nan_features_are_a_data_error_naming_the_columns(tmp_path):
    csv = tmp_path / "d.csv"
    rows = "\n".join(f"{i},{'' if i % 7 == 0 else i * 0.5},{i % 2}" for i in range(200))
    csv.write_text("a,b,y\n" + rows + "\n")
    result = train(tmp_path / "h", "--dataset", str(csv), "--target", "y", "--epochs", "1", "--batch-size", "32")
    assert result.returncode == DataError.exit_code
    assert "numeric feature columns: b" in result.stderr
    cfg = tmp_path / "amploop.yaml"
    cfg.write_text("data:\n  impute_missing: true\n")
    ok = subprocess.run(
        [
            AMPLOOP,
            "--config",
            str(cfg),
            "train",
            "--dataset",
            str(csv),
            "--target",
            "y",
            "--epochs",
            "1",
            "--batch-size",
            "32",
            "--json",
        ],
        capture_output=True,
        text=True,
        env=_env(tmp_path / "h"),
        timeout=300,
    )
    assert ok.returncode == 0, ok.stderr


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (
            ["--model", "transformerXL"],
            "unknown model 'transformerXL'; valid: mlp, tabular, cnn, resnet, gpt",
        ),
        (["--precision", "fp8"], "'auto', 'fp32', 'tf32', 'bf16' or 'fp16'"),
        (["--precision", "tf32", "--device", "cpu"], "tf32 exists only on CUDA GPUs"),
        (["--model", "cnn"], "'cnn' is for images"),
    ],
)
def test_bad_choices_are_config_errors_listing_valid_ones(tmp_path, args, message):
    result = train(tmp_path / "h", "--dataset", "adult", "--epochs", "1", *args)
    assert result.returncode == ConfigError.exit_code, result.stderr
    assert message in result.stderr
    with Store.open(Workspace.from_env({"AMPLOOP_HOME": str(tmp_path / "h")})) as store:
        assert store.list_model_versions() == []  # nothing half-registered


def test_unknown_dataset_is_a_config_error_listing_the_builtins(tmp_path):
    result = train(tmp_path / "h", "--dataset", "adlt", "--epochs", "1")
    assert result.returncode == ConfigError.exit_code
    assert "data.source: 'adlt' is neither a file nor a built-in dataset; did you mean adult?" in result.stderr
