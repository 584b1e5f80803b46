"""Robustness: how the metric degrades under corrupted inputs, and whether lower precision changes answers.

Corruptions (seeded, applied to the raw inputs before encoding):

- tables: Gaussian noise on numeric features (sigma times each column's standard deviation),
  and values blanked at random (missing values, in numeric and categorical columns alike);
- images: Gaussian pixel noise (sigma on the [0, 1] scale), rotation, Gaussian blur and reduced
  contrast, in the spirit of the ImageNet-C corruptions (Hendrycks and Dietterich, 2019).

The first level of each corruption is its mildest; the ``mild_corruption_drop`` gate metric
reads those, the harsher levels draw the degradation curve.

Precision parity compares the served precisions (bf16, fp16 autocast; int8 dynamic
quantization of linear layers) with fp32 on the same rows: the share of identical predicted
classes (regression: values within 1% of fp32's, or of the spread of fp32's values when they
are near zero) and the metric difference.

Each result keeps its per-row scores (correct or not; squared error; agreeing or not) outside
its JSON form, so that the gate can bootstrap an interval on the same resamples as every
other metric.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np
import pandas as pd
import torch
import torch.nn.functional as F
from torch import nn

from amploop.data.dataset import Dataset
from amploop.models.runtime import ModelBundle, Predictor

__all__ = ["CorruptionResult", "ParityResult", "RobustnessReport", "corruption_results", "precision_parity"]

TABLE_CORRUPTIONS: dict[str, tuple[float, ...]] = {"feature_noise": (0.1, 0.5, 1.0), "missing_values": (0.1, 0.3)}
IMAGE_CORRUPTIONS: dict[str, tuple[float, ...]] = {
    "gaussian_noise": (0.1, 0.2, 0.3),
    "rotation": (15.0, 30.0),
    "blur": (1.0, 2.0),
    "contrast": (0.5, 0.25),
}


@dataclass(frozen=True)
class CorruptionResult:
    corruption: str
    level: float
    metric: float
    drop: float  # clean metric minus corrupted metric (accuracy) or the reverse (error metrics)
    mild: bool = False  # the corruption's mildest level
    row_scores: np.ndarray | None = field(default=None, repr=False, compare=False)  # per row: correct, or squared error

    def to_dict(self) -> dict[str, Any]:
        return {k: v for k, v in asdict(self).items() if k != "row_scores"}


@dataclass(frozen=True)
class RobustnessReport:
    """The clean metric and one :class:`CorruptionResult` per corruption and level."""

    clean_metric: float
    corruptions: list[CorruptionResult]
    metric: str = "accuracy"  # accuracy (classification) or rmse (regression)
    clean_row_scores: np.ndarray | None = field(default=None, repr=False, compare=False)

    @property
    def largest_drop(self) -> float | None:
        """The worst drop over the suite (the ``corruption_drop`` gate metric); None for an empty suite."""
        return max((c.drop for c in self.corruptions), default=None)

    @property
    def largest_mild_drop(self) -> float | None:
        """The worst drop at the corruptions' mildest levels; None for an empty suite."""
        return max((c.drop for c in self.corruptions if c.mild), default=None)

    def to_dict(self) -> dict[str, Any]:
        return {
            "clean_metric": self.clean_metric,
            "metric": self.metric,
            "corruptions": [c.to_dict() for c in self.corruptions],
        }


@dataclass(frozen=True)
class ParityResult:
    precision: str
    agreement: float  # share of rows with the same predicted class (regression: within 1% of fp32)
    metric: float
    metric_delta: float  # this precision's metric minus fp32's
    agrees: np.ndarray | None = field(default=None, repr=False, compare=False)  # per row

    def to_dict(self) -> dict[str, Any]:
        return {k: v for k, v in asdict(self).items() if k != "agrees"}


def _row_scores(bundle: ModelBundle, outputs: np.ndarray, labels: np.ndarray) -> np.ndarray:
    """Per row: 1.0 when correct (classification), else the squared error (regression)."""
    if bundle.task == "classification":
        return (outputs.argmax(1) == labels).astype(float)
    return (outputs - labels) ** 2


def _score(bundle: ModelBundle, outputs: np.ndarray, labels: np.ndarray) -> float:
    if len(labels) == 0:
        return float("nan")
    scores = _row_scores(bundle, outputs, labels)
    return float(scores.mean()) if bundle.task == "classification" else float(np.sqrt(scores.mean()))


def _table_corruption(
    kind: str, level: float, table: pd.DataFrame, columns: list[str], numeric: list[str], rng: np.random.Generator
) -> pd.DataFrame:
    out = table.copy()
    if kind == "feature_noise":
        for name in numeric:
            values = pd.to_numeric(out[name], errors="coerce").astype(float)
            out[name] = values + rng.normal(0.0, level * float(values.std() or 1.0), len(values))
    elif kind == "missing_values":
        for name in columns:
            blank = rng.random(len(out)) < level
            out[name] = out[name].astype(object).where(~blank, None)
            if name in numeric:
                out[name] = pd.to_numeric(out[name], errors="coerce")
    return out


def _gaussian_kernel(sigma: float) -> torch.Tensor:
    radius = max(1, int(math.ceil(3 * sigma)))
    x = torch.arange(-radius, radius + 1, dtype=torch.float32)
    kernel = torch.exp(-(x**2) / (2 * sigma**2))
    return kernel / kernel.sum()


