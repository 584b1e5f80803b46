"""Evaluating a registered model version: resolve it, rebuild its holdout, compare with the champion, keep the report.

The default evaluation data is the version's own test split, rebuilt from the run's recorded
configuration (source, seed, split fractions) and checked against the test fingerprint the run
stored: if the data changed since training, the evaluation refuses rather than silently
scoring other rows. The training rows are rebuilt the same way and set the trivial baselines.

On rows of the user's choosing (``data=``) the report also says how they compare: the metrics
beside the version's own test result (its latest evaluation on its test rows, else the test
metrics its training run recorded), and whether the rows look like the training rows (a
two-sample test per column). When the training rows cannot be rebuilt, the report says so.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import TYPE_CHECKING, Any

from amploop.config import AmploopConfig
from amploop.data import builtin_info, builtin_names, open_dataset
from amploop.data.dataset import Dataset
from amploop.errors import AmploopError, DataError, ModelNotFound
from amploop.evaluate.comparison import HoldoutComparison, compare_with_holdout
from amploop.evaluate.evaluation import EvaluationReport, evaluate_model
from amploop.evaluate.report import render_html
from amploop.evaluate.shift import ShiftReport, compare_rows, shift_unavailable
from amploop.names import ModelRef, parse_model_ref
from amploop.registry.model_versions import load_model_bundle
from amploop.registry.records import EvaluationRecord, ModelVersionRecord
from amploop.registry.store import Store

if TYPE_CHECKING:
    from torch import nn

    from amploop.data.splits import SplitPlan
    from amploop.models.bundle import ModelBundle

__all__ = ["EvaluationOutcome", "ModelRef", "evaluate_version", "parse_model_ref", "resolve_version"]


def resolve_version(store: Store, ref: ModelRef) -> ModelVersionRecord:
    if ref.alias is not None:
        version = store.alias_version(ref.name, ref.alias)
        if version is None:
            store.get_model_version(ref.name)  # ModelNotFound with close matches when the name is wrong
            raise ModelNotFound(
                f"model '{ref.name}' has no alias '{ref.alias}'; `amploop models show {ref.name}` lists its aliases"
            )
        return store.get_model_version(ref.name, version)
    return store.get_model_version(ref.name, ref.version)


def rebuild_splits(store: Store, record: ModelVersionRecord) -> SplitPlan:
    """The version's train, validation and test rows, rebuilt from its run; DataError when that is impossible."""
    from amploop.data.splits import prepare_splits

    if record.run_id is None:
        raise DataError(f"{record.name}:{record.version} has no training run on record; pass --data")
    run = store.get_run(record.run_id)
    data_cfg, train_cfg = run.config.get("data", {}), run.config.get("train", {})
    source = data_cfg.get("source") or "adult"
    dataset = open_dataset(source, target=data_cfg.get("target"))
    plan = prepare_splits(
        dataset,
        validation_fraction=data_cfg.get("validation_fraction", 0.1),
        test_fraction=data_cfg.get("test_fraction", 0.2),
        seed=data_cfg.get("split_seed", train_cfg.get("seed", 0)),  # runs before data.split_seed used train.seed
    )
    expected = run.dataset_fingerprints.get("test")
    if expected and plan.test.fingerprint != expected:
        raise DataError(
            f"the test rows of {record.name}:{record.version} no longer match what training held out "
            f"({source} changed since the run); pass --data with the data to evaluate on"
        )
    return plan


def holdout_dataset(store: Store, record: ModelVersionRecord) -> Dataset:
    """The version's test rows, rebuilt from its run and checked against the stored fingerprint."""
    return rebuild_splits(store, record).test


def _holdout_result(store: Store, record: ModelVersionRecord, task: str) -> tuple[dict, dict, str] | None:
    """(metrics, intervals, where from) of the version on its own test rows; None when nothing is on record.

    The latest stored evaluation on the test rows when there is one (with intervals), else the
    test metrics the training run recorded.
    """
    test_fingerprint = None
    if record.run_id is not None:
        test_fingerprint = store.get_run(record.run_id).dataset_fingerprints.get("test")
    if test_fingerprint:
        for stored in reversed(store.list_evaluations(record.name, record.version)):
            if stored.dataset_fingerprint == test_fingerprint:
                report = stored.report
                rows = report.get("dataset", {}).get("rows")
                intervals = (report.get("intervals") or {}).get("metrics") or {}
                shown = f"its own test rows ({rows:,} rows, evaluation {stored.id})" if rows else "its own test rows"
                return dict(report.get("metrics", {})), dict(intervals), shown
    recorded_name, metric = ("test_accuracy", "accuracy") if task == "classification" else ("test_rmse", "rmse")
    value = (record.metrics or {}).get(recorded_name)
    return ({metric: value}, {}, "its own test rows (as measured at training)") if value is not None else None


