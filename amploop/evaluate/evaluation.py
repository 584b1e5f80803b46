"""One evaluation of one model version on one dataset: every check, one typed report.

:func:`evaluate_model` computes the metrics on the served (temperature-scaled) probabilities,
calibration before and after scaling, declared and discovered slices, robustness to
corruptions, precision parity, the comparison with the champion on the same rows, and the
gate verdict; :class:`EvaluationReport` holds them, with its JSON form.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import numpy as np

from amploop.data.dataset import Dataset
from amploop.errors import SchemaError
from amploop.evaluate.calibration import calibration_summary
from amploop.evaluate.gates import DEFAULT_GATE, apply_gate, check_policy
from amploop.evaluate.metrics import classification_metrics, regression_metrics
from amploop.evaluate.robustness import corruption_results, precision_parity
from amploop.evaluate.slices import discover_slices, evaluate_slices
from amploop.models.runtime import ModelBundle, Predictor

__all__ = ["EvaluationReport", "evaluate_model"]


@dataclass(frozen=True)
class EvaluationReport:
    model: dict[str, Any]  # name, version
    dataset: dict[str, Any]  # name, fingerprint, rows, source
    task: str
    classes: list[str] | None
    metrics: dict[str, Any]
    calibration: dict[str, Any] | None
    slices: dict[str, Any]
    robustness: dict[str, Any] | None
    parity: list[dict[str, Any]]
    champion: dict[str, Any] | None
    verdict: dict[str, Any]
    created_at: str
    seconds: float

    @property
    def passed(self) -> bool:
        return bool(self.verdict["passed"])

    def to_dict(self) -> dict[str, Any]:
        return dict(self.__dict__)


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


def evaluate_model(
    bundle: ModelBundle,
    dataset: Dataset,
    *,
    model: dict[str, Any],
    slice_columns: Sequence[str] = (),
    min_slice_size: int = 30,
    bootstrap_samples: int = 1000,
    confidence_level: float = 0.95,
    parity_precisions: Sequence[str] = ("bf16", "fp16", "int8"),
    robustness: bool = True,
    gate: Sequence[Any] | None = None,
    champion: tuple[dict[str, Any], ModelBundle] | None = None,
    no_champion_reason: str = "no champion to compare with: this would be the first",
    seed: int = 0,
) -> EvaluationReport:
    """Evaluate ``bundle`` on ``dataset`` (which must hold the target column)."""
    started = time.perf_counter()
    rules = list(gate) if gate is not None else list(DEFAULT_GATE)
    check_policy(rules)  # a typo in the policy fails before minutes of work
    _check_columns(bundle, dataset)
    missing_slices = [c for c in slice_columns if c not in dataset.table.columns]
    if missing_slices:
        raise SchemaError(
            f"slice columns not in the evaluation data: {', '.join(missing_slices)}", missing_columns=missing_slices
        )
    labels = _labels(bundle, dataset)
    categorical = frozenset(c.name for c in dataset.schema.columns if c.kind == "categorical")
    predictor = Predictor(bundle)
    logits = predictor.logits(dataset.table, dataset.arrays)
    classification = bundle.task == "classification"
    calibration = None
    if classification:
        calibration = calibration_summary(labels, logits, bundle.temperature).to_dict()
        served = predictor.predict_outputs(dataset.table, dataset.arrays)
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
        min_slice_size=min_slice_size,
        bootstrap_samples=bootstrap_samples,
        confidence_level=confidence_level,
        seed=seed,
        **per_row,
    )
    feature_columns = [c for c in dataset.table.columns if c != bundle.target]
    discovered = discover_slices(
        dataset.table, errors, columns=feature_columns, categorical_columns=categorical, min_slice_size=min_slice_size
    )
    slices = {**slice_report.to_dict(), "discovered": [d.__dict__ for d in discovered]}

    robustness_out = None
    if robustness:
        clean, corrupted = corruption_results(predictor, dataset, labels, seed=seed)
        robustness_out = {"clean_metric": clean, "corruptions": [c.to_dict() for c in corrupted]}
    parity = [
        p.to_dict()
        for p in precision_parity(
            bundle, dataset, labels, precisions=tuple(parity_precisions), reference=lambda: served
        )
    ]

    champion_out = None
    skipped = {"champion_delta": no_champion_reason}
    if champion is not None:
        champion_ref, champion_bundle = champion
        theirs = Predictor(champion_bundle).predict_outputs(dataset.table, dataset.arrays)
        if classification:
            their_metric = float(np.mean(theirs.argmax(1) == labels))
            delta = primary - their_metric
        else:
            their_metric = float(np.sqrt(np.mean((theirs - labels) ** 2)))
            delta = their_metric - primary  # positive: this version has the lower error
        champion_out = {**champion_ref, "metric": their_metric, "this_metric": primary, "delta": delta}

    values: dict[str, float | None] = {k: v for k, v in metrics.items() if isinstance(v, float)}
    if calibration is not None:
        from amploop.evaluate.calibration import expected_calibration_error, max_calibration_error

        values["ece"] = expected_calibration_error(labels, served)
        values["ece_uncalibrated"] = calibration["ece_before"]
        values["mce"] = max_calibration_error(labels, served)
    values["worst_slice_gap"] = slice_report.worst_gap
    if parity:
        values["parity_agreement"] = min(p["agreement"] for p in parity)
        values["parity_metric_delta"] = (
            min(p["metric_delta"] for p in parity) if classification else -max(p["metric_delta"] for p in parity)
        )
    if robustness_out and robustness_out["corruptions"]:
        values["corruption_drop"] = max(c["drop"] for c in robustness_out["corruptions"])
    values["champion_delta"] = champion_out["delta"] if champion_out else None
    if slice_report.worst is None:
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
        robustness=robustness_out,
        parity=parity,
        champion=champion_out,
        verdict={**verdict.to_dict(), "values": values},
        created_at=datetime.now(UTC).isoformat(),
        seconds=round(time.perf_counter() - started, 3),
    )
