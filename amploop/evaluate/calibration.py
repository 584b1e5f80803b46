"""Calibration: does a predicted confidence of 0.8 come true 80% of the time?

- ECE (Naeini et al. 2015; Guo et al. 2017): confidences (the top-class probability) are put
  in M bins; ECE = sum over bins of (n_b / N) * |accuracy_b - confidence_b|. Equal-width bins
  ((m-1)/M, m/M] with M = 15 as in Guo et al., or adaptive bins holding equal counts.
- MCE: the largest bin gap.
- Classwise ECE (Kull et al. 2019): the same for every class's own probability, averaged.
- Temperature scaling (Guo et al. 2017): one scalar T > 0 divides the logits; it is fitted on
  validation data by minimising the negative log-likelihood, which changes confidences but
  never the predicted class. Fitted on a few rows it can make things worse (T = 0.10 from 46
  rows), so :func:`decide_temperature` keeps it only when it lowers the NLL on validation folds
  it was not fitted on, and records why as a :class:`TemperatureDecision`.

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

if TYPE_CHECKING:
    from amploop.train.fit import FitResult

__all__ = [
    "CalibrationSummary",
    "TemperatureDecision",
    "apply_temperature",
    "calibration_summary",
    "classwise_ece",
    "decide_temperature",
    "expected_calibration_error",
    "fit_temperature",
    "max_calibration_error",
    "reliability_bins",
    "softmax",
    "temperature_for_fit",
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


TEMPERATURE_RANGE = (0.5, 5.0)  # outside it, scaling would hide a training problem rather than fix calibration
MIN_CALIBRATION_ROWS = 200  # fewer validation rows cannot show that a temperature helps on rows it never saw
CALIBRATION_FOLDS = 5
MIN_NLL_IMPROVEMENT = 0.005  # relative: held-out NLL must drop by at least 0.5% for T to be kept


def _nll(logits: np.ndarray, y: np.ndarray, temperature: float) -> float:
    scaled = logits / temperature
    shifted = scaled - scaled.max(axis=1, keepdims=True)
    log_norm = np.log(np.exp(shifted).sum(axis=1))
    return float(np.mean(log_norm - shifted[np.arange(len(y)), y]))


def fit_temperature(
    logits: np.ndarray, y: np.ndarray, *, bounds: tuple[float, float] = TEMPERATURE_RANGE, max_iter: int = 100
) -> float:
    """The temperature in ``bounds`` minimising the NLL of ``softmax(logits / T)`` on ``(logits, y)``.

    The NLL is convex in 1/T (a log-sum-exp of functions linear in 1/T, minus one of them), so
    a bounded scalar search on 1/T finds the global minimum; the bounds keep a few separable
    rows from driving T towards 0.
    """
    from scipy.optimize import minimize_scalar

    logits = np.asarray(logits, dtype=np.float64)
    y = np.asarray(y, dtype=np.int64)
    low, high = bounds
    found = minimize_scalar(
        lambda inverse: _nll(logits, y, 1.0 / inverse),
        bounds=(1.0 / high, 1.0 / low),
        method="bounded",
        options={"maxiter": max_iter, "xatol": 1e-6},
    )
    return float(np.clip(1.0 / found.x, low, high))


@dataclass(frozen=True)
class TemperatureDecision:
    """Whether temperature scaling is kept for a model, and why.

    ``temperature`` is the one served: the fitted value when ``kept``, else 1.0. The NLL and ECE
    pairs are measured on held-out folds of the validation rows (each fold scored with a
    temperature fitted on the other folds), so they say what scaling does to rows it never saw.
    """

    temperature: float
    kept: bool
    reason: str
    rows: int  # validation rows
    folds: int  # cross-validation folds run (0: too few rows or a single class)
    folds_improved: int  # folds whose held-out NLL dropped with the temperature fitted on the others
    fitted_temperature: float | None  # fitted on every validation row (None: not fitted)
    nll_before: float | None  # held-out NLL at T = 1, pooled over the folds
    nll_after: float | None  # held-out NLL with each fold's fitted temperature
    ece_before: float | None  # held-out ECE at T = 1, pooled over the folds
    ece_after: float | None

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> TemperatureDecision:
        return cls(**{f: data.get(f) for f in cls.__dataclass_fields__})


def _stratified_folds(y: np.ndarray, folds: int, seed: int) -> np.ndarray:
    """Fold number per row: each class dealt round-robin over the folds after a seeded shuffle."""
    rng = np.random.default_rng(seed)
    fold = np.empty(len(y), dtype=np.int64)
    offset = 0
    for label in np.unique(y):
        rows = rng.permutation(np.flatnonzero(y == label))
        fold[rows] = (np.arange(len(rows)) + offset) % folds
        offset += len(rows)  # the next class starts where this one stopped, so folds stay even
    return fold


def decide_temperature(
    logits: np.ndarray,
    y: np.ndarray,
    *,
    min_rows: int = MIN_CALIBRATION_ROWS,
    folds: int = CALIBRATION_FOLDS,
    min_improvement: float = MIN_NLL_IMPROVEMENT,
    bounds: tuple[float, float] = TEMPERATURE_RANGE,
    seed: int = 0,
) -> TemperatureDecision:
    """Fit a temperature on validation rows and keep it only where it helps on held-out rows.

    Cross-validated on the validation rows: for each of ``folds`` stratified folds a temperature
    is fitted on the other folds and scored on this one. The temperature (refitted on every row)
    is kept when the pooled held-out NLL drops by at least ``min_improvement`` (relative), the
    NLL drops in most folds, and the pooled held-out ECE does not rise; otherwise T = 1. With
    fewer than ``min_rows`` rows, or one class, no temperature is fitted at all.

    Examples
    --------
    >>> import numpy as np
    >>> rng = np.random.default_rng(0)
    >>> true_logits = rng.normal(0, 2, size=(1000, 3))
    >>> y = np.array([rng.choice(3, p=row) for row in softmax(true_logits)])
    >>> decision = decide_temperature(true_logits * 3, y)  # three times too confident
    >>> decision.kept, round(decision.temperature, 1), decision.folds_improved
    (True, 2.8, 5)
    >>> decide_temperature(true_logits, y).kept  # already calibrated: scaling cannot help
    False
    >>> decide_temperature(true_logits[:46] * 3, y[:46]).reason
    'kept T = 1: 46 validation rows are fewer than the 200 needed to check scaling on held-out rows'
    """
    logits = np.asarray(logits, dtype=np.float64)
    y = np.asarray(y, dtype=np.int64)
    rows = len(y)

    def unchanged(reason: str, **measured: Any) -> TemperatureDecision:
        blank: dict[str, Any] = dict.fromkeys(
            ("fitted_temperature", "nll_before", "nll_after", "ece_before", "ece_after")
        )
        blank.update(folds=0, folds_improved=0)
        blank.update(measured)
        return TemperatureDecision(temperature=1.0, kept=False, reason=reason, rows=rows, **blank)

    if rows < min_rows:
        return unchanged(
            f"kept T = 1: {rows} validation rows are fewer than the {min_rows} needed to check scaling on held-out rows"
        )
    if len(np.unique(y)) < 2:
        return unchanged("kept T = 1: the validation rows hold a single class, so confidence cannot be checked")
    fold_of = _stratified_folds(y, folds, seed)
    held_out_before = np.empty(rows)
    held_out_after = np.empty(rows)
    probs_before = softmax(logits)
    probs_after = np.empty_like(probs_before)
    improved = 0
    for k in range(folds):
        test = fold_of == k
        t = fit_temperature(logits[~test], y[~test], bounds=bounds)
        probs_after[test] = apply_temperature(logits[test], t)
        picked = np.arange(rows)[test]
        held_out_before[test] = -np.log(np.clip(probs_before[picked, y[test]], 1e-15, 1.0))
        held_out_after[test] = -np.log(np.clip(probs_after[picked, y[test]], 1e-15, 1.0))
        improved += bool(held_out_after[test].mean() < held_out_before[test].mean())
    nll_before, nll_after = float(held_out_before.mean()), float(held_out_after.mean())
    ece_before = expected_calibration_error(y, probs_before)
    ece_after = expected_calibration_error(y, probs_after)
    fitted = fit_temperature(logits, y, bounds=bounds)
    measured = {
        "folds": folds,
        "folds_improved": improved,
        "fitted_temperature": fitted,
        "nll_before": nll_before,
        "nll_after": nll_after,
        "ece_before": ece_before,
        "ece_after": ece_after,
    }
    gain = (nll_before - nll_after) / nll_before if nll_before > 0 else 0.0
    held_out = f"held-out NLL {nll_before:.4f} -> {nll_after:.4f}, ECE {ece_before:.4f} -> {ece_after:.4f}"
    if gain <= 0:
        why = "held-out NLL did not fall"
    elif gain < min_improvement:
        why = f"held-out NLL fell by {100 * gain:.2f}%, less than the {100 * min_improvement:g}% required"
    elif 2 * improved <= folds:
        why = f"held-out NLL improved in only {improved} of {folds} folds"
    elif ece_after > ece_before:
        why = "held-out ECE rose"
    else:
        reason = f"kept T = {fitted:.3f}: {held_out}; NLL lower in {improved} of {folds} folds"
        return TemperatureDecision(temperature=fitted, kept=True, reason=reason, rows=rows, **measured)
    return unchanged(f"kept T = 1 (fitted {fitted:.3f}): {why} ({held_out})", **measured)


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
    decision: TemperatureDecision | None = None  # how the temperature was chosen (None: a bundle from before)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def calibration_summary(
    y: np.ndarray,
    logits: np.ndarray,
    temperature: float,
    *,
    n_bins: int = 15,
    calibrated: np.ndarray | None = None,
    decision: TemperatureDecision | None = None,
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
        decision=decision,
    )


def temperature_for_fit(result: FitResult) -> TemperatureDecision:
    """The temperature of a freshly trained classifier, decided on its validation rows by :func:`decide_temperature`."""
    from amploop.train.fit import model_logits
    from amploop.train.tensors import to_tensors

    data = to_tensors(result.splits.validation, result.encoder, result.labels)
    logits = model_logits(result.model, data, result.train_result.precision)
    return decide_temperature(logits, data.targets.numpy())
