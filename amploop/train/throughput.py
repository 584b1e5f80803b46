"""Throughput, step time, data-wait fraction, peak memory and model FLOPs utilisation (MFU).

MFU = achieved model FLOP/s divided by the GPU's dense peak for the precision in use. Model
FLOPs per token for a decoder transformer follow the PaLM paper's appendix B (Chowdhery et al.
2022): 6N + 12·L·H·Q·T (N parameters, L layers, H heads, Q head size, T sequence length),
covering forward and backward. For other models the FLOPs of one training step are counted
with ``torch.utils.flop_counter``. A GPU missing from the peak table gets no MFU, never a guess.
"""

from __future__ import annotations

import contextlib
import resource
import statistics
import sys
from dataclasses import asdict, dataclass, field
from typing import Any

import torch

__all__ = [
    "PEAK_TFLOPS",
    "ThroughputMeter",
    "ThroughputReport",
    "peak_tflops",
    "progress_bar",
    "transformer_flops_per_token",
]

# Dense (no sparsity) peak TFLOP/s by precision, from each vendor datasheet. Names are matched
# against torch.cuda.get_device_name(); more specific names come first.
PEAK_TFLOPS: list[tuple[str, dict[str, float]]] = [
    # NVIDIA H200 datasheet (SXM): same tensor cores as H100 SXM
    ("H200", {"bf16": 989.4, "fp16": 989.4, "tf32": 494.7, "fp32": 66.9}),
    # NVIDIA H100 datasheet, PCIe card
    ("H100 PCIe", {"bf16": 756.0, "fp16": 756.0, "tf32": 378.0, "fp32": 51.2}),
    # NVIDIA H100 datasheet, SXM5 (also reported as "H100 80GB HBM3")
    ("H100", {"bf16": 989.4, "fp16": 989.4, "tf32": 494.7, "fp32": 66.9}),
    # NVIDIA A100 datasheet (SXM4 and PCIe share the tensor peak)
    ("A100", {"bf16": 312.0, "fp16": 312.0, "tf32": 156.0, "fp32": 19.5}),
    # NVIDIA L40S datasheet
    ("L40S", {"bf16": 362.1, "fp16": 362.1, "tf32": 183.0, "fp32": 91.6}),
    # NVIDIA L4 datasheet
    ("L4", {"bf16": 121.0, "fp16": 121.0, "tf32": 60.0, "fp32": 30.3}),
    # NVIDIA A10 datasheet
    ("A10", {"bf16": 125.0, "fp16": 125.0, "tf32": 62.5, "fp32": 31.2}),
    # NVIDIA V100 datasheet (SXM2); no bf16 or tf32
    ("V100", {"fp16": 125.0, "fp32": 15.7}),
    # NVIDIA T4 datasheet; no bf16 or tf32
    ("T4", {"fp16": 65.0, "fp32": 8.1}),
]


def peak_tflops(device_name: str, mode: str) -> float | None:
    for key, peaks in PEAK_TFLOPS:
        if key in device_name:
            return peaks.get(mode)
    return None


def transformer_flops_per_token(n_params: int, n_layer: int, n_head: int, head_dim: int, seq_len: int) -> float:
    """Training FLOPs per token (forward + backward), PaLM appendix B."""
    return 6.0 * n_params + 12.0 * n_layer * n_head * head_dim * seq_len


@dataclass(frozen=True)
class ThroughputReport:
    samples_per_s: float
    tokens_per_s: float | None
    step_time_ms: float  # median over measured steps
    data_wait_fraction: float  # share of step time spent gathering and moving batches
    peak_memory_bytes: int  # GPU: max allocated; CPU: peak resident set of the process
    mfu: float | None  # None when the GPU's peak is unknown or on a CPU
    measured_steps: int
    notes: list[str] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


class ThroughputMeter:
    """Collect per-step timings; the first ``warmup_steps`` (compilation, caches) are left out."""

    def __init__(self, device: torch.device, *, warmup_steps: int = 3) -> None:
        self.device = device
        self.warmup_steps = warmup_steps
        self.step_times: list[float] = []
        self.data_times: list[float] = []
        self.samples = 0
        self.tokens = 0
        self.seen_steps = 0
        if device.type == "cuda":
            torch.cuda.reset_peak_memory_stats(device)

    def record(self, step_seconds: float, data_seconds: float, samples: int, tokens: int = 0) -> None:
        self.seen_steps += 1
        if self.seen_steps <= self.warmup_steps:
            return
        self.step_times.append(step_seconds)
        self.data_times.append(data_seconds)
        self.samples += samples
        self.tokens += tokens

    def live_samples_per_s(self) -> float:
        """Samples per second so far, per process (for the progress bar)."""
        return self.samples / sum(self.step_times) if self.step_times else 0.0

    def report(
        self, *, flops_per_sample: float | None = None, precision_mode: str = "fp32", world_size: int = 1
    ) -> ThroughputReport:
        total = sum(self.step_times)
        notes: list[str] = []
        if not self.step_times:
            notes.append(f"too few steps to measure (the first {self.warmup_steps} are warm-up)")
        samples_per_s = self.samples * world_size / total if total else 0.0
        tokens_per_s = self.tokens * world_size / total if total and self.tokens else None
        if self.device.type == "cuda":
            peak_memory = int(torch.cuda.max_memory_allocated(self.device))
        else:
            usage = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
            peak_memory = int(usage if sys.platform == "darwin" else usage * 1024)
        mfu = None
        if self.device.type == "cuda" and flops_per_sample and samples_per_s:
            peak = peak_tflops(torch.cuda.get_device_name(self.device), precision_mode)
            if peak is None:
                notes.append(f"no peak FLOP/s known for {torch.cuda.get_device_name(self.device)}: no MFU")
            else:
                mfu = flops_per_sample * samples_per_s / (peak * 1e12 * world_size)
        return ThroughputReport(
            samples_per_s=round(samples_per_s, 2),
            tokens_per_s=round(tokens_per_s, 1) if tokens_per_s else None,
            step_time_ms=round(statistics.median(self.step_times) * 1000, 3) if self.step_times else 0.0,
            data_wait_fraction=round(sum(self.data_times) / total, 4) if total else 0.0,
            peak_memory_bytes=peak_memory,
            mfu=round(mfu, 4) if mfu is not None else None,
            measured_steps=len(self.step_times),
            notes=notes,
        )


def count_training_flops(
    model: torch.nn.Module, inputs: dict[str, torch.Tensor], loss_fn: Any, targets: torch.Tensor
) -> float:
    """FLOPs of one forward and backward pass on ``inputs``, counted by torch's FLOP counter."""
    from torch.utils.flop_counter import FlopCounterMode

    counter = FlopCounterMode(display=False)
    with counter:
        loss_fn(model(inputs), targets).backward()
    model.zero_grad(set_to_none=True)
    return float(counter.get_total_flops())


def progress_bar(enabled: bool) -> Any:
    """A rich progress bar on stderr (it vanishes when done), or a no-op context yielding ``None``."""
    if not enabled:
        return contextlib.nullcontext()
    from rich.console import Console
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

    return Progress(
        TextColumn("{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeRemainingColumn(),
        console=Console(stderr=True),
        transient=True,
    )
