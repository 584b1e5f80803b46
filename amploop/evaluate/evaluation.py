"""One evaluation of one model version on one dataset: every check, one typed report.

:func:`evaluate_model` runs the model once in fp32 over the rows and derives everything from
those logits: the served (temperature-scaled) probabilities and their metrics, the trivial
baselines, calibration before and after scaling, declared and discovered slices, the clean
score of the robustness suite and the fp32 reference of precision parity. Only corrupted
inputs, the other precisions and the champion run a model again. Every gate metric then gets a
bootstrap interval from the same resamples of the rows (:mod:`amploop.evaluate.bootstrap`), and
the gate judges each rule on its interval. :class:`EvaluationReport` holds the typed parts;
:meth:`EvaluationReport.to_dict` is its JSON form (what ``--json`` prints, the store keeps and
the HTML page reads), with NaN written as null.
"""

from __future__ import annotations

import copy
import math
import time
from collections.abc import Sequence
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

import numpy as np

from amploop.data.dataset import Dataset
from amploop.errors import DataError, SchemaError
from amploop.evaluate.baselines import BaselineReport, classification_baselines, regression_baselines
from amploop.evaluate.bootstrap import (
    bootstrap_intervals,
    classification_statistics,
    gate_statistics,
    regression_statistics,
)
from amploop.evaluate.calibration import (
    CalibrationSummary,
    TemperatureDecision,
    apply_temperature,
    calibration_summary,
    softmax,
)
from amploop.evaluate.comparison import HoldoutComparison
from amploop.evaluate.gates import DEFAULT_GATE, GateVerdict, RuleOutcome, apply_gate, check_policy
from amploop.evaluate.metrics import classification_metrics, regression_metrics
from amploop.evaluate.robustness import ParityResult, RobustnessReport, corruption_results, precision_parity
from amploop.evaluate.shift import ShiftReport
from amploop.evaluate.slices import SliceReport, discover_slices, evaluate_slices
from amploop.models.runtime import ModelBundle, Predictor
from amploop.models.zoo import CUSTOM_ARCHITECTURE

if TYPE_CHECKING:
    from torch import nn

    from amploop.config import EvaluateConfig

__all__ = ["ChampionComparison", "EvaluationReport", "evaluate_model"]

INTERVAL_METHOD = "basic bootstrap"
MAX_RESAMPLED_CELLS = 50_000_000  # resamples x rows behind the intervals (1,000 resamples of 50,000 rows)


