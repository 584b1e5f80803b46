"""A bundle as an ONNX graph: exported and checked against torch, quantized to int8, and run.

:func:`onnx_graph` exports the model with its temperature (TorchScript exporter, opset 17, a
dynamic batch axis). Inputs are the encoded tensors ``numeric``, ``categorical`` or ``image``
(the exporter drops those the model never reads); outputs are ``logits`` and the served
``probabilities``. The graph is returned only when onnxruntime's probabilities match torch's
within ``tolerance`` on seeded inputs.

:func:`quantize_int8` is ONNX Runtime's dynamic quantization of the matrix multiplications
(weights int8 per tensor, activations quantized per batch), the maintained replacement for
``torch.ao.quantization.quantize_dynamic``. :class:`OnnxRunner` runs a graph on the CPU.
"""

from __future__ import annotations

import io
import tempfile
import warnings
from collections.abc import Mapping
from pathlib import Path
from types import ModuleType

import numpy as np
import torch
from torch import nn

from amploop.errors import AmploopError, ConfigError
from amploop.models.bundle import ModelBundle

__all__ = ["OnnxRunner", "onnx_graph", "quantize_int8"]

OPSET = 17


def _onnxruntime() -> ModuleType:
    try:
        import onnxruntime
    except ImportError:
        raise AmploopError("ONNX export and ONNX Runtime inference need onnxruntime: pip install onnxruntime") from None
    return onnxruntime


def _check_exportable(bundle: ModelBundle) -> None:
    """Raise ConfigError for a model no ONNX graph is made of (gpt: token generation, not rows)."""
    if bundle.architecture == "gpt" or bundle.spec.vocab_size:
        raise ConfigError(
            "ONNX covers table and image models; gpt (text) models are not exported and run on the torch runtime only"
        )


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


def onnx_graph(
    bundle: ModelBundle, *, rows: int = 64, tolerance: float = 1e-4, module: nn.Module | None = None
) -> tuple[bytes, float]:
    """The bundle's ONNX graph and its largest absolute difference from torch's probabilities.

    ``rows`` seeded rows are run through both; a difference above ``tolerance`` is an
    AmploopError. ``module``: a new instance of the user's class, for a ``custom`` model.
    """
    onnxruntime = _onnxruntime()
    _check_exportable(bundle)
    model = bundle.build(module).cpu().eval()
    sample = _sample_inputs(bundle, rows)
    names = list(sample)
    wrapper = _Exported(model, names, bundle.temperature, bundle.task == "classification").eval()
    buffer = io.BytesIO()
    try:
        with warnings.catch_warnings(), torch.no_grad():
            warnings.simplefilter("ignore")  # the TorchScript-based exporter announces its successor
            torch.onnx.export(
                wrapper,
                tuple(sample[n] for n in names),
                buffer,
                input_names=names,
                output_names=["logits", "probabilities"],
                dynamic_axes={n: {0: "batch"} for n in [*names, "logits", "probabilities"]},
                opset_version=OPSET,
                dynamo=False,
            )
    # a user's own module may hold code the tracer cannot follow; torch's exporter errors are RuntimeErrors
    except (RuntimeError, TypeError, ValueError) as exc:
        first = (str(exc).strip().splitlines() or [type(exc).__name__])[0][:200]
        raise ConfigError(
            f"this model cannot be exported to ONNX ({first}); int8 and runtime='onnx' need an exportable "
            "model: use runtime='torch' with fp32, bf16 or fp16"
        ) from None
    graph = buffer.getvalue()
    session = onnxruntime.InferenceSession(graph, providers=["CPUExecutionProvider"])
    with torch.no_grad():
        expected = wrapper(*(sample[n] for n in names))[1].numpy()
    # The exporter drops inputs the graph never reads (an empty categorical block on a numeric-only
    # table, no numeric columns on a categorical-only one): feed exactly the inputs the graph has.
    got = session.run(["probabilities"], {i.name: sample[i.name].numpy() for i in session.get_inputs()})[0]
    difference = float(np.max(np.abs(got - expected))) if got.size else 0.0
    if not difference <= tolerance:
        raise AmploopError(f"the ONNX graph differs from torch by {difference:.2e} (> {tolerance:g}); not exported")
    return graph, difference


def quantize_int8(graph: bytes) -> bytes:
    """``graph`` with its matrix multiplications dynamically quantized: int8 weights, per-batch activations.

    Only MatMul is quantized (quantize_dynamic turns Gemm into MatMul first), as torch's dynamic
    quantization did for ``nn.Linear``: ONNX Runtime's ConvInteger made the mnist CNN about 8x
    slower than fp32 (546 vs 67 ms for 2,000 rows), not faster. Weights are signed int8 per
    tensor: on adult and mnist5k that agreed with fp32 as often as unsigned or per-channel
    weights did (99.6% and 99.8% of test rows); ``reduce_range`` only lost agreement.
    """
    _onnxruntime()
    from onnxruntime.quantization import QuantType, quantize_dynamic
    from onnxruntime.quantization.shape_inference import quant_pre_process

    with tempfile.TemporaryDirectory() as folder:  # the quantizer reads and writes files
        exported, prepared, quantized = (Path(folder) / n for n in ("model.onnx", "prepared.onnx", "int8.onnx"))
        exported.write_bytes(graph)
        # Measured: pre-processing (shape inference, graph optimization) changes neither the
        # agreement nor the speed of these graphs, but without it quantize_dynamic logs a warning
        # on the root logger every time; it takes about 15 ms.
        quant_pre_process(exported, prepared)
        quantize_dynamic(prepared, quantized, op_types_to_quantize=["MatMul"], weight_type=QuantType.QInt8)
        return quantized.read_bytes()


class OnnxRunner:
    """An ONNX Runtime session on the CPU for a graph from :func:`onnx_graph`: encoded inputs in, logits out.

    ``threads``: intra-op threads (default: torch's, so both runtimes get the same cores). One
    runner may serve several threads at once: ``InferenceSession.run`` is thread-safe.
    """

    def __init__(self, graph: bytes, *, threads: int | None = None) -> None:
        onnxruntime = _onnxruntime()
        options = onnxruntime.SessionOptions()
        options.intra_op_num_threads = threads or torch.get_num_threads()
        self.threads = options.intra_op_num_threads
        self.session = onnxruntime.InferenceSession(graph, options, providers=["CPUExecutionProvider"])
        self.input_names = [i.name for i in self.session.get_inputs()]

    def run(self, inputs: Mapping[str, np.ndarray]) -> np.ndarray:
        """The logits for ``inputs`` (rows first); inputs the graph does not read are ignored."""
        missing = [name for name in self.input_names if name not in inputs]
        if missing:
            raise ConfigError(f"the ONNX graph needs inputs {', '.join(missing)}; got {', '.join(inputs) or 'none'}")
        return self.session.run(["logits"], {name: np.ascontiguousarray(inputs[name]) for name in self.input_names})[0]
