"""Numeric precision for training and inference: fp32, tf32, bf16, fp16, or auto.

``auto`` picks the fastest precision the device runs natively:

- CUDA, compute capability >= 8.0 (Ampere, Hopper, ...): bf16 autocast. Same exponent range as
  fp32, so no loss scaling is needed.
- CUDA 7.x (Volta, Turing): fp16 autocast with a GradScaler (dynamic loss scaling,
  Micikevicius et al. 2018, "Mixed Precision Training").
- CPU without native bf16: fp32, because emulated bf16 is slower than fp32 there (measured 14x
  slower for an MLP step on AVX2).
- CPU with native bf16 (AVX512-BF16 or AMX): :func:`resolve_precision` says bf16, and training
  then times a few steps of the actual model in both (:func:`probe_cpu_precision`) and keeps the
  faster: for small models autocast's casts cost more than bf16 saves (measured 1,331 vs 3,518
  samples/s for an MLP on a 409-row table, bf16 vs fp32).

The choice and the reason for it are returned as a :class:`PrecisionChoice` and stored with
the run.

Examples
--------
>>> choice = resolve_precision("fp32", "cpu")
>>> choice.mode, choice.use_grad_scaler, choice.reason
('fp32', False, 'fp32 requested')
"""

from __future__ import annotations

import contextlib
import statistics
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass
from typing import Any

import torch

from amploop.errors import ConfigError
from amploop.models.runtime import cpu_has_native_bf16

__all__ = ["PRECISIONS", "PrecisionChoice", "cpu_has_native_bf16", "probe_cpu_precision", "resolve_precision"]

PROBE_REPEATS = 5  # timed steps per precision, after two untimed ones
PROBE_MARGIN = 1.1  # bf16 must be this much faster than fp32 to be chosen

PRECISIONS = ("auto", "fp32", "tf32", "bf16", "fp16")


@dataclass(frozen=True)
class PrecisionChoice:
    """A resolved precision: what autocast does, whether a GradScaler runs, and why."""

    requested: str
    mode: str  # fp32, tf32, bf16, fp16
    device_type: str  # cpu, cuda
    reason: str

    @property
    def autocast_dtype(self) -> torch.dtype | None:
        return {"bf16": torch.bfloat16, "fp16": torch.float16}.get(self.mode)

    @property
    def use_grad_scaler(self) -> bool:
        return self.mode == "fp16"

    def autocast(self) -> contextlib.AbstractContextManager[Any]:
        """The autocast context for forward passes (a no-op for fp32 and tf32)."""
        dtype = self.autocast_dtype
        if dtype is None:
            return contextlib.nullcontext()
        return torch.autocast(device_type=self.device_type, dtype=dtype)

    def grad_scaler(self) -> torch.amp.GradScaler:
        return torch.amp.GradScaler(self.device_type, enabled=self.use_grad_scaler)

    def apply_matmul_settings(self) -> None:
        """tf32 lets fp32 matmuls and convolutions use TF32 tensor cores (CUDA >= 8.0)."""
        if self.device_type == "cuda":
            allow = self.mode == "tf32"
            torch.backends.cuda.matmul.allow_tf32 = allow
            torch.backends.cudnn.allow_tf32 = allow

    def to_dict(self) -> dict[str, Any]:
        return {**asdict(self), "use_grad_scaler": self.use_grad_scaler}


def resolve_precision(requested: str, device: str | torch.device) -> PrecisionChoice:
    """Turn a requested precision into the one to use on ``device``, or raise ConfigError."""
    if requested not in PRECISIONS:
        raise ConfigError(f"unknown precision '{requested}'; valid: {', '.join(PRECISIONS)}")
    device = torch.device(device)
    kind = device.type
    if kind == "cuda":
        major, minor = torch.cuda.get_device_capability(device)
        capability = f"{major}.{minor}"
        name = torch.cuda.get_device_name(device)
        if requested == "auto":
            if major >= 8:
                return PrecisionChoice(
                    requested, "bf16", kind, f"{name} (compute capability {capability}) has bf16 tensor cores"
                )
            if major >= 7:
                return PrecisionChoice(
                    requested,
                    "fp16",
                    kind,
                    f"{name} (compute capability {capability}) has fp16 tensor cores "
                    "but no bf16; fp16 with dynamic loss scaling",
                )
            return PrecisionChoice(
                requested, "fp32", kind, f"{name} (compute capability {capability}) has no tensor cores"
            )
        if requested in ("bf16", "tf32") and major < 8:
            raise ConfigError(f"{requested} needs compute capability >= 8.0; {name} has {capability}; use fp16 or auto")
        if requested == "fp16" and (major, minor) < (5, 3):
            raise ConfigError(f"fp16 needs compute capability >= 5.3; {name} has {capability}; use fp32")
        return PrecisionChoice(requested, requested, kind, f"{requested} requested")
    if kind != "cpu":
        raise ConfigError(f"device '{device}' is not supported; use cpu or cuda")
    if requested == "auto":
        if cpu_has_native_bf16():
            return PrecisionChoice(requested, "bf16", kind, "the CPU has native bf16 (AVX512-BF16 or AMX)")
        return PrecisionChoice(
            requested,
            "fp32",
            kind,
            "the CPU has no native bf16 (no AVX512-BF16 or AMX): emulated bf16 is slower than fp32",
        )
    if requested == "tf32":
        raise ConfigError("tf32 exists only on CUDA GPUs (compute capability >= 8.0); use fp32 on a CPU")
    reason = f"{requested} requested"
    if requested == "bf16" and not cpu_has_native_bf16():
        reason += " (this CPU emulates bf16: expect it to be slower than fp32)"
    return PrecisionChoice(requested, requested, kind, reason)


def probe_cpu_precision(step: Callable[[PrecisionChoice], None]) -> PrecisionChoice:
    """Run ``step`` (one forward and backward pass) in fp32 and bf16 on the CPU; choose the faster.

    The steps alternate so both see the same cache and frequency state; each precision's time is
    the median of :data:`PROBE_REPEATS`. bf16 is chosen only when it is at least
    :data:`PROBE_MARGIN` times faster, since it also costs accuracy. The reason records the times.
    """
    contenders = {mode: PrecisionChoice("auto", mode, "cpu", "") for mode in ("fp32", "bf16")}
    timings: dict[str, list[float]] = {mode: [] for mode in contenders}
    for repeat in range(PROBE_REPEATS + 2):
        for mode, choice in contenders.items():
            started = time.perf_counter()
            step(choice)
            if repeat >= 2:
                timings[mode].append(time.perf_counter() - started)
    fp32, bf16 = (statistics.median(timings[m]) * 1000 for m in ("fp32", "bf16"))
    measured = f"measured on this model: fp32 {fp32:.2f} ms, bf16 {bf16:.2f} ms per step"
    if bf16 * PROBE_MARGIN <= fp32:
        return PrecisionChoice("auto", "bf16", "cpu", f"the CPU has native bf16 and it is faster here ({measured})")
    return PrecisionChoice("auto", "fp32", "cpu", f"fp32 is as fast or faster than the CPU's native bf16 ({measured})")
