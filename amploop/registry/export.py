"""Export a registered version to other runtimes, checked against torch before it is kept.

ONNX (the ``onnx`` extra: onnx and onnxruntime): the model with its temperature is exported
with a dynamic batch axis; inputs are the encoded tensors (``numeric``, ``categorical`` or
``image``), outputs the logits and the served probabilities. The file is kept only when
onnxruntime's probabilities match torch's within ``tolerance`` on seeded inputs.

MLflow (when ``mlflow`` or ``mlflow-skinny`` is installed): the same verified ONNX graph is logged
as an MLflow model in a run named ``NAME-VERSION`` of the experiment ``amploop/NAME``, with the
version's metrics, its precision and temperature as parameters, and its lineage as tags. The
tracking URI is ``MLFLOW_TRACKING_URI`` or a SQLite file in the amploop home.
"""

from __future__ import annotations

import hashlib
import io
import warnings
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np
import torch
from torch import nn

from amploop.errors import AmploopError, ConfigError
from amploop.models.bundle import ModelBundle
from amploop.registry.model_versions import load_model_bundle
from amploop.registry.store import Store

__all__ = ["ExportResult", "export_version"]

FORMATS = ("onnx", "mlflow")


@dataclass(frozen=True)
class ExportResult:
    name: str
    version: int
    format: str
    uri: str
    sha256: str
    max_abs_difference: float
    tolerance: float
    rows_checked: int

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


class _Exported(nn.Module):
    """Positional tensors in, (logits, probabilities) out: what an ONNX graph can take."""

    def __init__(self, model: nn.Module, names: list[str], temperature: float, classification: bool) -> None:
        super().__init__()
        self.model, self.names = model, names
        self.temperature, self.classification = temperature, classification

    def forward(self, *tensors: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        logits = self.model(dict(zip(self.names, tensors, strict=True)))
        served = torch.softmax(logits / self.temperature, dim=-1) if self.classification else logits
        return logits, served


def _sample_inputs(bundle: ModelBundle, rows: int, seed: int = 0) -> dict[str, torch.Tensor]:
    generator = torch.Generator().manual_seed(seed)
    spec = bundle.spec
    if spec.image_shape:
        return {"image": torch.rand((rows, *spec.image_shape), generator=generator)}
    inputs = {"numeric": torch.randn(rows, spec.n_numeric, generator=generator)}
    columns = [torch.randint(0, c, (rows, 1), generator=generator) for c in spec.cardinalities]
    inputs["categorical"] = torch.cat(columns, dim=1) if columns else torch.zeros(rows, 0, dtype=torch.long)
    return inputs


def _onnx_bytes(bundle: ModelBundle, rows: int, tolerance: float) -> tuple[bytes, float]:
    try:
        import onnxruntime
    except ImportError:
        raise AmploopError("ONNX export needs the onnx extra: pip install 'amploop[onnx]'") from None
    if bundle.architecture == "gpt" or bundle.spec.vocab_size:
        raise ConfigError("ONNX export covers table and image models; gpt models are not exported")
    model = bundle.build().eval()
    sample = _sample_inputs(bundle, rows)
    names = list(sample)
    wrapper = _Exported(model, names, bundle.temperature, bundle.task == "classification").eval()
    buffer = io.BytesIO()
    with warnings.catch_warnings(), torch.no_grad():
        warnings.simplefilter("ignore")  # the TorchScript-based exporter announces its successor
        torch.onnx.export(
            wrapper,
            tuple(sample[n] for n in names),
            buffer,
            input_names=names,
            output_names=["logits", "probabilities"],
            dynamic_axes={n: {0: "batch"} for n in [*names, "logits", "probabilities"]},
            opset_version=17,
            dynamo=False,
        )
    data = buffer.getvalue()
    session = onnxruntime.InferenceSession(data, providers=["CPUExecutionProvider"])
    with torch.no_grad():
        expected = wrapper(*(sample[n] for n in names))[1].numpy()
    # The exporter drops inputs the graph never reads (an empty categorical block on a numeric-only
    # table, no numeric columns on a categorical-only one): feed exactly the inputs the graph has.
    graph_inputs = [i.name for i in session.get_inputs()]
    got = session.run(["probabilities"], {n: sample[n].numpy() for n in graph_inputs})[0]
    difference = float(np.max(np.abs(got - expected))) if got.size else 0.0
    if not difference <= tolerance:
        raise AmploopError(f"the ONNX graph differs from torch by {difference:.2e} (> {tolerance:g}); not exported")
    return data, difference


def export_version(
    store: Store,
    name: str,
    version: int,
    *,
    fmt: str = "onnx",
    tolerance: float = 1e-4,
    rows: int = 256,
    actor: str | None = None,
) -> ExportResult:
    if fmt not in FORMATS:
        raise ConfigError(f"unknown export format '{fmt}'; valid: {', '.join(FORMATS)}")
    if fmt == "mlflow":
        try:
            import mlflow
            import mlflow.onnx
            import onnx
        except ImportError:
            raise AmploopError(
                "MLflow export needs mlflow and the onnx extra: pip install mlflow-skinny 'amploop[onnx]'"
            ) from None
    record, bundle = load_model_bundle(store, name, version)
    data, difference = _onnx_bytes(bundle, rows, tolerance)
    if fmt == "mlflow":
        import os

        uri = os.environ.get("MLFLOW_TRACKING_URI") or f"sqlite:///{store.workspace.home / 'mlflow.db'}"
        mlflow.set_tracking_uri(uri)
        experiment = f"amploop/{name}"
        local = uri.startswith(("sqlite:", "file:")) or "://" not in uri
        if local and mlflow.get_experiment_by_name(experiment) is None:
            # MLflow's default artifact folder is ./mlruns under whatever directory the user is in;
            # a local tracking store keeps its artifacts in the workspace instead.
            mlflow.create_experiment(experiment, artifact_location=(store.workspace.home / "mlruns").as_uri())
        mlflow.set_experiment(experiment)
        with mlflow.start_run(run_name=f"{name}-{version}") as run:
            mlflow.log_params(
                {
                    "architecture": bundle.architecture,
                    "trained_precision": bundle.trained_precision,
                    "temperature": bundle.temperature,
                    "task": bundle.task,
                }
            )
            mlflow.log_metrics({k: float(v) for k, v in record.metrics.items() if isinstance(v, int | float)})
            mlflow.set_tags(
                {
                    "amploop.model": name,
                    "amploop.version": str(version),
                    "amploop.artifact_uri": record.artifact_uri,
                    "amploop.run_id": record.run_id or "",
                }
            )
            logged = mlflow.onnx.log_model(onnx.load_from_string(data), name="model")
        store.append_audit(
            "model.export",
            f"{name}:{version}",
            actor=actor,
            details={
                "format": fmt,
                "uri": logged.model_uri,
                "tracking_uri": uri,
                "mlflow_run_id": run.info.run_id,
                "max_abs_difference": difference,
            },
        )
        return ExportResult(
            name, record.version, fmt, logged.model_uri, hashlib.sha256(data).hexdigest(), difference, tolerance, rows
        )
    ref = store.artifacts.put_bytes(f"models/{name}/exports/{name}-{version}.onnx", data)
    store.append_audit(
        "model.export",
        f"{name}:{version}",
        actor=actor,
        details={"format": fmt, "uri": ref.uri, "sha256": ref.sha256, "max_abs_difference": difference},
    )
    return ExportResult(name, record.version, fmt, ref.uri, ref.sha256, difference, tolerance, rows)
