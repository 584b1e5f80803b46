"""What the registry holds, for ``amploop models list|show`` and the dashboard: each version's
headline metric from training, the verdict of its latest evaluation, and its aliases."""

from __future__ import annotations

from typing import Any

from amploop.names import ModelRef
from amploop.registry.aliases import list_aliases
from amploop.registry.records import EvaluationRecord, ModelVersionRecord
from amploop.registry.store import Store

__all__ = ["MAIN_METRICS", "main_metric", "model_overview", "models_overview", "version_overview"]

MAIN_METRICS = ("test_accuracy", "test_rmse")  # what training measured on the held-out rows, by task


def main_metric(metrics: dict[str, Any]) -> tuple[str | None, float | None]:
    """The version's headline number from training: test accuracy (classification) or RMSE (regression)."""
    for key in MAIN_METRICS:
        value = metrics.get(key)
        if isinstance(value, int | float) and not isinstance(value, bool):
            return key, float(value)
    return None, None


def _latest_evaluations(store: Store, name: str) -> dict[int, EvaluationRecord]:
    """Each version's newest evaluation record (the store lists them oldest first)."""
    return {evaluation.version: evaluation for evaluation in store.list_evaluations(name)}


def _verdict(evaluation: EvaluationRecord | None) -> str | None:
    return None if evaluation is None else ("pass" if evaluation.passed else "fail")


def _version_summary(
    record: ModelVersionRecord, evaluation: EvaluationRecord | None, aliases: dict[str, int]
) -> dict[str, Any]:
    metric, value = main_metric(record.metrics)
    return {
        "version": record.version,
        "metric": metric,
        "value": value,
        "gate": _verdict(evaluation),
        "evaluated_at": None if evaluation is None else evaluation.created_at.isoformat(),
        "aliases": sorted(a for a, v in aliases.items() if v == record.version),
    }


def models_overview(store: Store) -> list[dict[str, Any]]:
    """Every registered model with each ready version's metric, latest gate verdict and aliases."""
    versions = store.list_model_versions()
    rows = []
    for name in sorted({v.name for v in versions}):
        mine = [v for v in versions if v.name == name and v.status == "ready"]
        aliases = list_aliases(store, name)
        evaluated = _latest_evaluations(store, name)
        rows.append(
            {
                "name": name,
                "versions": len(mine),
                "latest": max((v.version for v in mine), default=None),
                "aliases": aliases,
                "ready_versions": [_version_summary(v, evaluated.get(v.version), aliases) for v in mine],
            }
        )
    return rows


def model_overview(store: Store, name: str) -> dict[str, Any]:
    """One model's versions, each with the verdict of its latest evaluation; ModelNotFound names close matches."""
    latest = store.get_model_version(name)
    evaluated = _latest_evaluations(store, name)
    return {
        "name": name,
        "latest": latest.version,
        "aliases": list_aliases(store, name),
        "versions": [
            {**v.to_dict(), "gate": _verdict(evaluated.get(v.version))} for v in store.list_model_versions(name)
        ],
    }


def version_overview(store: Store, ref: ModelRef) -> dict[str, Any]:
    """One version (``NAME:VERSION`` or ``NAME@ALIAS``) with its metrics, files, aliases and evaluations."""
    from amploop.registry.evaluations import resolve_version

    record = resolve_version(store, ref)
    evaluations = [
        {"id": e.id, "passed": e.passed, "created_at": e.created_at.isoformat(), "html_uri": e.html_uri}
        for e in store.list_evaluations(record.name, record.version)
    ]
    return {
        **record.to_dict(),
        "aliases": [a for a, v in list_aliases(store, record.name).items() if v == record.version],
        "evaluations": evaluations,
    }