def _image_corruption(kind: str, level: float, images: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    scale = 255.0 if images.dtype == np.uint8 else 1.0
    x = torch.from_numpy(images.astype(np.float32) / scale)
    squeeze = x.dim() == 3
    if squeeze:
        x = x[:, None]
    if kind == "gaussian_noise":
        x = x + torch.from_numpy(rng.normal(0.0, level, size=tuple(x.shape)).astype(np.float32))
    elif kind == "rotation":
        angle = math.radians(level)
        theta = torch.tensor([[math.cos(angle), -math.sin(angle), 0.0], [math.sin(angle), math.cos(angle), 0.0]])
        grid = F.affine_grid(theta.expand(x.shape[0], 2, 3), list(x.shape), align_corners=False)
        x = F.grid_sample(x, grid, align_corners=False, padding_mode="zeros")
    elif kind == "blur":
        k = _gaussian_kernel(level)
        channels = x.shape[1]
        pad = len(k) // 2
        x = F.conv2d(
            F.pad(x, (pad, pad, 0, 0), mode="replicate"),
            k.view(1, 1, 1, -1).expand(channels, 1, 1, -1),
            groups=channels,
        )
        x = F.conv2d(
            F.pad(x, (0, 0, pad, pad), mode="replicate"),
            k.view(1, 1, -1, 1).expand(channels, 1, -1, 1),
            groups=channels,
        )
    elif kind == "contrast":
        mean = x.mean(dim=(1, 2, 3), keepdim=True)
        x = (x - mean) * level + mean
    x = x.clamp(0.0, 1.0) * scale
    if squeeze:
        x = x[:, 0]
    return x.numpy().astype(np.float32)


def corruption_results(
    predictor: Predictor,
    dataset: Dataset,
    labels: np.ndarray,
    *,
    clean_outputs: np.ndarray | None = None,
    seed: int = 0,
) -> RobustnessReport:
    """The clean metric and the metric under every corruption and level.

    ``clean_outputs``: the predictor's outputs on the uncorrupted rows when the caller already
    holds them; only the corrupted inputs then go through the model.
    """
    bundle = predictor.bundle
    if clean_outputs is None:
        clean_outputs = predictor.predict_outputs(dataset.table, dataset.arrays)
    clean = _score(bundle, clean_outputs, labels)
    results: list[CorruptionResult] = []
    sign = 1.0 if bundle.task == "classification" else -1.0

    def record(kind: str, level: float, outputs: np.ndarray) -> None:
        metric = _score(bundle, outputs, labels)
        mild = level == (IMAGE_CORRUPTIONS if image_columns else TABLE_CORRUPTIONS)[kind][0]
        scores = _row_scores(bundle, outputs, labels)
        results.append(CorruptionResult(kind, level, metric, sign * (clean - metric), mild, scores))

    image_columns = [c for c in dataset.arrays]
    if image_columns:
        for kind, levels in IMAGE_CORRUPTIONS.items():
            for level in levels:
                rng = np.random.default_rng(seed)
                arrays = {k: _image_corruption(kind, level, v, rng) for k, v in dataset.arrays.items()}
                record(kind, level, predictor.predict_outputs(dataset.table, arrays, validate=False))
    else:
        encoder = predictor.encoder_
        columns = encoder.numeric_columns_ + encoder.categorical_columns_
        for kind, levels in TABLE_CORRUPTIONS.items():
            for level in levels:
                rng = np.random.default_rng(seed)
                table = _table_corruption(kind, level, dataset.table, columns, encoder.numeric_columns_, rng)
                record(kind, level, predictor.predict_outputs(table, dataset.arrays, validate=False))
    metric = "accuracy" if bundle.task == "classification" else "rmse"
    return RobustnessReport(clean, results, metric, _row_scores(bundle, clean_outputs, labels))


def precision_parity(
    bundle: ModelBundle,
    dataset: Dataset,
    labels: np.ndarray,
    *,
    precisions: tuple[str, ...] = ("bf16", "fp16", "int8"),
    reference: np.ndarray | None = None,
    module: nn.Module | None = None,
) -> list[ParityResult]:
    """Agreement with fp32 and metric difference for each lower precision, on the same rows.

    ``reference``: the fp32 outputs (served probabilities, or values) when the caller already
    holds them; ``module``: the user's own ``nn.Module`` for a ``custom`` model.
    """
    base = reference
    if base is None:
        base = Predictor(bundle, module=module).predict_outputs(dataset.table, dataset.arrays)
    base_metric = _score(bundle, base, labels)
    results = []
    for precision in precisions:
        predictor = Predictor(bundle, precision=precision, module=module)
        outputs = predictor.predict_outputs(dataset.table, dataset.arrays)
        if bundle.task == "classification":
            agrees = outputs.argmax(1) == base.argmax(1)
        else:  # 1% of the value, or of the values' spread where values are near zero (1% of 0 is 0)
            scale = np.maximum(np.abs(base), float(np.std(base)) if len(base) else 0.0)
            agrees = np.abs(outputs - base) <= 0.01 * np.maximum(scale, 1e-6)
        agreement = float(np.mean(agrees)) if len(agrees) else float("nan")
        metric = _score(bundle, outputs, labels)
        results.append(ParityResult(precision, agreement, metric, metric - base_metric, agrees.astype(float)))
    return results
