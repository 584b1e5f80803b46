"""Models: the built-in architectures (zoo) and the one batched inference path (runtime)."""

from amploop.models.runtime import (
    INFERENCE_PRECISIONS,
    ModelBundle,
    Predictor,
    batched_outputs,
    model_inputs,
    model_outputs,
    to_device,
)
from amploop.models.zoo import ARCHITECTURES, CUSTOM_ARCHITECTURE, ModelSpec, build_model, count_parameters

__all__ = [
    "ARCHITECTURES",
    "CUSTOM_ARCHITECTURE",
    "INFERENCE_PRECISIONS",
    "ModelBundle",
    "ModelSpec",
    "Predictor",
    "batched_outputs",
    "build_model",
    "count_parameters",
    "model_inputs",
    "model_outputs",
    "to_device",
]
