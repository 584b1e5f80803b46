"""Writes checkpoints in a loop: ``DIRECTORY [--until STEP] [--stop-inside STEP]``.

Each checkpoint for step N holds a weight tensor filled with N, so a reader can tell that the
checkpoint it loaded is whole and is the one it claims to be. The worker prints ``ready N`` (the
first step it will write) and ``saved N`` after each save returns. ``--until`` ends it after that
step; ``--stop-inside`` makes the save of that step stop after writing its first file (the
checkpoint folder is then half-written, with no manifest), print ``inside N`` and wait there to
be killed, so a test can kill it in the middle of a write on purpose, not by luck.
"""

import argparse
import time

import torch

from amploop.train.checkpoint import CheckpointManager, tensors_bytes, torch_bytes


class _StopAfterFirstFile(dict):
    """Checkpoint files that are handed out lazily: the save blocks before it can take the second."""

    def __init__(self, step: int, files: dict[str, bytes]) -> None:
        super().__init__(files)
        self.step = step

    def items(self):  # type: ignore[override]
        entries = list(super().items())
        yield entries[0]  # save() writes it before it asks for the next one
        print("inside", self.step, flush=True)
        time.sleep(600)  # killed here by the test
        yield from entries[1:]


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("directory")
    parser.add_argument("--until", type=int)
    parser.add_argument("--stop-inside", type=int)
    args = parser.parse_args()
    manager = CheckpointManager(args.directory, keep=2)
    latest = manager.latest()
    step = latest.step + 1 if latest is not None else 1
    print("ready", step, flush=True)
    while args.until is None or step <= args.until:
        weights = {"w": torch.full((512, 1024), float(step)), "b": torch.full((1024,), float(step))}
        files = {"model.safetensors": tensors_bytes(weights), "optimizer.pt": torch_bytes({"step": step, "lr": 0.1})}
        manager.save(step, _StopAfterFirstFile(step, files) if step == args.stop_inside else files)
        print("saved", step, flush=True)
        step += 1


if __name__ == "__main__":
    main()
