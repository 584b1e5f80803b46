"""One evaluation of one model version on one dataset: every check, one typed report.

:func:`evaluate_model` runs the model once in fp32 over the rows and derives everything from
those logits: the served (temperature-scaled) probabilities and their metrics, calibration
before and after scaling, declared and discovered slices, the clean score of the robustness
suite and the fp32 reference of precision parity. Only corrupted inputs, the other precisions
and the champion run a model again. :class:`EvaluationReport` holds the typed parts;
:meth:`EvaluationReport.to_dict` is its JSON form (what ``--json`` prints, the store keeps and
the HTML page reads).
"""

from __future__ import annotations

import copy
import time
from collections.abc import Sequence
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

import numpy as np

from amploop.data.dataset import Dataset
from amploop.errors import SchemaError
from amploop.evaluate.calibration import CalibrationSummary, apply_temperature, calibration_summary
from amploop.evaluate.gates import DEFAULT_GATE, GateVerdict, RuleOutcome, apply_gate, check_policy
from amploop.evaluate.metrics import classification_metrics, regression_metrics
from amploop.evaluate.robustness import ParityResult, RobustnessReport, corruption_results, precision_parity
from amploop.evaluate.slices import SliceReport, discover_slices, evaluate_slices
from amploop.models.runtime import ModelBundle, Predictor
from amploop.models.zoo import CUSTOM_ARCHITECTURE

if TYPE_CHECKING:
    from torch import nn

    from amploop.config import EvaluateConfig

__all__ = ["ChampionComparison", "EvaluationReport", "evaluate_model"]


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
    calibration: CalibrationSummary | None  # None for regression
    slices: SliceReport  # declared slices, worst slice, and the discovered ones in ``slices.discovered``
    robustness: RobustnessReport | None  # None when the corruption suite was not run
    parity: list[ParityResult]
    champion: ChampionComparison | None  # None without a champion to compare with
    verdict: GateVerdict  # the gate's rules, outcomes and the values judged
    created_at: str
    seconds: float

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
        return {
            "model": dict(self.model),
            "dataset": dict(self.dataset),
            "task": self.task,
            "classes": self.classes,
            "metrics": dict(self.metrics),
            "calibration": self.calibration.to_dict() if self.calibration is not None else None,
            "slices": self.slices.to_dict(),
            "robustness": self.robustness.to_dict() if self.robustness is not None else None,
            "parity": [p.to_dict() for p in self.parity],
            "champion": self.champion.to_dict() if self.champion is not None else None,
            "verdict": self.verdict.to_dict(),
            "created_at": self.created_at,
            "seconds": self.seconds,
        }


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
) -> ChampionComparison:
    ref, bundle = champion
    # a custom champion loads into its own copy of the module, leaving the caller's untouched
    own = copy.deepcopy(module) if module is not None and bundle.architecture == CUSTOM_ARCHITECTURE else None
    theirs = Predictor(bundle, module=own).predict_outputs(dataset.table, dataset.arrays)
    if bundle.task == "classification":
        their_metric = float(np.mean(theirs.argmax(1) == labels))
        delta = primary - their_metric
    else:
        their_metric = float(np.sqrt(np.mean((theirs - labels) ** 2)))
        delta = their_metric - primary  # positive: this version has the lower error
    return ChampionComparison(dict(ref), their_metric, primary, delta)


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
) -> EvaluationReport:
    """Evaluate ``bundle`` on ``dataset`` (which must hold the target column).

    ``config`` (the ``evaluate:`` section; defaults when None) sets the slice size, the bootstrap,
    the precisions compared, whether robustness runs, and the gate (None: :data:`DEFAULT_GATE`).
    ``champion`` is the champion's reference and bundle, compared on the same rows. ``module`` is
    needed only for a model trained from a user's own ``nn.Module`` (a new instance of its class).
    """
    if config is None:
        from amploop.config import EvaluateConfig

        config = EvaluateConfig()
    started = time.perf_counter()
    rules = list(config.gate) if config.gate is not None else list(DEFAULT_GATE)
    check_policy(rules)  # a typo in the policy fails before minutes of work
    _check_columns(bundle, dataset)
    missing_slices = [c for c in slice_columns if c not in dataset.table.columns]
    if missing_slices:
        raise SchemaError(
            f"slice columns not in the evaluation data: {', '.join(missing_slices)}", missing_columns=missing_slices
        )
    labels = _labels(bundle, dataset)
    categorical = frozenset(c.name for c in dataset.schema.columns if c.kind == "categorical")
    predictor = Predictor(bundle, module=module)
    # The one fp32 pass over the rows: every clean-input check below reads these outputs.
    logits = predictor.logits(dataset.table, dataset.arrays)
    classification = bundle.task == "classification"
    calibration = None
    if classification:
        served = apply_temperature(logits, bundle.temperature)  # what Predictor.predict_outputs serves
        calibration = calibration_summary(labels, logits, bundle.temperature, calibrated=served)
        metrics = classification_metrics(labels, served, bundle.classes)
        primary = metrics["accuracy"]
        correct = served.argmax(1) == labels
        per_row = {"correct": correct}
        errors = ~correct
    else:
        served = logits
        metrics = regression_metrics(labels, served)
        primary = metrics["rmse"]
        abs_errors = np.abs(served - labels)
        per_row = {"abs_errors": abs_errors}
        errors = abs_errors > np.median(abs_errors)
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

    champion_out = None
    skipped = {"champion_delta": no_champion_reason}
    if champion is not None:
        champion_out = _compare_champion(champion, dataset, labels, primary, module)

    values: dict[str, float | None] = {k: v for k, v in metrics.items() if isinstance(v, float)}
    if calibration is not None:
        values["ece"] = calibration.ece_after  # ECE of the served probabilities
        values["ece_uncalibrated"] = calibration.ece_before
        values["mce"] = calibration.mce_after
    values["worst_slice_gap"] = slices.worst_gap
    if parity:
        values["parity_agreement"] = min(p.agreement for p in parity)
        values["parity_metric_delta"] = (
            min(p.metric_delta for p in parity) if classification else -max(p.metric_delta for p in parity)
        )
    if robustness is not None and robustness.corruptions:
        values["corruption_drop"] = robustness.largest_drop
    values["champion_delta"] = champion_out.delta if champion_out else None
    if slices.worst is None:
        skipped["worst_slice_gap"] = "no slice columns, or every slice was smaller than the minimum size"
    verdict = apply_gate(rules, values, skipped)

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
        metrics={**metrics, **{k: v for k, v in values.items() if k in ("ece", "mce")}},
        calibration=calibration,
        slices=slices,
        robustness=robustness,
        parity=parity,
        champion=champion_out,
        verdict=verdict,
        created_at=datetime.now(UTC).isoformat(),
        seconds=round(time.perf_counter() - started, 3),
    )
