"""Calibration: does a predicted confidence of 0.8 come true 80% of the time?

- ECE (Naeini et al. 2015; Guo et al. 2017): confidences (the top-class probability) are put
  in M bins; ECE = sum over bins of (n_b / N) * |accuracy_b - confidence_b|. Equal-width bins
  ((m-1)/M, m/M] with M = 15 as in Guo et al., or adaptive bins holding equal counts.
- MCE: the largest bin gap.
- Classwise ECE (Kull et al. 2019): the same for every class's own probability, averaged.
- Temperature scaling (Guo et al. 2017): one scalar T > 0 divides the logits; it is fitted on
  validation data by minimising the negative log-likelihood with L-BFGS, which changes
  confidences but never the predicted class.

Examples
--------
>>> import numpy as np
>>> p = np.array([[0.9, 0.1], [0.8, 0.2], [0.3, 0.7], [0.4, 0.6]])
>>> y = np.array([0, 1, 1, 1])
>>> round(expected_calibration_error(y, p, n_bins=10), 4)
0.4
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import TYPE_CHECKING, Any

import numpy as np
import torch

if TYPE_CHECKING:
    from amploop.train.fit import FitResult

__all__ = [
    "temperature_for_fit",
    "CalibrationSummary",
    "apply_temperature",
    "calibration_summary",
    "classwise_ece",
    "expected_calibration_error",
    "fit_temperature",
    "max_calibration_error",
    "reliability_bins",
    "softmax",
]


def softmax(logits: np.ndarray) -> np.ndarray:
    shifted = logits - logits.max(axis=1, keepdims=True)
    exp = np.exp(shifted)
    return exp / exp.sum(axis=1, keepdims=True)


def apply_temperature(logits: np.ndarray, temperature: float) -> np.ndarray:
    return softmax(logits / temperature)


def _bin_index(confidence: np.ndarray, n_bins: int, adaptive: bool) -> np.ndarray:
    if adaptive:  # equal-mass bins: sort, then cut into n_bins chunks of (nearly) equal count
        order = np.argsort(confidence, kind="mergesort")
        index = np.empty(len(confidence), dtype=int)
        index[order] = np.minimum((np.arange(len(confidence)) * n_bins) // max(len(confidence), 1), n_bins - 1)
        return index
    # bins ((m-1)/M, m/M]; a confidence of exactly 0 joins the first bin
    # (the 1e-9 keeps 0.7 * 10 = 7.000000000000001 in the bin (0.6, 0.7])
    return np.clip(np.ceil(confidence * n_bins - 1e-9).astype(int) - 1, 0, n_bins - 1)


def reliability_bins(y: np.ndarray, p: np.ndarray, *, n_bins: int = 15, adaptive: bool = False) -> list[dict[str, Any]]:
    """Per bin: its confidence range, count, accuracy and mean confidence (the reliability diagram)."""
    confidence = p.max(axis=1)
    correct = (p.argmax(axis=1) == y).astype(float)
    index = _bin_index(confidence, n_bins, adaptive)
    bins = []
    for b in range(n_bins):
        mask = index == b
        count = int(mask.sum())
        if adaptive:
            lower = float(confidence[mask].min()) if count else float("nan")
            upper = float(confidence[mask].max()) if count else float("nan")
        else:
            lower, upper = b / n_bins, (b + 1) / n_bins
        bins.append(
            {
                "lower": lower,
                "upper": upper,
                "count": count,
                "accuracy": float(correct[mask].mean()) if count else None,
                "confidence": float(confidence[mask].mean()) if count else None,
            }
        )
    return bins


def expected_calibration_error(y: np.ndarray, p: np.ndarray, *, n_bins: int = 15, adaptive: bool = False) -> float:
    total = len(y)
    return float(
        sum(
            b["count"] / total * abs(b["accuracy"] - b["confidence"])
            for b in reliability_bins(y, p, n_bins=n_bins, adaptive=adaptive)
            if b["count"]
        )
    )


def max_calibration_error(y: np.ndarray, p: np.ndarray, *, n_bins: int = 15) -> float:
    return float(
        max(
            (abs(b["accuracy"] - b["confidence"]) for b in reliability_bins(y, p, n_bins=n_bins) if b["count"]),
            default=0.0,
        )
    )


def classwise_ece(y: np.ndarray, p: np.ndarray, *, n_bins: int = 15) -> float:
    total, scores = len(y), []
    for k in range(p.shape[1]):
        probability = p[:, k]
        happened = (y == k).astype(float)
        index = _bin_index(probability, n_bins, adaptive=False)
        gap = 0.0
        for b in range(n_bins):
            mask = index == b
            if mask.any():
                gap += mask.sum() / total * abs(happened[mask].mean() - probability[mask].mean())
        scores.append(gap)
    return float(np.mean(scores))


def fit_temperature(logits: np.ndarray, y: np.ndarray, *, max_iter: int = 100) -> float:
    """The temperature minimising validation NLL (optimised as log T, so T stays positive)."""
    logits_t = torch.as_tensor(logits, dtype=torch.float64)
    y_t = torch.as_tensor(y, dtype=torch.long)
    log_t = torch.zeros(1, dtype=torch.float64, requires_grad=True)
    optimizer = torch.optim.LBFGS([log_t], lr=0.1, max_iter=max_iter, line_search_fn="strong_wolfe")

    def closure() -> torch.Tensor:
        optimizer.zero_grad()
        loss = torch.nn.functional.cross_entropy(logits_t / log_t.exp(), y_t)
        loss.backward()
        return loss

    optimizer.step(closure)
    return float(log_t.exp().item())


@dataclass(frozen=True)
class CalibrationSummary:
    temperature: float
    ece_before: float
    ece_after: float
    adaptive_ece_before: float
    adaptive_ece_after: float
    mce_before: float
    mce_after: float
    classwise_ece_before: float
    classwise_ece_after: float
    reliability_before: list[dict[str, Any]]
    reliability_after: list[dict[str, Any]]

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def calibration_summary(
    y: np.ndarray,
    logits: np.ndarray,
    temperature: float,
    *,
    n_bins: int = 15,
    calibrated: np.ndarray | None = None,
) -> CalibrationSummary:
    """Calibration of ``softmax(logits)`` before and ``softmax(logits / temperature)`` after scaling.

    ``calibrated``: the scaled probabilities when the caller already holds them (the served
    outputs), so they are not computed twice.
    """
    before = softmax(logits)
    after = calibrated if calibrated is not None else apply_temperature(logits, temperature)
    return CalibrationSummary(
        temperature=temperature,
        ece_before=expected_calibration_error(y, before, n_bins=n_bins),
        ece_after=expected_calibration_error(y, after, n_bins=n_bins),
        adaptive_ece_before=expected_calibration_error(y, before, n_bins=n_bins, adaptive=True),
        adaptive_ece_after=expected_calibration_error(y, after, n_bins=n_bins, adaptive=True),
        mce_before=max_calibration_error(y, before, n_bins=n_bins),
        mce_after=max_calibration_error(y, after, n_bins=n_bins),
        classwise_ece_before=classwise_ece(y, before, n_bins=n_bins),
        classwise_ece_after=classwise_ece(y, after, n_bins=n_bins),
        reliability_before=reliability_bins(y, before, n_bins=n_bins),
        reliability_after=reliability_bins(y, after, n_bins=n_bins),
    )


def temperature_for_fit(result: FitResult) -> float:
    """Fit the temperature of a freshly trained classifier on its validation rows."""
    from amploop.train.fit import model_logits
    from amploop.train.tensors import to_tensors

    data = to_tensors(result.splits.validation, result.encoder, result.labels)
    return fit_temperature(model_logits(result.model, data, result.train_result.precision), data.targets.numpy())
