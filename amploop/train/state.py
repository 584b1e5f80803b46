"""The training state, and the checkpoint files that hold it with the model, optimizer and schedule.

A checkpoint is four files: ``model.safetensors`` (weights), ``optimizer.pt`` (AdamW moments,
read back with ``weights_only=True``), ``trainer.json`` (schedule, loss scaler, :class:`TrainState`
and the training config) and, once validation has run, ``best.safetensors`` (the best weights).
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from typing import Any

import torch
from safetensors import SafetensorError
from torch import Tensor, nn

from amploop.config import TrainConfig
from amploop.errors import ArtifactError
from amploop.train.checkpoint import Checkpoint, tensors_bytes, torch_bytes

__all__ = ["TrainState", "checkpoint_files", "restore_checkpoint"]


@dataclass
class TrainState:
    """Where training stands; saved in every checkpoint and restored on resume."""

    step: int = 0  # optimizer steps taken
    epoch: int = 0  # epochs completed
    batch: int = 0  # steps taken in the current epoch
    loss_curve: list[float] = field(default_factory=list)  # global mean loss per optimizer step
    history: list[dict[str, float]] = field(default_factory=list)  # per epoch: train_loss, val_loss, val_metric
    best_metric: float | None = None  # validation metric of the kept epoch
    best_loss: float | None = None  # its selection loss (calibrated validation loss, or MSE)
    best_epoch: int | None = None  # the kept epoch: the latest within noise of the lowest loss
    lowest_loss: float | None = None  # the lowest selection loss so far
    lowest_loss_se: float | None = None  # its standard error over the validation rows
    lowest_loss_rows: list[float] | None = None  # its per-row losses (validation splits up to 5,000 rows)
    bad_epochs: int = 0  # epochs since the last improvement
    finished: bool = False  # the run reached its end; a resume has nothing left to do
    nonfinite: int = 0  # steps skipped because the loss or gradient norm was not finite
    scaler_skipped: int = 0  # fp16 steps the GradScaler skipped

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> TrainState:
        known = {f for f in cls.__dataclass_fields__}
        unknown = sorted(set(data) - known)
        if unknown:
            raise KeyError(f"unknown training state keys {unknown}")
        return cls(**data)


def checkpoint_files(
    state: TrainState,
    model: nn.Module,
    optimizer: torch.optim.Optimizer,
    scheduler: Any,
    scaler: Any,
    *,
    config: TrainConfig,
    best: dict[str, Tensor] | None,
) -> dict[str, bytes]:
    """Everything a resumed run needs to continue exactly where this one stands."""
    trainer = {
        "scheduler": scheduler.state_dict(),
        "scaler": scaler.state_dict() if scaler.is_enabled() else None,
        "state": state.to_dict(),
        "config": config.model_dump(mode="json"),
    }
    files = {
        "model.safetensors": tensors_bytes(model.state_dict()),
        "optimizer.pt": torch_bytes(optimizer.state_dict()),
        "trainer.json": json.dumps(trainer, default=str).encode(),
    }
    if best is not None:
        files["best.safetensors"] = tensors_bytes(best)
    return files


def _json_bytes(obj: Any) -> bytes:
    import json

    return json.dumps(obj, default=str).encode()


def restore_checkpoint(
    found: Checkpoint,
    model: nn.Module,
    optimizer: torch.optim.Optimizer,
    scheduler: Any,
    scaler: Any,
) -> tuple[TrainState, dict[str, Tensor] | None]:
    """Load a verified checkpoint into the training objects; its state and the best weights it kept, if any.

    A checkpoint whose files verify but do not fit this model (another architecture, edited
    files) is an ArtifactError, never a traceback.
    """
    try:
        model.load_state_dict(found.tensors("model.safetensors"))
        optimizer.load_state_dict(found.torch_object("optimizer.pt"))
        trainer = found.json("trainer.json")
        scheduler.load_state_dict(trainer["scheduler"])
        if trainer["scaler"]:
            scaler.load_state_dict(trainer["scaler"])
        state = TrainState.from_dict(trainer["state"])
        return state, (found.tensors("best.safetensors") if "best.safetensors" in found.files else None)
    except ArtifactError:
        raise
    except (RuntimeError, KeyError, ValueError, TypeError, IndexError, SafetensorError) as exc:
        first = (str(exc).strip().splitlines() or [type(exc).__name__])[0][:160]
        raise ArtifactError(
            f"checkpoint {found.path} does not fit this model ({first}); train without --resume "
            "or point --checkpoint-dir at the run it belongs to",
            path=str(found.path),
        ) from None
