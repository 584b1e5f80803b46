"""Training data as in-memory tensors: a Dataset encoded once, then indexed batch by batch."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np
import torch
from torch import Tensor

from amploop.models.runtime import model_inputs, to_device

if TYPE_CHECKING:
    from amploop.data import Dataset, FeatureEncoder, LabelEncoder

__all__ = ["TrainData", "to_tensors"]


@dataclass
class TrainData:
    """In-memory tensors: a dict of inputs with rows first, and the targets."""

    inputs: dict[str, Tensor]
    targets: Tensor

    def __len__(self) -> int:
        return int(self.targets.shape[0])

    def batch(self, index: Tensor, device: torch.device) -> tuple[dict[str, Tensor], Tensor]:
        """The rows at ``index``, inputs and targets, on ``device``."""
        moved = to_device({**{k: v[index] for k, v in self.inputs.items()}, "__target__": self.targets[index]}, device)
        target = moved.pop("__target__")
        return moved, target


def to_tensors(dataset: Dataset, encoder: FeatureEncoder, labels: LabelEncoder | None) -> TrainData:
    """Encode ``dataset`` with the fitted ``encoder`` (and ``labels`` for classification)."""
    inputs = model_inputs(encoder.transform(dataset.table, dataset.arrays))
    if labels is not None:
        targets = torch.from_numpy(labels.transform(dataset.labels))
    else:
        targets = torch.from_numpy(dataset.labels.to_numpy(dtype=np.float32, copy=True))  # a writable copy
    return TrainData(inputs=inputs, targets=targets)
