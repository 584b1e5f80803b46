"""The registry: the store (datasets, runs, models, aliases, audit log) and artifact storage."""

from amploop.registry.artifacts import ArtifactRef, ArtifactStore
from amploop.registry.store import (
    AuditEntry,
    DatasetRecord,
    EvaluationRecord,
    ModelVersionRecord,
    RunRecord,
    Store,
    StoreInfo,
    dataset_record,
    load_model_bundle,
)

__all__ = [
    "ArtifactRef",
    "ArtifactStore",
    "AuditEntry",
    "DatasetRecord",
    "EvaluationRecord",
    "ModelVersionRecord",
    "RunRecord",
    "Store",
    "StoreInfo",
    "dataset_record",
    "load_model_bundle",
]
