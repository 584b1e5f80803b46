"""The registry: the store (datasets, runs, models, aliases, audit log) and artifact storage."""

from amploop.registry.artifacts import ArtifactRef, ArtifactStore
from amploop.registry.model_versions import load_model_bundle
from amploop.registry.records import (
    AuditEntry,
    DatasetRecord,
    EvaluationRecord,
    ModelVersionRecord,
    RunRecord,
    StoreInfo,
    dataset_record,
)
from amploop.registry.store import Store

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
