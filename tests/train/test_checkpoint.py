import json
import random
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


def _check_directory(directory: Path) -> int:
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
        found = manager._verify(directory / manager.name_for(other))
        assert found is not None and found.step == other
    return step


def test_twenty_kills_during_checkpoint_writes_never_break_a_checkpoint(tmp_path):
    rng = random.Random(1234)
    directory = tmp_path / "ckpt"
    last_step = 0
    partial_seen = 0
    for _ in range(20):
        proc = subprocess.Popen([sys.executable, str(WORKER), str(directory)], stdout=subprocess.PIPE, text=True)
        ready = proc.stdout.readline().split()
        assert ready[0] == "ready" and int(ready[1]) == last_step + 1  # resumes after the latest
        threading_delay = rng.uniform(0.02, 0.4)
        try:
            proc.wait(timeout=threading_delay)
        except subprocess.TimeoutExpired:
            proc.send_signal(signal.SIGKILL)
            proc.wait()
        partial_seen += any(p.name.startswith(".partial-") for p in directory.iterdir())
        if (directory / "latest").exists():
            step = _check_directory(directory)
            assert step >= last_step
            last_step = step
    assert last_step > 20  # the writer made progress between kills
    # a leftover partial write does not block the next save, which cleans it up
    done = subprocess.run(
        [sys.executable, str(WORKER), str(directory), str(last_step + 2)],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, done.stderr
    assert _check_directory(directory) == last_step + 2
    assert not any(p.name.startswith((".partial-", ".trash-")) for p in directory.iterdir())
    assert partial_seen > 0  # some kills did land in the middle of a write
