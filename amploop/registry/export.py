"""Export a registered version to other runtimes, checked against torch before it is kept.

ONNX: the graph :func:`amploop.models.onnx.onnx_graph` makes (the model with its temperature,
a dynamic batch axis; inputs the encoded tensors ``numeric``, ``categorical`` or ``image``,
outputs the logits and the served probabilities), kept only when onnxruntime's probabilities
match torch's within ``tolerance`` on seeded inputs.

MLflow (when ``mlflow`` or ``mlflow-skinny`` is installed): the same verified ONNX graph is logged
as an MLflow model in a run named ``NAME-VERSION`` of the experiment ``amploop/NAME``, with the
version's metrics, its precision and temperature as parameters, and its lineage as tags. The
tracking URI is ``MLFLOW_TRACKING_URI`` or a SQLite file in the amploop home.
"""

from __future__ import annotations

import hashlib
from dataclasses import asdict, dataclass
from typing import Any

from amploop.errors import AmploopError, ConfigError
from amploop.models.onnx import onnx_graph
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
    data, difference = onnx_graph(bundle, rows=rows, tolerance=tolerance)
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