def _shift(bundle: ModelBundle, dataset: Dataset, plan: SplitPlan | None, why_not: str | None) -> ShiftReport:
    if plan is None:
        return shift_unavailable(f"cannot compare with the training rows: {why_not}", dataset.n_rows)
    kinds = {c["name"]: c["kind"] for c in bundle.schema.get("columns", []) if c["name"] != bundle.target}
    return compare_rows(
        plan.train.table,
        dataset.table,
        kinds=kinds,
        reference_arrays=plan.train.arrays,
        current_arrays=dataset.arrays,
        reference_name=plan.train.name,
    )


@dataclass(frozen=True)
class EvaluationOutcome:
    version: ModelVersionRecord
    report: EvaluationReport
    stored: EvaluationRecord

    def to_dict(self) -> dict[str, Any]:
        return {**self.report.to_dict(), "evaluation_id": self.stored.id, "html_uri": self.stored.html_uri}


def _compare_holdout(store: Store, record: ModelVersionRecord, report: EvaluationReport) -> HoldoutComparison:
    found = _holdout_result(store, record, report.task)
    if found is None:
        return HoldoutComparison(
            source="nothing on record", metrics=[], summary="no test result of this version on record to compare with"
        )
    metrics, intervals, source = found
    return compare_with_holdout(
        report.metrics,
        metrics,
        task=report.task,
        source=source,
        new_intervals=report.intervals,
        holdout_intervals=intervals,
    )


def default_slice_columns(dataset: Dataset, configured: list[str]) -> list[str]:
    if configured:
        return configured
    base = dataset.name.split("[", 1)[0]
    return list(builtin_info(base).slice_columns) if base in builtin_names() else []


def evaluate_version(
    reference: str,
    config: AmploopConfig | None = None,
    *,
    store: Store | None = None,
    data: str | Dataset | None = None,
    module: nn.Module | None = None,
    actor: str | None = None,
) -> EvaluationOutcome:
    """Evaluate a stored version (``NAME``, ``NAME:V`` or ``NAME@ALIAS``) and keep the report.

    The data is ``data`` (a built-in name, a file or a :class:`Dataset`) or else the version's own
    test rows, rebuilt from its run. ``config`` supplies ``evaluate:`` (gate, intervals, parity,
    robustness) and ``data.slice_columns``. The report is stored as JSON in the store and as an
    HTML page in the artifacts. ``module`` is needed only for a model trained from a user's own
    ``nn.Module`` (a new instance of that class); ``store`` defaults to the workspace's.
    """
    if store is None:
        with Store.open() as opened:
            return evaluate_version(reference, config, store=opened, data=data, module=module, actor=actor)
    config = config or AmploopConfig()
    record = resolve_version(store, parse_model_ref(reference))
    _, bundle = load_model_bundle(store, record.name, record.version)
    plan, why_not = None, None
    if data is None:
        plan = rebuild_splits(store, record)  # the test rows must be found: a DataError says why not
        dataset = plan.test
    else:
        dataset = data if isinstance(data, Dataset) else open_dataset(data, target=bundle.target)
        try:
            plan = rebuild_splits(store, record)
        except AmploopError as exc:  # the report says the training rows could not be found, and why
            why_not = exc.message
    champion = None
    no_champion = "no champion to compare with: this would be the first"
    champion_version = store.alias_version(record.name, "champion")
    if champion_version == record.version:
        no_champion = "this version is the champion"
    if champion_version is not None and champion_version != record.version:
        _, champion_bundle = load_model_bundle(store, record.name, champion_version)
        champion = ({"name": record.name, "version": champion_version}, champion_bundle)
    report = evaluate_model(
        bundle,
        dataset,
        model={"name": record.name, "version": record.version},
        config=config.evaluate,
        slice_columns=default_slice_columns(dataset, list(config.data.slice_columns)),
        champion=champion,
        no_champion_reason=no_champion,
        module=module,
        training_rows=plan.train if plan is not None else None,
    )
    if data is not None and (plan is None or dataset.fingerprint != plan.test.fingerprint):
        report = replace(
            report, holdout=_compare_holdout(store, record, report), shift=_shift(bundle, dataset, plan, why_not)
        )
    flat = report.to_dict()
    stored = store.record_evaluation(record.name, record.version, flat, html=render_html(flat).encode(), actor=actor)
    return EvaluationOutcome(record, report, stored)
