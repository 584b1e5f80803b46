"""What the store returns: frozen records of datasets, runs, model versions, evaluations and audit entries.

Each record is a frozen dataclass, detached from the database session that read it;
``to_dict()`` gives its JSON form (datetimes as ISO 8601 strings), which the CLI's ``--json``
prints. :func:`to_record` builds a record from an ORM row of the same fields; :func:`jsonable`
turns nested values into JSON-ready ones.

Examples
--------
>>> from datetime import datetime, timezone
>>> jsonable({"at": datetime(2024, 5, 1, tzinfo=timezone.utc), "tags": ("a", "b")})
{'at': '2024-05-01T00:00:00+00:00', 'tags': ['a', 'b']}
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from datetime import datetime
from typing import Any

from amploop.data.dataset import Dataset

__all__ = [
    "AlertRecord",
    "ApiKeyRecord",
    "AuditEntry",
    "DatasetRecord",
    "DriftReportRecord",
    "EvaluationRecord",
    "FeedbackRecord",
    "LeaseRecord",
    "LoopDecisionRecord",
    "ModelVersionRecord",
    "PredictionRecord",
    "RunRecord",
    "StoreInfo",
    "dataset_record",
    "jsonable",
    "to_record",
]


def jsonable(value: Any) -> Any:
    """``value`` with datetimes as ISO 8601 strings and tuples as lists, through nested dicts and lists."""
    if isinstance(value, datetime):
        return value.isoformat()
    if isinstance(value, dict):
        return {k: jsonable(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [jsonable(v) for v in value]
    return value


class _Record:
    def to_dict(self) -> dict[str, Any]:
        return jsonable(asdict(self))  # type: ignore[call-overload]


@dataclass(frozen=True)
class DatasetRecord(_Record):
    """A dataset as the store knows it: identity, shape, schema and datasheet, not the rows."""

    fingerprint: str
    name: str
    source: str
    n_rows: int
    n_columns: int
    schema: dict[str, Any]
    datasheet: dict[str, Any] = field(default_factory=dict)
    parents: list[str] = field(default_factory=list)
    transformation: str | None = None
    created_at: datetime | None = None


def dataset_record(dataset: Dataset, *, datasheet: dict[str, Any] | None = None) -> DatasetRecord:
    """The store's description of a dataset: fingerprint, shape, schema, lineage, datasheet."""
    return DatasetRecord(
        fingerprint=dataset.fingerprint,
        name=dataset.name,
        source=dataset.source,
        n_rows=dataset.n_rows,
        n_columns=dataset.n_columns,
        schema={
            **dataset.schema.to_dict(),
            "target": dataset.target,
            "task": dataset.task,
            "content_fingerprint": dataset.content_fingerprint,
        },
        datasheet=dict(datasheet or {}),
        parents=list(dataset.parents),
        transformation=dataset.transformation,
    )


@dataclass(frozen=True)
class RunRecord(_Record):
    id: str
    kind: str
    status: str
    actor: str
    config: dict[str, Any]
    dataset_fingerprints: dict[str, str]
    code_version: dict[str, Any]
    metrics: dict[str, Any]
    timings: dict[str, Any]
    error: str | None
    started_at: datetime
    finished_at: datetime | None
    host: str | None = None  # the host and process that own the run (None before schema 0003)
    pid: int | None = None


@dataclass(frozen=True)
class ModelVersionRecord(_Record):
    name: str
    version: int
    run_id: str | None
    artifact_uri: str
    artifacts: dict[str, str]  # file name -> SHA-256
    metrics: dict[str, Any]
    status: str
    created_at: datetime


@dataclass(frozen=True)
class EvaluationRecord(_Record):
    id: int
    model_name: str
    version: int
    dataset_fingerprint: str
    passed: bool
    report: dict[str, Any]
    html_uri: str | None
    actor: str
    created_at: datetime


@dataclass(frozen=True)
class AuditEntry(_Record):
    id: int
    at: datetime
    actor: str
    action: str
    target: str
    reason: str
    details: dict[str, Any]


@dataclass(frozen=True)
class PredictionRecord(_Record):
    """One logged request: its records as sent, what the model answered, and how long it took."""

    id: int
    request_id: str
    model_name: str
    version: int
    role: str  # served (returned to the caller) or shadow (scored by a challenger, not returned)
    at: datetime
    n_rows: int
    features: list[dict[str, Any]]
    outputs: dict[str, Any]  # predictions, probabilities (classification), confidence
    latency_ms: float
    replica: str


@dataclass(frozen=True)
class FeedbackRecord(_Record):
    id: int
    request_id: str
    row: int
    label: Any
    at: datetime
    actor: str


@dataclass(frozen=True)
class ApiKeyRecord(_Record):
    """An API key without its secret: the store keeps only the secret's SHA-256."""

    id: str
    name: str
    role: str
    created_at: datetime
    created_by: str
    revoked_at: datetime | None

    @property
    def active(self) -> bool:
        return self.revoked_at is None


@dataclass(frozen=True)
class StoreInfo(_Record):
    backend: str
    db_url: str
    artifacts_url: str
    home: str
    schema_revision: str | None
    server: str
    counts: dict[str, int]


def to_record(cls: type, row: Any) -> Any:
    """A record of type ``cls`` with each of its fields read from the same-named attribute of ``row``."""
    return cls(**{name: getattr(row, name) for name in cls.__dataclass_fields__})


@dataclass(frozen=True)
class DriftReportRecord(_Record):
    """A stored window report: which prediction-log rows it covers and what monitoring found."""

    id: int
    model_name: str
    version: int
    first_log_id: int
    last_log_id: int
    first_at: datetime
    last_at: datetime
    n_rows: int
    drifted: bool
    report: dict[str, Any]
    created_at: datetime


@dataclass(frozen=True)
class AlertRecord(_Record):
    id: int
    model_name: str
    version: int
    report_id: int
    kind: str
    severity: str
    message: str
    details: dict[str, Any]
    at: datetime
    delivery: str | None


@dataclass(frozen=True)
class LoopDecisionRecord(_Record):
    """A stored decision of the loop: what it did to which versions, why, and the numbers it used."""

    id: int
    model_name: str
    kind: str
    champion_version: int | None
    challenger_version: int | None
    reasons: list[str]
    numbers: dict[str, Any]
    at: datetime
    actor: str


@dataclass(frozen=True)
class LeaseRecord(_Record):
    model_name: str
    holder: str
    acquired_at: datetime
    expires_at: datetime
