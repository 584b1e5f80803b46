"""Evaluating a registered model version: resolve it, rebuild its holdout, compare with the champion, keep the report.

The default evaluation data is the version's own test split, rebuilt from the run's recorded
configuration (source, seed, split fractions) and checked against the test fingerprint the run
stored: if the data changed since training, the evaluation refuses rather than silently
scoring other rows.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from amploop.config import AmploopConfig
from amploop.data import builtin_info, builtin_names, open_dataset
from amploop.data.dataset import Dataset
from amploop.errors import DataError, ModelNotFound
from amploop.evaluate.evaluation import EvaluationReport, evaluate_model
from amploop.evaluate.report import render_html
from amploop.names import ModelRef, parse_model_ref
from amploop.registry.model_versions import load_model_bundle
from amploop.registry.records import EvaluationRecord, ModelVersionRecord
from amploop.registry.store import Store

if TYPE_CHECKING:
    from torch import nn

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


def holdout_dataset(store: Store, record: ModelVersionRecord) -> Dataset:
    """The version's test rows, rebuilt from its run and checked against the stored fingerprint."""
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
        seed=train_cfg.get("seed", 0),
    )
    expected = run.dataset_fingerprints.get("test")
    if expected and plan.test.fingerprint != expected:
        raise DataError(
            f"the test rows of {record.name}:{record.version} no longer match what training held out "
            f"({source} changed since the run); pass --data with the data to evaluate on"
        )
    return plan.test


@dataclass(frozen=True)
class EvaluationOutcome:
    version: ModelVersionRecord
    report: EvaluationReport
    stored: EvaluationRecord

    def to_dict(self) -> dict[str, Any]:
        return {**self.report.to_dict(), "evaluation_id": self.stored.id, "html_uri": self.stored.html_uri}


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
    if isinstance(data, Dataset):
        dataset = data
    else:
        dataset = open_dataset(data, target=bundle.target) if data else holdout_dataset(store, record)
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
    )
    flat = report.to_dict()
    stored = store.record_evaluation(record.name, record.version, flat, html=render_html(flat).encode(), actor=actor)
    return EvaluationOutcome(record, report, stored)
