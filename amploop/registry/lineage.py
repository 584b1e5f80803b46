"""Lineage of a model version: everything that made it, from the store.

version → run (configuration, code version, timings) → dataset fingerprints (train, validation,
test and the source, each with its own parents and transformation) → parent version (for
retrains) → evaluations with their gate verdicts → alias moves → the loop's decisions on it.
"""

from __future__ import annotations

from typing import Any

from amploop.errors import DatasetNotFound, NotFound
from amploop.registry.aliases import alias_history
from amploop.registry.store import Store

__all__ = ["lineage"]


def _dataset_chain(store: Store, fingerprint: str, depth: int = 0) -> dict[str, Any]:
    try:
        record = store.get_dataset(fingerprint)
    except DatasetNotFound:
        return {"fingerprint": fingerprint, "recorded": False}
    node: dict[str, Any] = {
        "fingerprint": fingerprint,
        "recorded": True,
        "name": record.name,
        "source": record.source,
        "rows": record.n_rows,
        "columns": record.n_columns,
        "transformation": record.transformation,
    }
    if record.parents and depth < 8:
        node["parents"] = [_dataset_chain(store, parent, depth + 1) for parent in record.parents]
    return node


def lineage(store: Store, name: str, version: int) -> dict[str, Any]:
    record = store.get_model_version(name, version)
    result: dict[str, Any] = {
        "model": {
            "name": name,
            "version": version,
            "artifact_uri": record.artifact_uri,
            "artifacts": record.artifacts,
            "created_at": record.created_at.isoformat(),
            "metrics": record.metrics,
        },
        "run": None,  # a version registered without a training run has no run, data or parent
        "data": {},
        "parent_version": None,
    }
    if record.run_id is not None:
        try:
            run = store.get_run(record.run_id)
        except NotFound:
            run = None
        if run is not None:
            result["run"] = {
                "id": run.id,
                "kind": run.kind,
                "status": run.status,
                "actor": run.actor,
                "started_at": run.started_at.isoformat(),
                "config": run.config,
                "code_version": run.code_version,
                "precision": run.metrics.get("precision"),
                "precision_reason": run.metrics.get("precision_reason"),
            }
            result["data"] = {role: _dataset_chain(store, fp) for role, fp in run.dataset_fingerprints.items()}
            result["parent_version"] = run.config.get("parent_version")
    evaluations = store.list_evaluations(name, version)
    result["evaluations"] = [
        {
            "id": e.id,
            "created_at": e.created_at.isoformat(),
            "passed": e.passed,
            "dataset": e.dataset_fingerprint,
            "rules": e.report.get("verdict", {}).get("rules", []),
            "html_uri": e.html_uri,
        }
        for e in evaluations
    ]
    result["alias_moves"] = [
        m.to_dict() for m in alias_history(store, name) if version in (m.from_version, m.to_version)
    ]
    result["loop_decisions"] = [  # the closed loop's decisions that concern this version, as champion or challenger
        d.to_dict() for d in store.loop_decisions(name) if version in (d.champion_version, d.challenger_version)
    ]
    return result
