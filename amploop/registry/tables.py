"""The store's tables (SQLAlchemy 2.0). The migrations in ``migrations/versions`` create them.

A test compares these definitions with the migrated database, so the two cannot drift apart.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from sqlalchemy import (
    JSON,
    BigInteger,
    Boolean,
    DateTime,
    Float,
    ForeignKey,
    Index,
    Integer,
    MetaData,
    String,
    Text,
    TypeDecorator,
    UniqueConstraint,
)
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

__all__ = [
    "Alias",
    "AliasEvent",
    "ApiKeyRow",
    "AlertRow",
    "AuditRow",
    "Base",
    "DatasetRow",
    "DriftReportRow",
    "EvaluationRow",
    "FeedbackRow",
    "LoopDecisionRow",
    "LoopLeaseRow",
    "ModelVersionRow",
    "PredictionRow",
    "ProfileRow",
    "RegisteredModel",
    "RunRow",
    "SchemaHistory",
    "utcnow",
]

VERSION_TABLE = "amploop_alembic_version"


def utcnow() -> datetime:
    return datetime.now(UTC)


class UTCDateTime(TypeDecorator[datetime]):
    """A timestamp that is always timezone-aware UTC, also on SQLite (which stores no zone)."""

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Any) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError("naive datetime given to the store; use an aware UTC datetime")
        return value.astimezone(UTC)

    def process_result_value(self, value: datetime | None, dialect: Any) -> datetime | None:
        if value is None:
            return None
        return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


class Base(DeclarativeBase):
    metadata = MetaData(
        naming_convention={
            "pk": "pk_%(table_name)s",
            "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
            "uq": "uq_%(table_name)s_%(column_0_name)s",
            "ix": "ix_%(table_name)s_%(column_0_name)s",
        }
    )


class SchemaHistory(Base):
    """One row per migration step ever applied: proof that each ran exactly once."""

    __tablename__ = "schema_history"
    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    revision: Mapped[str] = mapped_column(String(64))
    applied_at: Mapped[datetime] = mapped_column(UTCDateTime())
    pid: Mapped[int] = mapped_column(Integer)
    host: Mapped[str] = mapped_column(String(255))


class DatasetRow(Base):
    __tablename__ = "datasets"
    fingerprint: Mapped[str] = mapped_column(String(64), primary_key=True)
    name: Mapped[str] = mapped_column(String(255), index=True)
    source: Mapped[str] = mapped_column(Text)
    n_rows: Mapped[int] = mapped_column(BigInteger)
    n_columns: Mapped[int] = mapped_column(Integer)
    schema: Mapped[dict[str, Any]] = mapped_column(JSON)
    datasheet: Mapped[dict[str, Any]] = mapped_column(JSON)
    parents: Mapped[list[str]] = mapped_column(JSON)  # fingerprints this one was derived from
    transformation: Mapped[str | None] = mapped_column(Text, nullable=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime())


class RunRow(Base):
    __tablename__ = "runs"
    id: Mapped[str] = mapped_column(String(32), primary_key=True)
    kind: Mapped[str] = mapped_column(String(32), index=True)  # train, evaluate, retrain, ...
    status: Mapped[str] = mapped_column(String(16), index=True)  # running, finished, failed
    actor: Mapped[str] = mapped_column(String(255))
    config: Mapped[dict[str, Any]] = mapped_column(JSON)
    dataset_fingerprints: Mapped[dict[str, str]] = mapped_column(JSON)  # role -> fingerprint
    code_version: Mapped[dict[str, Any]] = mapped_column(JSON)
    metrics: Mapped[dict[str, Any]] = mapped_column(JSON)
    timings: Mapped[dict[str, Any]] = mapped_column(JSON)
    error: Mapped[str | None] = mapped_column(Text, nullable=True)
    started_at: Mapped[datetime] = mapped_column(UTCDateTime())
    finished_at: Mapped[datetime | None] = mapped_column(UTCDateTime(), nullable=True)
    # The process that owns the run, so that one killed with SIGKILL can be told apart from one
    # still working (Store.reap_stale_runs). Runs recorded before revision 0003 have none.
    host: Mapped[str | None] = mapped_column(String(255), nullable=True)
    pid: Mapped[int | None] = mapped_column(Integer, nullable=True)
    process_start: Mapped[str | None] = mapped_column(String(128), nullable=True)  # Linux: pid ns/boot id/ticks


class RegisteredModel(Base):
    __tablename__ = "registered_models"
    name: Mapped[str] = mapped_column(String(255), primary_key=True)
    description: Mapped[str] = mapped_column(Text)
    next_version: Mapped[int] = mapped_column(Integer)  # a counter under a row lock, never MAX+1
    created_at: Mapped[datetime] = mapped_column(UTCDateTime())


class ModelVersionRow(Base):
    __tablename__ = "model_versions"
    __table_args__ = (UniqueConstraint("name", "version"),)
    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    name: Mapped[str] = mapped_column(ForeignKey("registered_models.name"))
    version: Mapped[int] = mapped_column(Integer)
    run_id: Mapped[str | None] = mapped_column(ForeignKey("runs.id"), nullable=True)
    artifact_uri: Mapped[str] = mapped_column(Text)
    artifacts: Mapped[dict[str, str]] = mapped_column(JSON)  # file name -> SHA-256
    metrics: Mapped[dict[str, Any]] = mapped_column(JSON)
    status: Mapped[str] = mapped_column(String(16))  # ready, deleted
    created_at: Mapped[datetime] = mapped_column(UTCDateTime())


class Alias(Base):
    """Where each alias points now; its whole past is in ``alias_history``."""

    __tablename__ = "aliases"
    model_name: Mapped[str] = mapped_column(ForeignKey("registered_models.name"), primary_key=True)
    alias: Mapped[str] = mapped_column(String(128), primary_key=True)  # amploop.names allows 128
    version: Mapped[int] = mapped_column(Integer)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime())


class AliasEvent(Base):
    __tablename__ = "alias_history"
    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    model_name: Mapped[str] = mapped_column(String(255), index=True)
    alias: Mapped[str] = mapped_column(String(128))
    from_version: Mapped[int | None] = mapped_column(Integer, nullable=True)
    to_version: Mapped[int | None] = mapped_column(Integer, nullable=True)
    at: Mapped[datetime] = mapped_column(UTCDateTime())
    actor: Mapped[str] = mapped_column(String(255))
    reason: Mapped[str] = mapped_column(Text)


class AuditRow(Base):
    """Append-only: the store has no method that updates or deletes these rows."""

    __tablename__ = "audit_log"
    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    at: Mapped[datetime] = mapped_column(UTCDateTime(), index=True)
    actor: Mapped[str] = mapped_column(String(255))
    action: Mapped[str] = mapped_column(String(64))
    target: Mapped[str] = mapped_column(Text)
    reason: Mapped[str] = mapped_column(Text)
    details: Mapped[dict[str, Any]] = mapped_column(JSON)


class EvaluationRow(Base):
    """One evaluation of one model version: the full report as JSON, and where its HTML page is."""

    __tablename__ = "evaluations"
    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    model_name: Mapped[str] = mapped_column(String(255), index=True)
    version: Mapped[int] = mapped_column(Integer)
    dataset_fingerprint: Mapped[str] = mapped_column(String(64))
    passed: Mapped[bool] = mapped_column(Boolean)
    report: Mapped[dict[str, Any]] = mapped_column(JSON)
    html_uri: Mapped[str | None] = mapped_column(Text, nullable=True)
    actor: Mapped[str] = mapped_column(String(255))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime())


# SQLite autoincrements only an INTEGER PRIMARY KEY; PostgreSQL gets a 64-bit key for long-lived logs.
_BIG_ID = BigInteger().with_variant(Integer(), "sqlite")


class PredictionRow(Base):
    """One answered prediction request (or its shadow scoring): what monitoring reads by version and time."""

    __tablename__ = "prediction_log"
    __table_args__ = (Index("ix_prediction_log_model_version_at", "model_name", "version", "at"),)
    id: Mapped[int] = mapped_column(_BIG_ID, primary_key=True, autoincrement=True)
    request_id: Mapped[str] = mapped_column(String(64), index=True)
    model_name: Mapped[str] = mapped_column(String(255))
    version: Mapped[int] = mapped_column(Integer)
    role: Mapped[str] = mapped_column(String(16))  # served (the answer returned), shadow (scored, not returned)
    at: Mapped[datetime] = mapped_column(UTCDateTime())  # when the request arrived
    n_rows: Mapped[int] = mapped_column(Integer)
    features: Mapped[list[dict[str, Any]]] = mapped_column(JSON)  # the records as sent
    outputs: Mapped[dict[str, Any]] = mapped_column(JSON)  # predictions, probabilities, confidence
    latency_ms: Mapped[float] = mapped_column(Float)
    replica: Mapped[str] = mapped_column(String(255))  # host:pid of the server that answered


class FeedbackRow(Base):
    """A true label for one row of an answered request, for realized performance."""

    __tablename__ = "feedback"
    __table_args__ = (UniqueConstraint("request_id", "row", name="uq_feedback_request_id_row"),)
    id: Mapped[int] = mapped_column(_BIG_ID, primary_key=True, autoincrement=True)
    request_id: Mapped[str] = mapped_column(String(64), index=True)
    row: Mapped[int] = mapped_column(Integer)  # position of the record in its request, from 0
    label: Mapped[Any] = mapped_column(JSON)
    at: Mapped[datetime] = mapped_column(UTCDateTime())
    actor: Mapped[str] = mapped_column(String(255))


class ApiKeyRow(Base):
    """An API key: only its SHA-256 is kept; the secret is shown once, when it is created."""

    __tablename__ = "api_keys"
    id: Mapped[str] = mapped_column(String(32), primary_key=True)  # the key's public part, amp_<id>_<secret>
    name: Mapped[str] = mapped_column(String(255))
    role: Mapped[str] = mapped_column(String(16))  # operator, reader
    secret_sha256: Mapped[str] = mapped_column(String(64))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime())
    created_by: Mapped[str] = mapped_column(String(255))
    revoked_at: Mapped[datetime | None] = mapped_column(UTCDateTime(), nullable=True)


class ProfileRow(Base):
    """Where a model version's reference profile (monitoring's view of its training rows) is kept."""

    __tablename__ = "monitor_profiles"
    __table_args__ = (UniqueConstraint("model_name", "version", name="uq_monitor_profiles_model_version"),)
    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    model_name: Mapped[str] = mapped_column(String(255))
    version: Mapped[int] = mapped_column(Integer)
    artifact_key: Mapped[str] = mapped_column(String(1024))
    sha256: Mapped[str] = mapped_column(String(64))
    n_rows: Mapped[int] = mapped_column(Integer)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime())


class DriftReportRow(Base):
    """One window of a version's prediction log, compared with its reference: a DriftReport."""

    __tablename__ = "drift_reports"
    __table_args__ = (
        UniqueConstraint("model_name", "version", "last_log_id", name="uq_drift_reports_model_version_last_log_id"),
    )
    id: Mapped[int] = mapped_column(_BIG_ID, primary_key=True, autoincrement=True)
    model_name: Mapped[str] = mapped_column(String(255))
    version: Mapped[int] = mapped_column(Integer)
    first_log_id: Mapped[int] = mapped_column(_BIG_ID)  # the window's prediction-log ids, inclusive
    last_log_id: Mapped[int] = mapped_column(_BIG_ID)
    first_at: Mapped[datetime] = mapped_column(UTCDateTime())
    last_at: Mapped[datetime] = mapped_column(UTCDateTime())
    n_rows: Mapped[int] = mapped_column(Integer)
    drifted: Mapped[bool] = mapped_column(Boolean)
    report: Mapped[dict[str, Any]] = mapped_column(JSON)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime())


