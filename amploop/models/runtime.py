"""The one batched inference path: encoded rows → model outputs, under a chosen precision.

:func:`batched_outputs` is the only loop in amploop that runs a model over rows for inference:
training's validation, evaluation, the precision experiment and serving all go through it.
:class:`Predictor` turns a :class:`~amploop.models.bundle.ModelBundle` into predictions
(schema check → encoding → batched forward in fp32, bf16, fp16 or int8 → calibrated probabilities).
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator, Mapping
from typing import TYPE_CHECKING, Any

import numpy as np
import torch
from torch import nn

from amploop.errors import ConfigError
from amploop.models.bundle import ModelBundle

if TYPE_CHECKING:
    import pandas as pd

    from amploop.data import EncodedBatch

__all__ = [
    "INFERENCE_PRECISIONS",
    "ModelBundle",
    "Predictor",
    "batched_outputs",
    "model_inputs",
    "model_outputs",
    "to_device",
]

INFERENCE_PRECISIONS = ("fp32", "bf16", "fp16", "int8")


def model_inputs(batch: EncodedBatch) -> dict[str, torch.Tensor]:
    """The tensors a built-in architecture reads: ``numeric``, ``categorical`` and, for images, ``image``."""
    inputs = {"numeric": torch.from_numpy(batch.numeric), "categorical": torch.from_numpy(batch.categorical)}
    for position, (name, images) in enumerate(batch.images.items()):
        inputs["image" if position == 0 else name] = torch.from_numpy(images)
    return inputs


def to_device(tensors: Mapping[str, torch.Tensor], device: torch.device) -> dict[str, torch.Tensor]:
    """Each tensor on ``device``; to CUDA through pinned memory, so the copy overlaps compute."""
    pin = device.type == "cuda"
    return {
        k: (v.pin_memory() if pin and v.device.type == "cpu" else v).to(device, non_blocking=pin)
        for k, v in tensors.items()
    }


def batched_outputs(
    model: nn.Module,
    inputs: Mapping[str, torch.Tensor],
    *,
    batch_size: int = 1024,
    autocast: Callable[[], contextlib.AbstractContextManager[Any]] = contextlib.nullcontext,
) -> Iterator[tuple[slice, torch.Tensor]]:
    """The model's outputs, batch by batch: ``(rows, outputs)`` with outputs as float32 on the model's device.

    The one inference loop of amploop: training's validation, evaluation, the precision experiment
    and serving all run through it. ``inputs`` holds tensors with rows first (on any device); the
    model runs in eval mode without gradients under ``autocast``, and goes back to the mode it had.
    """
    # int8 (dynamically quantized) linear layers hold packed weights, not parameters: CPU then
    device = next((p.device for p in model.parameters()), torch.device("cpu"))
    rows = len(next(iter(inputs.values()))) if inputs else 0
    was_training = model.training
    model.eval()
    try:
        with torch.no_grad():
            for start in range(0, rows, batch_size):
                part = slice(start, min(start + batch_size, rows))
                batch = to_device({k: v[part] for k, v in inputs.items()}, device)
                with autocast():
                    outputs = model(batch)
                yield part, outputs.detach().float()  # a module may return a view of a parameter
    finally:
        model.train(was_training)


def model_outputs(
    model: nn.Module,
    inputs: Mapping[str, torch.Tensor],
    *,
    batch_size: int = 1024,
    autocast: Callable[[], contextlib.AbstractContextManager[Any]] = contextlib.nullcontext,
) -> torch.Tensor:
    """Every row's outputs from :func:`batched_outputs`, joined, as float32 on the CPU."""
    parts = [out.cpu() for _, out in batched_outputs(model, inputs, batch_size=batch_size, autocast=autocast)]
    return torch.cat(parts) if parts else torch.zeros(0)


class Predictor:
    """Batched inference for a bundle: validate, encode, forward under the chosen precision.

    ``predict(frame)`` gives class names (or values), ``predict_outputs`` calibrated class
    probabilities, ``logits`` raw outputs. Rows are checked against the training schema first.
    """

    def __init__(
        self,
        bundle: ModelBundle,
        *,
        precision: str = "fp32",
        device: str = "cpu",
        batch_size: int = 1024,
        module: nn.Module | None = None,
        reference: str | None = None,
    ) -> None:
        if precision not in INFERENCE_PRECISIONS:
            raise ConfigError(f"unknown inference precision '{precision}'; valid: {', '.join(INFERENCE_PRECISIONS)}")
        self.bundle = bundle
        self.reference = reference  # the registered version, "NAME:VERSION", when loaded from the registry
        self.precision = precision
        self.device = torch.device(device)
        self.batch_size = batch_size
        self.model = bundle.build(module).to(self.device)
        if precision == "int8":
            self.model = _quantize_int8(self.model)
        self.encoder_ = bundle.encoder()
        from amploop.data import Schema

        self.schema_ = Schema.from_dict(bundle.schema)

    def _autocast(self) -> contextlib.AbstractContextManager[Any]:
        dtype = {"bf16": torch.bfloat16, "fp16": torch.float16}.get(self.precision)
        if dtype is None:
            return contextlib.nullcontext()
        return torch.autocast(device_type=self.device.type, dtype=dtype)

    def logits(
        self, table: pd.DataFrame, arrays: dict[str, np.ndarray] | None = None, *, validate: bool = True
    ) -> np.ndarray:
        """Raw model outputs: (n, classes) logits, or (n,) values for regression.

        ``validate=False`` skips the schema check (for deliberately corrupted inputs).
        """
        if validate:
            self.schema_.validate(table, arrays, ignore=[self.bundle.target])
        batch = self.encoder_.transform(table, arrays)
        if len(batch) == 0:
            return np.zeros((0, self.bundle.spec.n_outputs) if self.bundle.task == "classification" else (0,))
        outputs = model_outputs(self.model, model_inputs(batch), batch_size=self.batch_size, autocast=self._autocast)
        return (outputs if self.bundle.task == "classification" else outputs.squeeze(-1)).numpy()

    def predict_outputs(
        self,
        table: pd.DataFrame,
        arrays: dict[str, np.ndarray] | None = None,
        *,
        calibrated: bool = True,
        validate: bool = True,
    ) -> np.ndarray:
        """Class probabilities (n, classes), temperature-scaled unless ``calibrated=False``; or values (n,)."""
        raw = self.logits(table, arrays, validate=validate)
        if self.bundle.task != "classification":
            return raw
        temperature = self.bundle.temperature if calibrated else 1.0
        scaled = raw / temperature
        scaled -= scaled.max(axis=1, keepdims=True)
        exp = np.exp(scaled)
        return exp / exp.sum(axis=1, keepdims=True)

    def predict(self, table: pd.DataFrame, arrays: dict[str, np.ndarray] | None = None) -> list[Any]:
        outputs = self.predict_outputs(table, arrays)
        if self.bundle.task == "classification" and self.bundle.classes is not None:
            return [self.bundle.classes[i] for i in outputs.argmax(-1)]
        return outputs.tolist()


def _quantize_int8(model: nn.Module) -> nn.Module:
    """Dynamic int8 quantization of the linear layers (weights int8, activations quantized per batch; CPU)."""
    import warnings

    from torch.ao.quantization import quantize_dynamic

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # torch announces the move of this API to torchao
        return quantize_dynamic(model.cpu(), {nn.Linear}, dtype=torch.qint8)
