"""The precision experiment: the same model, seed, data and steps under several precisions.

For each mode it reports throughput, peak memory, final training loss, validation and test
accuracy, and how often the test predictions agree with fp32's. On a CPU without native bf16
the bf16 row is kept and marked slower, so the trade-off is visible rather than hidden.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import TYPE_CHECKING, Any

import numpy as np

from amploop.config import AmploopConfig, ModelConfig, TrainConfig
from amploop.errors import ConfigError
from amploop.train.fit import FitResult, fit, model_logits
from amploop.train.precision import PRECISIONS, cpu_has_native_bf16
from amploop.train.tensors import to_tensors

if TYPE_CHECKING:
    from amploop.data import Dataset

__all__ = ["PrecisionComparison", "PrecisionRow", "compare_precisions"]


@dataclass(frozen=True)
class PrecisionRow:
    mode: str
    samples_per_s: float
    speed_vs_fp32: float | None
    peak_memory_bytes: int | None  # None on a CPU, where no per-run peak is measurable
    final_loss: float
    validation_accuracy: float | None
    test_accuracy: float | None
    agreement_with_fp32: float | None
    note: str = ""


@dataclass(frozen=True)
class PrecisionComparison:
    dataset: str
    architecture: str
    device: str
    seed: int
    steps: int
    rows: list[PrecisionRow]

    def to_dict(self) -> dict[str, Any]:
        return {
            **{k: v for k, v in asdict(self).items() if k != "rows"},
            "rows": [asdict(r) for r in self.rows],
        }


def _predictions(result: FitResult) -> np.ndarray:
    data = to_tensors(result.splits.test, result.encoder, result.labels)
    return model_logits(result.model, data, result.train_result.precision).argmax(-1)


def compare_precisions(
    dataset: Dataset,
    *,
    architecture: str,
    modes: list[str],
    config: TrainConfig,
    options: dict[str, Any] | None = None,
) -> PrecisionComparison:
    """Train once per mode from the same seed and compare (fp32 is always run as the reference)."""
    unknown = [m for m in modes if m not in PRECISIONS or m == "auto"]
    if unknown:
        raise ConfigError(f"unknown precision mode(s) {', '.join(unknown)}; valid: fp32, tf32, bf16, fp16")
    ordered = ["fp32", *[m for m in modes if m != "fp32"]]
    results, predictions = {}, {}
    for mode in ordered:
        run = AmploopConfig(
            model=ModelConfig(architecture=architecture, options=options or {}),
            train=config.model_copy(update={"precision": mode}),
        )
        result = fit(dataset, run)
        results[mode] = result
        predictions[mode] = _predictions(result)
    reference = results["fp32"].train_result
    rows = []
    for mode in ordered:
        if mode not in modes and mode == "fp32":
            continue
        trained = results[mode].train_result
        speed = (
            trained.throughput.samples_per_s / reference.throughput.samples_per_s
            if reference.throughput.samples_per_s
            else None
        )
        note = ""
        if speed is not None and speed < 1.0:
            note = "slower than fp32"
            if mode == "bf16" and trained.precision.device_type == "cpu" and not cpu_has_native_bf16():
                note += ": this CPU has no native bf16"
        metrics = results[mode].metrics
        rows.append(
            PrecisionRow(
                mode=mode,
                samples_per_s=trained.throughput.samples_per_s,
                speed_vs_fp32=round(speed, 3) if speed is not None else None,
                peak_memory_bytes=trained.throughput.peak_memory_bytes
                if trained.precision.device_type == "cuda"
                else None,
                final_loss=round(trained.loss_curve[-1], 5) if trained.loss_curve else float("nan"),
                validation_accuracy=metrics.get("validation_accuracy"),
                test_accuracy=metrics.get("test_accuracy"),
                agreement_with_fp32=round(float(np.mean(predictions[mode] == predictions["fp32"])), 4),
                note=note,
            )
        )
    return PrecisionComparison(
        dataset=dataset.name,
        architecture=architecture,
        device=str(reference.precision.device_type),
        seed=config.seed,
        steps=reference.steps,
        rows=rows,
    )