class AlertRow(Base):
    """An alarm raised by monitoring, with the report that raised it and whether its webhook was delivered."""

    __tablename__ = "alerts"
    __table_args__ = (Index("ix_alerts_model_name_at", "model_name", "at"),)
    id: Mapped[int] = mapped_column(_BIG_ID, primary_key=True, autoincrement=True)
    model_name: Mapped[str] = mapped_column(String(255))
    version: Mapped[int] = mapped_column(Integer)
    report_id: Mapped[int] = mapped_column(_BIG_ID)
    kind: Mapped[str] = mapped_column(String(64))  # feature_drift, prediction_drift, estimated_performance, ...
    severity: Mapped[str] = mapped_column(String(16))  # warning or critical
    message: Mapped[str] = mapped_column(Text)
    details: Mapped[dict[str, Any]] = mapped_column(JSON)
    at: Mapped[datetime] = mapped_column(UTCDateTime())
    delivery: Mapped[str | None] = mapped_column(String(255), nullable=True)  # webhook outcome, when one is set


class LoopDecisionRow(Base):
    """One decision of the closed loop (retrain started, promoted, rejected, rolled back, ...) with its numbers."""

    __tablename__ = "loop_decisions"
    __table_args__ = (Index("ix_loop_decisions_model_name_at", "model_name", "at"),)
    id: Mapped[int] = mapped_column(_BIG_ID, primary_key=True, autoincrement=True)
    model_name: Mapped[str] = mapped_column(String(255))
    kind: Mapped[str] = mapped_column(String(32))
    champion_version: Mapped[int | None] = mapped_column(Integer, nullable=True)
    challenger_version: Mapped[int | None] = mapped_column(Integer, nullable=True)
    reasons: Mapped[list[str]] = mapped_column(JSON)
    numbers: Mapped[dict[str, Any]] = mapped_column(JSON)
    at: Mapped[datetime] = mapped_column(UTCDateTime())
    actor: Mapped[str] = mapped_column(String(255))


class LoopLeaseRow(Base):
    """Which loop controller may act on a model, until when: one at a time, and a dead one's lease expires."""

    __tablename__ = "loop_leases"
    model_name: Mapped[str] = mapped_column(String(255), primary_key=True)
    holder: Mapped[str] = mapped_column(String(255))
    acquired_at: Mapped[datetime] = mapped_column(UTCDateTime())
    expires_at: Mapped[datetime] = mapped_column(UTCDateTime())
