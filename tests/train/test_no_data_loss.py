"""`amploop train` never deletes what it did not write, and answers every mistake in one line.

Each case here once deleted a user's files or ended in a traceback.
"""

import json
import os
import pickle
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from amploop.errors import ArtifactError, ConfigError, UsageError
from amploop.registry import Store
from amploop.train.checkpoint import CheckpointManager, tensors_bytes, torch_bytes
from amploop.workspace import Workspace

AMPLOOP = str(Path(sys.executable).with_name("amploop"))
QUICK = ["--epochs", "1", "--max-steps", "2", "--batch-size", "32"]


def _env(home: Path, **extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("AMPLOOP_", "TORCHELASTIC_"))}
    env.update(AMPLOOP_HOME=str(home), OMP_NUM_THREADS="1", **extra)
    return env


def amploop(cwd: Path, home: Path, *args: str, **env: str) -> subprocess.CompletedProcess:
    return subprocess.run([AMPLOOP, *args], capture_output=True, text=True, env=_env(home, **env), cwd=cwd, timeout=300)


@pytest.fixture
def project(tmp_path: Path) -> tuple[Path, Path]:
    """A project folder with a small table, an AMPLOOP_HOME holding a database, and a file of the user's."""
    cwd, home = tmp_path / "project", tmp_path / "project" / ".amploop"
    cwd.mkdir()
    rng = np.random.default_rng(0)
    x = rng.normal(size=(300, 3))
    table = pd.DataFrame(x, columns=["a", "b", "c"])
    table["y"] = (x[:, 0] - x[:, 2] > 0).astype(int)
    table.to_csv(cwd / "mydata.csv", index=False)
    first = amploop(cwd, home, "train", "--dataset", "mydata.csv", "--target", "y", *QUICK)
    assert first.returncode == 0, first.stderr
    (home / "notes.txt").write_text("mine")
    (cwd / "notes.txt").write_text("mine")
    return cwd, home


def _everything(folder: Path) -> dict[str, bytes]:
    return {str(p.relative_to(folder)): p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file()}


@pytest.mark.parametrize(
    "how",
    [
        ["--name", ".."],
        ["--name", "."],
        ["--name", "../.."],
        ["--name", "x/../.."],
        ["--name", "a" * 300],
        {"AMPLOOP_MODEL__NAME": ".."},
        {"file": "model:\n  name: ..\n"},
    ],
    ids=["dotdot", "dot", "up-two", "hidden-up", "300-chars", "env", "yaml"],
)
def test_a_bad_model_name_touches_nothing(project, how):
    cwd, home = project
    before_home, before_cwd = _everything(home), {p.name for p in cwd.iterdir()}
    args, env = ["train", "--dataset", "mydata.csv", "--target", "y", *QUICK, "--json"], {}
    if isinstance(how, list):
        args += how
    elif "file" in how:
        (cwd / "amploop.yaml").write_text(how["file"])
        before_cwd.add("amploop.yaml")
    else:
        env = how
    result = amploop(cwd, home, *args, **env)
    assert result.returncode in (UsageError.exit_code, ConfigError.exit_code), result.stderr
    assert "not a valid model name" in result.stderr or "is not valid" in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1 and "Traceback" not in result.stderr
    assert json.loads(result.stdout)["error"] in ("ConfigError", "UsageError")
    assert _everything(home) == before_home  # database, artifacts and the user's file, byte for byte
    assert {p.name for p in cwd.iterdir()} == before_cwd


@pytest.mark.parametrize("folder", [".", "notes-folder", ".amploop"])
def test_a_checkpoint_folder_with_other_files_is_refused_untouched(project, folder):
    cwd, home = project
    (cwd / "notes-folder").mkdir()
    (cwd / "notes-folder" / "draft.txt").write_text("keep me")
    before = _everything(cwd)
    result = amploop(cwd, home, "train", "--dataset", "mydata.csv", "--target", "y", *QUICK, "--checkpoint-dir", folder)
    assert result.returncode == ConfigError.exit_code, result.stderr
    assert "holds files amploop did not write" in result.stderr and "nothing was touched" in result.stderr
    assert _everything(cwd) == before


def test_a_checkpoint_folder_of_amploop_is_reused_and_only_its_files_removed(project):
    cwd, home = project
    folder = cwd / "ckpt"
    first = amploop(cwd, home, "train", "--dataset", "mydata.csv", "--target", "y", *QUICK, "--checkpoint-dir", "ckpt")
    assert first.returncode == 0, first.stderr
    assert (folder / "latest").exists()
    again = amploop(cwd, home, "train", "--dataset", "mydata.csv", "--target", "y", *QUICK, "--checkpoint-dir", "ckpt")
    assert again.returncode == 0, again.stderr
    assert sorted(p.name for p in folder.iterdir()) == ["latest", "step-00000002"]


def test_clear_never_follows_a_link_out_of_the_folder(tmp_path):
    outside = tmp_path / "outside"
    outside.mkdir()
    (outside / "precious.txt").write_text("keep")
    manager = CheckpointManager(tmp_path / "ckpt")
    manager.save(1, {"model.safetensors": tensors_bytes({})})
    (tmp_path / "ckpt" / "step-00000009").symlink_to(outside, target_is_directory=True)
    with pytest.raises(ConfigError, match="step-00000009"):
        manager.clear()
    assert (outside / "precious.txt").read_text() == "keep"
    assert manager.latest() is not None  # refused before anything was removed


