"""The one batched inference path: encoded rows → model outputs, under a chosen precision.

:func:`batched_outputs` is the only loop in amploop that runs a torch model over rows for
inference: training's validation, evaluation, the precision experiment and serving all go
through it. :class:`Predictor` turns a :class:`~amploop.models.bundle.ModelBundle` into
predictions (schema check → encoding → batched forward → calibrated probabilities) on one of
two runtimes: torch (fp32, or bf16/fp16 autocast) or ONNX Runtime (fp32, or int8 dynamic
quantization: int8 always runs there). :func:`check_parity` measures how often two predictors
agree, :func:`choose_inference_precision` picks a precision for a device and says why.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator, Mapping
from dataclasses import asdict, dataclass
from typing import TYPE_CHECKING, Any

import numpy as np
import torch
from torch import nn

from amploop.errors import ConfigError, DataError
from amploop.models.bundle import ModelBundle
from amploop.models.onnx import OnnxRunner, onnx_graph, quantize_int8

if TYPE_CHECKING:
    import pandas as pd

    from amploop.data import EncodedBatch

__all__ = [
    "INFERENCE_PRECISIONS",
    "INFERENCE_RUNTIMES",
    "ModelBundle",
    "ParityCheck",
    "Predictor",
    "batched_outputs",
    "check_parity",
    "choose_inference_precision",
    "cpu_has_native_bf16",
    "model_inputs",
    "model_outputs",
    "to_device",
]

INFERENCE_PRECISIONS = ("fp32", "bf16", "fp16", "int8")
INFERENCE_RUNTIMES = ("torch", "onnx")
ONNX_PRECISIONS = ("fp32", "int8")
REGRESSION_TOLERANCE = 1e-2  # parity: a value agrees within 1% (see check_parity)


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
    """Batched inference for a bundle: validate, encode, forward under the chosen precision and runtime.

    ``predict(frame)`` gives class names (or values), ``predict_outputs`` calibrated class
    probabilities, ``logits`` raw outputs. Rows are checked against the training schema first.

    ``runtime="torch"`` runs fp32, bf16 or fp16 (autocast); ``runtime="onnx"`` runs the bundle's
    verified ONNX graph (:func:`~amploop.models.onnx.onnx_graph`) in ONNX Runtime on the CPU, in
    fp32 or int8. ``precision="int8"`` always runs there (ONNX Runtime's dynamic quantization),
    whichever runtime is asked for: ``predictor.runtime`` says which one runs.

    One predictor may answer several threads at once: ONNX Runtime sessions are thread-safe, and
    on torch the model stays in eval mode while autocast and ``no_grad`` are per thread.
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
        runtime: str = "torch",
    ) -> None:
        if precision not in INFERENCE_PRECISIONS:
            raise ConfigError(f"unknown inference precision '{precision}'; valid: {', '.join(INFERENCE_PRECISIONS)}")
        if runtime not in INFERENCE_RUNTIMES:
            raise ConfigError(f"unknown inference runtime '{runtime}'; valid: {', '.join(INFERENCE_RUNTIMES)}")
        if precision == "int8":  # ONNX Runtime's dynamic quantization: torch.ao's is deprecated
            runtime = "onnx"
        if runtime == "onnx" and precision not in ONNX_PRECISIONS:
            raise ConfigError(f"the onnx runtime runs fp32 and int8; run {precision} with runtime='torch'")
        self.bundle = bundle
        self.reference = reference  # the registered version, "NAME:VERSION", when loaded from the registry
        self.precision = precision
        self.runtime = runtime
        self.device = torch.device(device)
        self.batch_size = batch_size
        self.model: nn.Module | None = None
        self.runner_: OnnxRunner | None = None
        if runtime == "onnx":
            if self.device.type != "cpu":
                raise ConfigError(f"{precision} on the onnx runtime runs on the CPU; use device='cpu', not '{device}'")
            graph, _ = onnx_graph(bundle, module=module)
            self.runner_ = OnnxRunner(quantize_int8(graph) if precision == "int8" else graph)
        else:
            self.model = bundle.build(module).to(self.device)
        self.encoder_ = bundle.encoder()
        from amploop.data import Schema

        self.schema_ = Schema.from_dict(bundle.schema)

    def describe(self) -> dict[str, Any]:
        """What answers: precision, runtime, device and the registered version (or None)."""
        return {
            "precision": self.precision,
            "runtime": self.runtime,
            "device": str(self.device),
            "reference": self.reference,
        }

    def _autocast(self) -> contextlib.AbstractContextManager[Any]:
        dtype = {"bf16": torch.bfloat16, "fp16": torch.float16}.get(self.precision)
        if dtype is None:
            return contextlib.nullcontext()
        return torch.autocast(device_type=self.device.type, dtype=dtype)

    def _forward(self, inputs: dict[str, torch.Tensor]) -> np.ndarray:
        if self.runner_ is None:
            assert self.model is not None
            return model_outputs(self.model, inputs, batch_size=self.batch_size, autocast=self._autocast).numpy()
        arrays = {name: tensor.numpy() for name, tensor in inputs.items()}
        rows = len(next(iter(arrays.values())))
        parts = [
            self.runner_.run({name: array[start : start + self.batch_size] for name, array in arrays.items()})
            for start in range(0, rows, self.batch_size)
        ]
        return np.concatenate(parts)

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
        outputs = self._forward(model_inputs(batch))
        return outputs if self.bundle.task == "classification" else outputs.squeeze(-1)

    def predict_outputs(
        self,
        table: pd.DataFrame,
        arrays: dict[str, np.ndarray] | None = None,
        *,
        calibrated: bool = True,
        validate: bool = True,
    ) -> np.ndarray:
        """Class probabilities (n, classes), temperature-scaled unless ``calibrated=False``; or values (n,)."""
        return self._served(self.logits(table, arrays, validate=validate), calibrated)

    def outputs_for_batch(self, batch: EncodedBatch) -> np.ndarray:
        """:meth:`predict_outputs` for rows already encoded (``encoder_.transform_columns``): no table needed."""
        if len(batch) == 0:
            raw = np.zeros((0, self.bundle.spec.n_outputs) if self.bundle.task == "classification" else (0,))
        else:
            outputs = self._forward(model_inputs(batch))
            raw = outputs if self.bundle.task == "classification" else outputs.squeeze(-1)
        return self._served(raw, calibrated=True)

    def _served(self, raw: np.ndarray, calibrated: bool) -> np.ndarray:
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


