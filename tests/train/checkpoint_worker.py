"""Writes checkpoints in a loop until killed: argv = DIRECTORY.

Each checkpoint for step N holds a weight tensor filled with N, so a reader can tell that the
checkpoint it loaded is whole and is the one it claims to be.
"""

import sys

import torch

from amploop.train.checkpoint import CheckpointManager, tensors_bytes, torch_bytes


def main() -> None:
    manager = CheckpointManager(sys.argv[1], keep=2)
    latest = manager.latest()
    step = latest.step + 1 if latest is not None else 1
    print("ready", step, flush=True)
    while True:
        weights = {"w": torch.full((512, 1024), float(step)), "b": torch.full((1024,), float(step))}
        manager.save(
            step,
            {
                "model.safetensors": tensors_bytes(weights),
                "optimizer.pt": torch_bytes({"step": step, "lr": 0.1}),
            },
        )
        step += 1
        if len(sys.argv) > 2 and step > int(sys.argv[2]):
            return


if __name__ == "__main__":
    main()