class _Evil:
    def __reduce__(self):
        return (os.system, ("touch pwned",))


def test_a_pickle_in_a_checkpoint_is_an_artifact_error_not_code(tmp_path):
    manager = CheckpointManager(tmp_path / "ckpt")
    manager.save(1, {"model.safetensors": tensors_bytes({}), "optimizer.pt": pickle.dumps(_Evil())})
    found = manager.latest()
    with pytest.raises(ArtifactError, match="not plain tensor data") as caught:
        found.torch_object("optimizer.pt")
    assert "weights_only=False" not in caught.value.message
    assert not (tmp_path / "pwned").exists() and not Path("pwned").exists()


def test_resume_from_a_checkpoint_with_a_forged_optimizer_file_exits_11(project):
    cwd, home = project
    args = ["train", "--dataset", "mydata.csv", "--target", "y", *QUICK, "--checkpoint-dir", "ckpt"]
    assert amploop(cwd, home, *args).returncode == 0
    manager = CheckpointManager(cwd / "ckpt")
    step = manager.latest().step
    files = dict(manager.latest().files)
    files.pop("manifest.json", None)
    trainer = json.loads(files["trainer.json"])
    trainer["state"]["finished"] = False  # a run cut short, so --resume reads the optimizer file
    files["trainer.json"] = json.dumps(trainer).encode()
    files["optimizer.pt"] = pickle.dumps(_Evil())  # and a manifest that vouches for it
    import shutil

    shutil.rmtree(cwd / "ckpt" / manager.name_for(step))
    manager.save(step, files)
    result = amploop(cwd, home, *args, "--resume", "--json")
    assert result.returncode == ArtifactError.exit_code, result.stderr
    assert json.loads(result.stdout)["error"] == "ArtifactError"
    assert "Traceback" not in result.stderr and not (cwd / "pwned").exists()
    wrong = torch_bytes({"state": {}, "param_groups": [{"params": [0, 1, 2]}]})
    files["optimizer.pt"] = wrong
    shutil.rmtree(cwd / "ckpt" / manager.name_for(step))
    manager.save(step, files)
    result = amploop(cwd, home, *args, "--resume")
    assert result.returncode == ArtifactError.exit_code, result.stderr
    assert "does not fit this model" in result.stderr


def test_a_relative_dataset_is_found_again_from_another_directory(project, tmp_path):
    cwd, home = project
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    result = amploop(elsewhere, home, "evaluate", "mydata:1", "--json")
    assert result.returncode in (0, 9), result.stderr  # evaluated (the gate may say no), not "no such file"
    with Store.open(Workspace.from_env({"AMPLOOP_HOME": str(home)})) as store:
        run = store.get_run(store.get_model_version("mydata", 1).run_id)
    assert run.config["data"]["source"] == str((cwd / "mydata.csv").resolve())


@pytest.mark.parametrize(
    "args, code, message",
    [
        (["--device", "quantum"], ConfigError.exit_code, "unknown device 'quantum'"),
        (["--seed", "-5"], ConfigError.exit_code, "train.seed"),
        (["--seed", str(2**70)], ConfigError.exit_code, "train.seed"),
        (["--nnodes", "abc"], UsageError.exit_code, "--nnodes 'abc'"),
        (["--nproc-per-node", "100000"], ConfigError.exit_code, "100000 processes but this machine has"),
        (["--epochs", "many"], UsageError.exit_code, "Invalid value for '--epochs'"),
        (["--no-such-flag"], UsageError.exit_code, "No such option: --no-such-flag"),
    ],
)
def test_bad_flags_are_one_line_and_one_json_object(tmp_path, args, code, message):
    result = amploop(tmp_path, tmp_path / "h", "train", *args, "--json")
    assert result.returncode == code, result.stderr
    assert message in result.stderr and len(result.stderr.strip().splitlines()) == 1
    assert message in json.loads(result.stdout)["message"]
    assert not (tmp_path / "h").exists() or not list((tmp_path / "h").glob("checkpoints/*"))


def test_bench_precision_refuses_zero_epochs_before_training(tmp_path):
    result = amploop(tmp_path, tmp_path / "h", "bench", "precision", "--epochs", "0", "--json")
    assert result.returncode == ConfigError.exit_code, result.stderr
    assert json.loads(result.stdout)["message"].startswith("train.epochs")


def test_env_overrides_are_typed_by_their_field(tmp_path):
    result = amploop(tmp_path, tmp_path / "h", "config", "show", "--json", AMPLOOP_PROJECT__NAME="123")
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout)["project"]["name"] == "123"
    result = amploop(tmp_path, tmp_path / "h", "config", "show", "--json", AMPLOOP_TRAIN__EPOCHS="3")
    assert json.loads(result.stdout)["train"]["epochs"] == 3


def test_a_failing_torchrun_job_answers_as_one_process(tmp_path):
    result = amploop(tmp_path, tmp_path / "h", "train", "--dataset", "missing.csv", "--nproc-per-node", "2", "--json")
    assert result.returncode == ConfigError.exit_code, result.stderr
    assert json.loads(result.stdout)["error"] == "ConfigError"  # one object, not one per process
    assert result.stderr.strip().splitlines() == [
        "error: data.source: 'missing.csv' is neither a file nor a built-in dataset; "
        "built-in datasets: adult, mnist5k, rainfall"
    ]