@dataclass(frozen=True)
class ParityCheck:
    """How often a candidate predictor gives the baseline's answer, on the same rows."""

    precision: str  # the candidate's
    runtime: str  # the candidate's
    rows: int
    agreement: float  # share of rows with the baseline's answer
    max_probability_difference: float  # largest difference of a served probability (regression: of a value)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    def passed(self, min_agreement: float) -> bool:
        return self.agreement >= min_agreement


def check_parity(
    candidate: Predictor, baseline: Predictor, table: pd.DataFrame, arrays: dict[str, np.ndarray] | None = None
) -> ParityCheck:
    """Agreement of ``candidate`` with ``baseline`` (usually torch fp32) on the rows of ``table``.

    Classification: the share of rows with the same most likely class. Regression: the share of
    values within 1% (:data:`REGRESSION_TOLERANCE`) of the baseline's, relative to the larger of
    the value and the spread (standard deviation) of the baseline's values, since 1% of a value
    near zero is zero; evaluation's precision parity uses the same rule.
    """
    expected = baseline.predict_outputs(table, arrays)
    got = candidate.predict_outputs(table, arrays)
    if len(expected) == 0:
        raise DataError("a parity check needs at least one row; pass a table with rows")
    if got.shape != expected.shape:
        raise ConfigError(
            f"the candidate answers with shape {list(got.shape)}, the baseline with {list(expected.shape)}; "
            "compare predictors of the same model"
        )
    if candidate.bundle.task == "classification":
        agrees = got.argmax(1) == expected.argmax(1)
    else:
        scale = np.maximum(np.abs(expected), float(np.std(expected)))
        agrees = np.abs(got - expected) <= REGRESSION_TOLERANCE * np.maximum(scale, 1e-6)
    return ParityCheck(
        precision=candidate.precision,
        runtime=candidate.runtime,
        rows=len(expected),
        agreement=float(np.mean(agrees)),
        max_probability_difference=float(np.max(np.abs(got - expected))),
    )


