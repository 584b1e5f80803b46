"""What training minimises per task, and the validation loss and metric it early-stops on."""

from __future__ import annotations

import math
from collections.abc import Callable

import torch.nn.functional as F
from torch import Tensor, nn

from amploop.errors import TrainingError
from amploop.models.runtime import batched_outputs
from amploop.train.precision import PrecisionChoice
from amploop.train.tensors import TrainData

__all__ = ["TASKS", "evaluate_loss", "loss_function"]

TASKS = ("classification", "regression", "language_model")


def loss_function(task: str) -> Callable[[Tensor, Tensor], Tensor]:
    """Cross-entropy for classes and tokens, mean squared error for regression (in float32)."""
    if task == "classification":
        return lambda out, y: F.cross_entropy(out.float(), y)
    if task == "regression":
        return lambda out, y: F.mse_loss(out.float().squeeze(-1), y.float())
    if task == "language_model":
        return lambda out, y: F.cross_entropy(out.float().reshape(-1, out.shape[-1]), y.reshape(-1))
    raise TrainingError(f"unknown task '{task}'; valid: {', '.join(TASKS)}")


def evaluate_loss(
    model: nn.Module, data: TrainData, task: str, precision: PrecisionChoice, batch_size: int = 1024
) -> tuple[float, float]:
    """Mean loss and the validation metric (accuracy, or negative RMSE for regression)."""
    loss_fn = loss_function(task)
    total_loss, correct = 0.0, 0.0
    for rows, out in batched_outputs(model, data.inputs, batch_size=batch_size, autocast=precision.autocast):
        targets = data.targets[rows].to(out.device)
        count = rows.stop - rows.start
        total_loss += float(loss_fn(out, targets)) * count
        if task == "classification":
            correct += float((out.argmax(-1) == targets).sum())
        elif task == "language_model":
            correct += float((out.argmax(-1) == targets).float().mean(-1).sum())
    count = max(len(data), 1)
    mean_loss = total_loss / count
    metric = correct / count if task != "regression" else -math.sqrt(mean_loss)
    return mean_loss, metric
