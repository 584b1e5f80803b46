"""Load a registered model for prediction: ``load_model("adult@champion").predict(frame)``."""

from __future__ import annotations

from typing import TYPE_CHECKING

from amploop.models.runtime import Predictor
from amploop.names import parse_model_ref
from amploop.registry.evaluations import resolve_version
from amploop.registry.model_versions import load_model_bundle
from amploop.registry.store import Store

if TYPE_CHECKING:
    from torch import nn

__all__ = ["load_model"]


def load_model(
    reference: str,
    *,
    store: Store | None = None,
    precision: str = "fp32",
    runtime: str = "torch",
    device: str = "cpu",
    batch_size: int = 1024,
    module: nn.Module | None = None,
) -> Predictor:
    """A :class:`Predictor` for ``NAME``, ``NAME:VERSION`` or ``NAME@ALIAS``, its files verified.

    The files are checked against the SHA-256 the registry stored and read as safetensors and
    JSON only. ``precision`` is fp32, bf16, fp16 or int8; ``runtime`` torch or onnx (int8 always
    runs on ONNX Runtime); ``module`` is needed only for a model
    trained from a user's own ``nn.Module`` (a new instance of its class). ``store`` defaults to
    the workspace's. ``predictor.reference`` names the version loaded, e.g. ``"adult:3"``.
    """
    if store is None:
        with Store.open() as opened:
            return load_model(
                reference,
                store=opened,
                precision=precision,
                runtime=runtime,
                device=device,
                batch_size=batch_size,
                module=module,
            )
    record = resolve_version(store, parse_model_ref(reference))
    _, bundle = load_model_bundle(store, record.name, record.version)
    return Predictor(
        bundle,
        precision=precision,
        runtime=runtime,
        device=device,
        batch_size=batch_size,
        module=module,
        reference=f"{record.name}:{record.version}",
    )