# bench/serve_models.py, 1 thread on a CPU with native bf16 (AVX512-BF16), predict_outputs rows/s
# of bf16 autocast relative to fp32: adult MLP 0.91x one row per call, 1.00x 64 rows per call;
# mnist CNN 0.69x and 1.09x. The forward pass alone, one row: 0.37x and 0.74x. On 2 threads the
# MLP's forward in batches of 64 fell to 0.42x. ONNX Runtime fp32 was 1.05-4.5x torch fp32.
_CPU_AUTO_REASON = (
    "on the CPU, autocast's casts cost more than they save for models this size (bench/serve_models.py, "
    "native bf16: bf16 served 0.69-0.91x fp32's rows/s one row at a time, 1.00-1.09x in batches of 64)"
)


def choose_inference_precision(requested: str, device: str) -> tuple[str, str]:
    """The precision to serve with on ``device`` for ``requested`` (auto, fp32, bf16, fp16, int8), and why.

    Examples
    --------
    >>> choose_inference_precision("auto", "cpu")[0]
    'fp32'
    >>> choose_inference_precision("int8", "cpu")
    ('int8', 'int8 requested: dynamic quantization of the linear layers, run by ONNX Runtime on the CPU')
    """
    valid = ("auto", *INFERENCE_PRECISIONS)
    if requested not in valid:
        raise ConfigError(f"unknown inference precision '{requested}'; valid: {', '.join(valid)}")
    where = torch.device(device)
    if where.type == "cuda":
        if requested == "int8":
            raise ConfigError("int8 runs through ONNX Runtime on the CPU; use device 'cpu', or bf16/fp16 on the GPU")
        major, minor = torch.cuda.get_device_capability(where)
        gpu = f"{torch.cuda.get_device_name(where)} (compute capability {major}.{minor})"
        if requested == "auto":
            if major >= 8:
                return "bf16", f"{gpu} has bf16 tensor cores"
            return "fp16", f"{gpu} has no bf16 tensor cores; fp16 autocast"
        if requested == "bf16" and major < 8:
            raise ConfigError(f"bf16 needs compute capability >= 8.0; {gpu} has not: use fp16 or auto")
        return requested, f"{requested} requested on {gpu}"
    if where.type != "cpu":
        raise ConfigError(f"device '{device}' is not supported for inference; use cpu or cuda")
    if requested == "auto":
        return "fp32", _CPU_AUTO_REASON
    if requested == "fp16":
        raise ConfigError(
            "fp16 on the CPU: autocast has few fp16 CPU kernels and is slower than fp32; use fp32 or int8"
        )
    if requested == "bf16":
        if not cpu_has_native_bf16():
            raise ConfigError(
                "bf16 on this CPU: it has no native bf16 (AVX512-BF16 or AMX), so bf16 is emulated and slower "
                "than fp32; use fp32 or int8"
            )
        return "bf16", "bf16 requested; the CPU has native bf16 (AVX512-BF16 or AMX)"
    if requested == "int8":
        return "int8", "int8 requested: dynamic quantization of the linear layers, run by ONNX Runtime on the CPU"
    return "fp32", "fp32 requested"


def cpu_has_native_bf16() -> bool:
    """True when the CPU computes bf16 natively (AVX512-BF16 or AMX tiles); training asks the same."""
    found = False
    for probe in ("_is_avx512_bf16_supported", "_is_amx_tile_supported"):
        check = getattr(torch.cpu, probe, None)
        if check is not None:
            with contextlib.suppress(RuntimeError):
                found = found or bool(check())
    if not found:  # older torch: read the flags the kernel reports
        with contextlib.suppress(OSError), open("/proc/cpuinfo", encoding="ascii", errors="ignore") as fh:
            flags = fh.read()
            found = "avx512_bf16" in flags or "amx_bf16" in flags
    return found