def _json_safe(value: Any) -> Any:
    """``value`` with NaN and infinities as None, through dicts, lists and tuples (JSON has no NaN)."""
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, dict):
        return {k: _json_safe(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_json_safe(v) for v in value]
    return value


@dataclass(frozen=True)
class ChampionComparison:
    """This version against the champion on the same rows, by the primary metric (accuracy or RMSE)."""

    ref: dict[str, Any]  # the champion: name, version
    metric: float  # the champion's
    this_metric: float  # this version's
    delta: float  # positive: this version is better (higher accuracy, or lower RMSE)

    @property
    def name(self) -> Any:
        return self.ref.get("name")

    @property
    def version(self) -> Any:
        return self.ref.get("version")

    def to_dict(self) -> dict[str, Any]:
        return {**self.ref, "metric": self.metric, "this_metric": self.this_metric, "delta": self.delta}


@dataclass(frozen=True)
class EvaluationReport:
    """Every check of one evaluation, typed; :meth:`to_dict` is the one place it is flattened."""

    model: dict[str, Any]  # name, version
    dataset: dict[str, Any]  # name, fingerprint, rows, source
    task: str
    classes: list[str] | None
    metrics: dict[str, Any]  # metric name → value (and the confusion matrix, for classification)
    intervals: dict[str, tuple[float, float] | None]  # bootstrap interval of each metric and gate metric
    baselines: BaselineReport  # trivial baselines on the same rows, and the model's margin over them
    calibration: CalibrationSummary | None  # None for regression
    slices: SliceReport  # declared slices, worst slice, and the discovered ones in ``slices.discovered``
    robustness: RobustnessReport | None  # None when the corruption suite was not run
    parity: list[ParityResult]
    champion: ChampionComparison | None  # None without a champion to compare with
    verdict: GateVerdict  # the gate's rules, outcomes, values and intervals
    created_at: str
    seconds: float
    bootstrap_samples: int = 0  # resamples behind the intervals
    confidence_level: float = 0.95
    holdout: HoldoutComparison | None = None  # on new rows: against the version's own test result
    shift: ShiftReport | None = None  # on new rows: do they look like the training rows?

    @property
    def passed(self) -> bool:
        return bool(self.verdict.passed)

    @property
    def values(self) -> dict[str, float | None]:
        """The gate metrics, by name (None: could not be computed)."""
        return self.verdict.values

    def failed_rules(self) -> list[RuleOutcome]:
        return self.verdict.failed_rules()

    def to_dict(self) -> dict[str, Any]:
        return _json_safe(
            {
                "model": dict(self.model),
                "dataset": dict(self.dataset),
                "task": self.task,
                "classes": self.classes,
                "metrics": dict(self.metrics),
                "intervals": {
                    "method": INTERVAL_METHOD,
                    "samples": self.bootstrap_samples,
                    "confidence_level": self.confidence_level,
                    "metrics": {k: list(v) if v is not None else None for k, v in self.intervals.items()},
                },
                "baselines": self.baselines.to_dict(),
                "calibration": self.calibration.to_dict() if self.calibration is not None else None,
                "slices": self.slices.to_dict(),
                "robustness": self.robustness.to_dict() if self.robustness is not None else None,
                "parity": [p.to_dict() for p in self.parity],
                "champion": self.champion.to_dict() if self.champion is not None else None,
                "verdict": self.verdict.to_dict(),
                "holdout": self.holdout.to_dict() if self.holdout is not None else None,
                "shift": self.shift.to_dict() if self.shift is not None else None,
                "created_at": self.created_at,
                "seconds": self.seconds,
            }
        )


def _labels(bundle: ModelBundle, dataset: Dataset) -> np.ndarray:
    if bundle.target not in dataset.table.columns:
        raise SchemaError(
            f"the evaluation data has no target column '{bundle.target}'; the model predicts it",
            missing_columns=[bundle.target],
        )
    values = dataset.table[bundle.target]
    if bundle.task != "classification":
        return values.to_numpy(dtype=float)
    index = {c: i for i, c in enumerate(bundle.classes or [])}
    text = values.astype(str)
    unknown = sorted(set(text) - set(index))
    if unknown or values.isna().any():
        raise SchemaError(
            f"labels the model never saw in column '{bundle.target}': {', '.join(unknown[:10]) or 'missing values'}",
            unknown_labels=unknown[:50],
        )
    return np.array([index[v] for v in text], dtype=np.int64)


def _check_columns(bundle: ModelBundle, dataset: Dataset) -> None:
    expected = [c["name"] for c in bundle.schema["columns"]]
    present = set(dataset.table.columns) | set(dataset.arrays)
    missing = [c for c in expected if c not in present]
    if missing:
        raise SchemaError(
            f"the evaluation data lacks columns the model was trained on: {', '.join(missing)}",
            missing_columns=missing,
        )


def _compare_champion(
    champion: tuple[dict[str, Any], ModelBundle],
    dataset: Dataset,
    labels: np.ndarray,
    primary: float,
    module: nn.Module | None,
) -> tuple[ChampionComparison, np.ndarray]:
    """The comparison, and the champion's per-row scores (correct, or squared error) for the bootstrap."""
    ref, bundle = champion
    # a custom champion loads into its own copy of the module, leaving the caller's untouched
    own = copy.deepcopy(module) if module is not None and bundle.architecture == CUSTOM_ARCHITECTURE else None
    theirs = Predictor(bundle, module=own).predict_outputs(dataset.table, dataset.arrays)
    if bundle.task == "classification":
        scores = (theirs.argmax(1) == labels).astype(float)
        their_metric = float(np.mean(scores))
        delta = primary - their_metric
    else:
        scores = (theirs - labels) ** 2
        their_metric = float(np.sqrt(np.mean(scores)))
        delta = their_metric - primary  # positive: this version has the lower error
    return ChampionComparison(dict(ref), their_metric, primary, delta), scores


def _training_shares(bundle: ModelBundle, training_rows: Dataset | None) -> np.ndarray | None:
    """Each class's share of the training rows (None: no training rows, or no known label among them)."""
    if training_rows is None or bundle.target not in training_rows.table.columns:
        return None
    index = {c: i for i, c in enumerate(bundle.classes or [])}
    codes = [index[v] for v in training_rows.table[bundle.target].dropna().astype(str) if v in index]
    if not codes:
        return None
    return np.bincount(np.array(codes), minlength=len(index)) / len(codes)


def _training_mean(bundle: ModelBundle, training_rows: Dataset | None) -> float | None:
    if training_rows is None or bundle.target not in training_rows.table.columns:
        return None
    values = training_rows.table[bundle.target].astype(float).dropna()
    return float(values.mean()) if len(values) else None


def evaluate_model(
    bundle: ModelBundle,
    dataset: Dataset,
    *,
    model: dict[str, Any],
    config: EvaluateConfig | None = None,
    slice_columns: Sequence[str] = (),
    champion: tuple[dict[str, Any], ModelBundle] | None = None,
    no_champion_reason: str = "no champion to compare with: this would be the first",
    seed: int = 0,
    module: nn.Module | None = None,
    training_rows: Dataset | None = None,
) -> EvaluationReport:
    """Evaluate ``bundle`` on ``dataset`` (which must hold the target column).

    ``config`` (the ``evaluate:`` section; defaults when None) sets the slice size, the bootstrap,
    the precisions compared, whether robustness runs, and the gate (None: :data:`DEFAULT_GATE`).
    ``champion`` is the champion's reference and bundle, compared on the same rows. ``module`` is
    needed only for a model trained from a user's own ``nn.Module`` (a new instance of its class).
    ``training_rows``: the version's training rows, whose class shares (or mean) set the trivial
    baselines; without them the evaluation rows' own shares are used (a slightly stronger baseline).
    """
    if config is None:
        from amploop.config import EvaluateConfig

        config = EvaluateConfig()
    started = time.perf_counter()
    rules = list(config.gate) if config.gate is not None else list(DEFAULT_GATE)
    check_policy(rules)  # a typo in the policy fails before minutes of work
    _check_columns(bundle, dataset)
    if dataset.n_rows == 0:
        raise DataError(f"the evaluation data '{dataset.name}' has no rows; pass data with labelled rows")
    missing_slices = [c for c in slice_columns if c not in dataset.table.columns]
    if missing_slices:
        raise SchemaError(
            f"slice columns not in the evaluation data: {', '.join(missing_slices)}", missing_columns=missing_slices
        )
    labels = _labels(bundle, dataset)
    n_rows = len(labels)
    categorical = frozenset(c.name for c in dataset.schema.columns if c.kind == "categorical")
    predictor = Predictor(bundle, module=module)
    # The one fp32 pass over the rows: every clean-input check below reads these outputs.
    logits = predictor.logits(dataset.table, dataset.arrays)
    classification = bundle.task == "classification"
    calibration = None
    skipped: dict[str, str] = {}
    if classification:
        served = apply_temperature(logits, bundle.temperature)  # what Predictor.predict_outputs serves
        decision = TemperatureDecision.from_dict(bundle.temperature_decision) if bundle.temperature_decision else None
        calibration = calibration_summary(labels, logits, bundle.temperature, calibrated=served, decision=decision)
        metrics = classification_metrics(labels, served, bundle.classes)
        primary = metrics["accuracy"]
        correct = served.argmax(1) == labels
        this_scores = correct.astype(float)
        per_row = {"correct": correct}
        errors = ~correct
        shares = _training_shares(bundle, training_rows)
        baselines = classification_baselines(labels, served, classes=bundle.classes, training_shares=shares)
        prior = shares if shares is not None else np.bincount(labels, minlength=served.shape[1]) / n_rows
        statistics = classification_statistics(
            labels,
            served,
            uncalibrated=softmax(logits),
            majority_class=int(np.argmax(prior)),
            class_prior=prior,
        )
        baseline_errors = None
    else:
        served = logits
        metrics = regression_metrics(labels, served)
        primary = metrics["rmse"]
        abs_errors = np.abs(served - labels)
        this_scores = (served - labels) ** 2
        per_row = {"abs_errors": abs_errors}
        errors = abs_errors > np.median(abs_errors)
        mean = _training_mean(bundle, training_rows)
        baselines = regression_baselines(labels, served, training_mean=mean)
        baseline_value = mean if mean is not None else float(np.mean(labels))
        baseline_errors = (labels - baseline_value) ** 2
        statistics = regression_statistics(labels, served, baseline=baseline_value)
        for metric in ("ece", "ece_uncalibrated", "mce"):
            skipped[metric] = "a regression model gives no probabilities to calibrate"
    slice_report = evaluate_slices(
        dataset.table,
        slice_columns=list(slice_columns),
        categorical_columns=categorical,
        min_slice_size=config.min_slice_size,
        bootstrap_samples=config.bootstrap_samples,
        confidence_level=config.confidence_level,
        seed=seed,
        **per_row,
    )
    feature_columns = [c for c in dataset.table.columns if c != bundle.target]
    discovered = discover_slices(
        dataset.table,
        errors,
        columns=feature_columns,
        categorical_columns=categorical,
        min_slice_size=config.min_slice_size,
    )
    slices = replace(slice_report, discovered=discovered)

    robustness = None
    if config.robustness:
        robustness = corruption_results(predictor, dataset, labels, clean_outputs=served, seed=seed)
    parity = precision_parity(
        bundle, dataset, labels, precisions=tuple(config.parity_precisions), reference=served, module=module
    )

    champion_out, champion_scores = None, None
    skipped["champion_delta"] = no_champion_reason
    if champion is not None:
        champion_out, champion_scores = _compare_champion(champion, dataset, labels, primary, module)

    values: dict[str, float | None] = {k: v for k, v in metrics.items() if isinstance(v, float)}
    if calibration is not None:
        values["ece"] = calibration.ece_after  # ECE of the served probabilities
        values["ece_uncalibrated"] = calibration.ece_before
        values["mce"] = calibration.mce_after
    values["baseline_margin"] = baselines.margin
    if baselines.note:
        skipped["baseline_margin"] = baselines.note
    values["worst_slice_gap"] = slices.worst_gap
    if parity:
        values["parity_agreement"] = min(p.agreement for p in parity)
        values["parity_metric_delta"] = (
            min(p.metric_delta for p in parity) if classification else -max(p.metric_delta for p in parity)
        )
    else:
        skipped["parity_agreement"] = skipped["parity_metric_delta"] = "no lower precision was compared"
    if robustness is not None and robustness.corruptions:
        values["corruption_drop"] = robustness.largest_drop
        mild = robustness.largest_mild_drop
        if not classification and mild is not None:  # regression: the RMSE rise as a share of the mean's RMSE
            base_rmse = baselines.baselines[0].metrics["rmse"]
            mild = mild / base_rmse if base_rmse > 0 else None
        values["mild_corruption_drop"] = mild
    else:
        skipped["corruption_drop"] = skipped["mild_corruption_drop"] = "the corruption suite was not run"
    values["champion_delta"] = champion_out.delta if champion_out else None
    if slices.worst is None:
        skipped["worst_slice_gap"] = "no slice columns, or every slice was smaller than the minimum size"

    statistics.update(
        gate_statistics(
            classification,
            n_rows,
            robustness=robustness,
            parity=parity,
            champion_scores=champion_scores,
            this_scores=this_scores,
            baseline_errors=baseline_errors,
        )
    )
    if baselines.margin is None:
        statistics.pop("baseline_margin", None)
    # past 50,000 rows fewer resamples keep the cost flat; the intervals are then far narrower than any threshold
    samples = min(config.bootstrap_samples, max(200, MAX_RESAMPLED_CELLS // n_rows))
    intervals = bootstrap_intervals(
        n_rows, statistics, samples=samples, confidence_level=config.confidence_level, seed=seed
    )
    verdict = apply_gate(
        rules,
        values,
        skipped,
        intervals={k: v for k, v in intervals.items() if k in values},
        confidence_level=config.confidence_level,
    )
    shown_metrics = {**metrics, **{k: v for k, v in values.items() if k in ("ece", "mce")}}

    return EvaluationReport(
        model=model,
        dataset={
            "name": dataset.name,
            "fingerprint": dataset.fingerprint,
            "rows": dataset.n_rows,
            "source": dataset.source,
        },
        task=bundle.task,
        classes=bundle.classes,
        metrics=shown_metrics,
        intervals=intervals,
        baselines=baselines,
        calibration=calibration,
        slices=slices,
        robustness=robustness,
        parity=parity,
        champion=champion_out,
        verdict=verdict,
        created_at=datetime.now(UTC).isoformat(),
        seconds=round(time.perf_counter() - started, 3),
        bootstrap_samples=samples,
        confidence_level=config.confidence_level,
    )
