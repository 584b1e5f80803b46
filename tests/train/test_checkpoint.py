import json
import random
import shutil
import signal
import subprocess
import sys
from pathlib import Path

import torch

from amploop.train.checkpoint import CheckpointManager, tensors_bytes, torch_bytes

WORKER = Path(__file__).with_name("checkpoint_worker.py")


def _files(step: int) -> dict[str, bytes]:
    return {
        "model.safetensors": tensors_bytes({"w": torch.full((4,), float(step))}),
        "optimizer.pt": torch_bytes({"step": step}),
    }


def test_save_load_and_keep_the_newest(tmp_path):
    manager = CheckpointManager(tmp_path, keep=2)
    for step in (10, 20, 30):
        manager.save(step, _files(step))
    assert manager.steps() == [20, 30]
    latest = manager.latest()
    assert latest.step == 30 and torch.equal(latest.tensors("model.safetensors")["w"], torch.full((4,), 30.0))
    assert latest.torch_object("optimizer.pt") == {"step": 30}
    assert (tmp_path / "latest").read_text() == "step-00000030"


def test_a_corrupted_latest_falls_back_to_the_previous_one(tmp_path):
    manager = CheckpointManager(tmp_path, keep=3)
    manager.save(1, _files(1))
    manager.save(2, _files(2))
    (tmp_path / "step-00000002" / "model.safetensors").write_bytes(b"garbage")
    assert manager.latest().step == 1


def test_optimizer_state_loads_without_unpickling_arbitrary_objects(tmp_path):
    model = torch.nn.Linear(3, 2)
    optimizer = torch.optim.AdamW(model.parameters())
    model(torch.randn(4, 3)).sum().backward()
    optimizer.step()
    manager = CheckpointManager(tmp_path)
    manager.save(1, {"optimizer.pt": torch_bytes(optimizer.state_dict())})
    restored = torch.optim.AdamW(model.parameters())
    restored.load_state_dict(manager.latest().torch_object("optimizer.pt"))  # weights_only=True inside
    assert restored.state_dict()["param_groups"] == optimizer.state_dict()["param_groups"]


def _load_alone(folder: Path, scratch: Path):
    """Load one step folder through the public API: copied alone into an empty folder, where
    ``latest()`` returns it only if its manifest and every file's SHA-256 verify."""
    shutil.rmtree(scratch, ignore_errors=True)
    scratch.mkdir(parents=True)
    shutil.copytree(folder, scratch / folder.name)
    return CheckpointManager(scratch).latest()


def _check_directory(directory: Path, scratch: Path) -> int:
    """Every invariant a kill must not break; returns the latest step."""
    latest_name = (directory / "latest").read_text()
    manifest = json.loads((directory / latest_name / "manifest.json").read_bytes())
    manager = CheckpointManager(directory)
    loaded = manager.latest()
    assert loaded is not None and loaded.path.name == latest_name  # latest names a complete one
    step = loaded.step
    assert manifest["step"] == step
    assert torch.equal(loaded.tensors("model.safetensors")["w"], torch.full((512, 1024), float(step)))
    for other in manager.steps():  # every folder under a final name is whole
        found = _load_alone(directory / manager.name_for(other), scratch)
        assert found is not None and found.step == other
        assert torch.equal(found.tensors("model.safetensors")["b"], torch.full((1024,), float(other)))
    return step


def _worker(directory: Path, *args: str) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, str(WORKER), str(directory), *args], stdout=subprocess.PIPE, text=True)


def _partials(directory: Path) -> list[str]:
    return sorted(p.name for p in directory.iterdir() if p.name.startswith(".partial-"))


def test_twenty_kills_during_checkpoint_writes_never_break_a_checkpoint(tmp_path):
    rng = random.Random(1234)
    directory, scratch = tmp_path / "ckpt", tmp_path / "scratch"
    first = subprocess.run(
        [sys.executable, str(WORKER), str(directory), "--until", "2"], capture_output=True, text=True, timeout=120
    )
    assert first.returncode == 0, first.stderr
    assert first.stdout.split() == ["ready", "1", "saved", "1", "saved", "2"]
    last_step = _check_directory(directory, scratch)
    assert last_step == 2
    for _ in range(20):  # kills at random moments, each after the worker has saved at least once
        proc = _worker(directory)
        ready = proc.stdout.readline().split()
        assert ready == ["ready", str(last_step + 1)]  # resumes after the latest
        assert proc.stdout.readline().split() == ["saved", str(last_step + 1)]
        try:
            proc.wait(timeout=rng.uniform(0.0, 0.2))  # it runs until killed: this only picks the moment
        except subprocess.TimeoutExpired:
            proc.send_signal(signal.SIGKILL)
        proc.wait()
        saved = [last_step + 1, *(int(line.split()[1]) for line in proc.stdout.read().splitlines())]
        step = _check_directory(directory, scratch)
        # every save that returned is kept; at most the one it was killed after finishing is newer
        assert step in (saved[-1], saved[-1] + 1), (step, saved[-3:])
        last_step = step
    assert last_step >= 2 + 20  # each round saved at least once
    # a kill in the middle of a write, on purpose: a half-written folder, and latest untouched
    inside = last_step + 2
    proc = _worker(directory, "--stop-inside", str(inside))
    lines = [proc.stdout.readline().split() for _ in range(3)]
    assert lines == [["ready", str(last_step + 1)], ["saved", str(last_step + 1)], ["inside", str(inside)]]
    [partial] = _partials(directory)
    assert partial.startswith(f".partial-{CheckpointManager.name_for(inside)}-")
    assert not (directory / partial / "manifest.json").exists()
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    assert _partials(directory) == [partial]
    assert _check_directory(directory, scratch) == last_step + 1
    # the leftover partial write does not block the next save, which cleans it up
    done = subprocess.run(
        [sys.executable, str(WORKER), str(directory), "--until", str(inside + 1)],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, done.stderr
    assert _check_directory(directory, scratch) == inside + 1
    assert not any(p.name.startswith((".partial-", ".trash-")) for p in directory.iterdir())
