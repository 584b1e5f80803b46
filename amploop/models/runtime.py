"""A trained model with its encoder, saved as files and loaded back for batched prediction.

A :class:`ModelBundle` is three files: ``model.safetensors`` (weights), ``model.json``
(architecture, options, input spec, task, class names, the training schema) and
``encoder.json`` (the fitted feature encoder). The registry stores them with their SHA-256;
:class:`Predictor` turns a bundle into batched predictions under a chosen precision, and is
what evaluation, serving and monitoring all use.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np
import torch
from safetensors.torch import load as load_safetensors
from safetensors.torch import save as save_safetensors
from torch import nn

from amploop.errors import ConfigError, SchemaError
from amploop.models.zoo import ModelSpec, build_model

if TYPE_CHECKING:
    import pandas as pd

    from amploop.data import FeatureEncoder

__all__ = ["BUNDLE_FORMAT", "INFERENCE_PRECISIONS", "ModelBundle", "Predictor"]

INFERENCE_PRECISIONS = ("fp32", "bf16", "fp16", "int8")

BUNDLE_FORMAT = 1
WEIGHTS, META, ENCODER = "model.safetensors", "model.json", "encoder.json"


@dataclass(frozen=True)
class ModelBundle:
    architecture: str
    options: dict[str, Any]
    spec: ModelSpec
    task: str
    target: str
    classes: list[str] | None
    schema: dict[str, Any]  # the feature schema requests are validated against
    encoder_json: str
    weights: dict[str, torch.Tensor]
    trained_precision: str = "fp32"
    temperature: float = 1.0  # fitted on validation data; divides the logits (temperature scaling)

    def to_files(self) -> dict[str, bytes]:
        meta = {
            "format": BUNDLE_FORMAT,
            "architecture": self.architecture,
            "options": self.options,
            "spec": self.spec.to_dict(),
            "task": self.task,
            "target": self.target,
            "classes": self.classes,
            "schema": self.schema,
            "trained_precision": self.trained_precision,
            "temperature": self.temperature,
        }
        weights = {k: v.detach().contiguous().cpu() for k, v in self.weights.items()}
        return {
            WEIGHTS: save_safetensors(weights),
            META: json.dumps(meta, sort_keys=True).encode(),
            ENCODER: self.encoder_json.encode(),
        }

    @classmethod
    def from_files(cls, files: dict[str, bytes]) -> ModelBundle:
        missing = [f for f in (WEIGHTS, META, ENCODER) if f not in files]
        if missing:
            raise SchemaError(f"model files missing: {', '.join(missing)}")
        meta = json.loads(files[META])
        if meta.get("format") != BUNDLE_FORMAT:
            raise SchemaError(f"model format {meta.get('format')!r} is not {BUNDLE_FORMAT}; retrain the model")
        return cls(
            architecture=meta["architecture"],
            options=meta["options"],
            spec=ModelSpec.from_dict(meta["spec"]),
            task=meta["task"],
            target=meta["target"],
            classes=meta["classes"],
            schema=meta["schema"],
            encoder_json=files[ENCODER].decode(),
            weights=load_safetensors(files[WEIGHTS]),
            trained_precision=meta.get("trained_precision", "fp32"),
            temperature=float(meta.get("temperature", 1.0)),
        )

    def build(self) -> nn.Module:
        model = build_model(self.architecture, self.spec, self.options)
        model.load_state_dict(self.weights)
        return model.eval()

    def encoder(self) -> FeatureEncoder:
        from amploop.data import FeatureEncoder

        return FeatureEncoder.from_json(self.encoder_json)


class Predictor:
    """Batched inference for a bundle: validate, encode, forward under the chosen precision."""

    def __init__(
        self, bundle: ModelBundle, *, precision: str = "fp32", device: str = "cpu", batch_size: int = 1024
    ) -> None:
        if precision not in INFERENCE_PRECISIONS:
            raise ConfigError(f"unknown inference precision '{precision}'; valid: {', '.join(INFERENCE_PRECISIONS)}")
        self.bundle = bundle
        self.precision = precision
        self.device = torch.device(device)
        self.batch_size = batch_size
        self.model = bundle.build().to(self.device)
        if precision == "int8":
            self.model = _quantize_int8(self.model)
        self.encoder_ = bundle.encoder()
        from amploop.data import Schema

        self.schema_ = Schema.from_dict(bundle.schema)

    def _autocast(self) -> Any:
        dtype = {"bf16": torch.bfloat16, "fp16": torch.float16}.get(self.precision)
        if dtype is None:
            import contextlib

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
        outputs = []
        with torch.inference_mode():
            for start in range(0, len(batch), self.batch_size):
                stop = start + self.batch_size
                inputs = {
                    "numeric": torch.from_numpy(batch.numeric[start:stop]).to(self.device),
                    "categorical": torch.from_numpy(batch.categorical[start:stop]).to(self.device),
                }
                for images in batch.images.values():
                    inputs["image"] = torch.from_numpy(images[start:stop]).to(self.device)
                with self._autocast():
                    out = self.model(inputs).float()
                outputs.append(out if self.bundle.task == "classification" else out.squeeze(-1))
        if not outputs:
            return np.zeros((0, self.bundle.spec.n_outputs) if self.bundle.task == "classification" else (0,))
        return torch.cat(outputs).cpu().numpy()

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
