"""The Store: amploop's one source of truth for datasets, runs, models, aliases and the audit log.

One SQLAlchemy implementation serves both backends, SQLite and PostgreSQL, chosen by the URL's
scheme; :mod:`amploop.registry.engine` opens the engine, migrates the schema and translates
backend errors. The store hands back the frozen records of :mod:`amploop.registry.records`.

Examples
--------
>>> import tempfile
>>> from amploop.workspace import Workspace
>>> ws = Workspace.from_env({"AMPLOOP_HOME": tempfile.mkdtemp()})
>>> with Store.open(ws) as store:
...     entry = store.append_audit("demo.run", "adult", reason="doctest", actor="alice")
...     [(e.actor, e.action, e.target) for e in store.audit_log()]
[('alice', 'demo.run', 'adult')]
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import asdict
from datetime import datetime
from typing import Any

from alembic.runtime.migration import MigrationContext
from sqlalchemy import Engine, func, select
from sqlalchemy.exc import IntegrityError, SQLAlchemyError
from sqlalchemy.orm import Session

from amploop.errors import DatasetNotFound, StoreError, UsageError
from amploop.registry.artifacts import ArtifactStore
from amploop.registry.engine import MAX_ROWS, open_engine, store_error
from amploop.registry.loop_state import LoopStateMixin
from amploop.registry.model_versions import ModelVersionsMixin, version_in_range
from amploop.registry.monitoring import MonitoringMixin
from amploop.registry.predictions import PredictionsMixin
from amploop.registry.records import AuditEntry, DatasetRecord, EvaluationRecord, StoreInfo, jsonable, to_record
from amploop.registry.runs import RunsMixin
from amploop.registry.tables import (
    VERSION_TABLE,
    AlertRow,
    AliasEvent,
    ApiKeyRow,
    AuditRow,
    DatasetRow,
    DriftReportRow,
    EvaluationRow,
    FeedbackRow,
    LoopDecisionRow,
    ModelVersionRow,
    PredictionRow,
    RegisteredModel,
    RunRow,
    SchemaHistory,
    utcnow,
)
from amploop.workspace import Workspace, current_actor, mask_url

__all__ = ["Store"]


class Store(RunsMixin, ModelVersionsMixin, PredictionsMixin, MonitoringMixin, LoopStateMixin):
    """Persisted state behind every amploop stage. Open with :meth:`Store.open`; close when done.

    Its run methods come from :class:`~amploop.registry.runs.RunsMixin`, its model-version
    methods from :class:`~amploop.registry.model_versions.ModelVersionsMixin`, the prediction
    log, feedback and API keys from :class:`~amploop.registry.predictions.PredictionsMixin`,
    monitoring's profiles, reports and alerts from :class:`~amploop.registry.monitoring.MonitoringMixin`,
    and the loop's decisions and leases from :class:`~amploop.registry.loop_state.LoopStateMixin`.
    """

    def __init__(self, engine: Engine, artifacts: ArtifactStore, workspace: Workspace) -> None:
        self.engine = engine
        self.artifacts = artifacts
        self.workspace = workspace

    # -- opening -------------------------------------------------------------------------------

    @classmethod
    def open(cls, workspace: Workspace | None = None) -> Store:
        """Connect to the workspace's database, migrate it to the newest schema, and return it."""
        ws = workspace or Workspace.from_env()
        return cls(open_engine(ws), ArtifactStore(ws.artifacts_url), ws)

    def close(self) -> None:
        self.engine.dispose()

    def __enter__(self) -> Store:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    @property
    def backend(self) -> str:
        return self.engine.dialect.name

    # -- transactions --------------------------------------------------------------------------

    @contextmanager
    def read(self) -> Iterator[Session]:
        """A read-only session (a deferred transaction on SQLite)."""
        try:
            with Session(self.engine, expire_on_commit=False) as session, session.begin():
                yield session
        except SQLAlchemyError as exc:
            raise store_error(exc, self.workspace.db_url) from None

    @contextmanager
    def write(self) -> Iterator[Session]:
        """One write transaction: everything in the block commits together or not at all."""
        engine = self.engine.execution_options(amploop_write=True)
        try:
            with Session(engine, expire_on_commit=False) as session, session.begin():
                yield session
        except SQLAlchemyError as exc:
            raise store_error(exc, self.workspace.db_url) from None

    # -- information ---------------------------------------------------------------------------

    def info(self) -> StoreInfo:
        tables = {
            "datasets": DatasetRow,
            "runs": RunRow,
            "registered_models": RegisteredModel,
            "model_versions": ModelVersionRow,
            "alias_history": AliasEvent,
            "evaluations": EvaluationRow,
            "audit_log": AuditRow,
            "prediction_log": PredictionRow,
            "feedback": FeedbackRow,
            "api_keys": ApiKeyRow,
            "drift_reports": DriftReportRow,
            "alerts": AlertRow,
            "loop_decisions": LoopDecisionRow,
        }
        with self.read() as session:
            counts = {name: session.scalar(select(func.count()).select_from(t)) or 0 for name, t in tables.items()}
            conn = session.connection()
            revision = MigrationContext.configure(conn, opts={"version_table": VERSION_TABLE}).get_current_revision()
            if self.backend == "sqlite":
                mode = conn.exec_driver_sql("PRAGMA journal_mode").scalar()
                server = f"SQLite {conn.exec_driver_sql('select sqlite_version()').scalar()}, journal {mode}"
            else:
                server = str(conn.exec_driver_sql("SHOW server_version").scalar())
                server = f"PostgreSQL {server}"
        return StoreInfo(
            backend=self.backend,
            db_url=mask_url(self.workspace.db_url),
            artifacts_url=mask_url(self.workspace.artifacts_url),
            home=str(self.workspace.home),
            schema_revision=revision,
            server=server,
            counts=counts,
        )

    def schema_history(self) -> list[dict[str, Any]]:
        """Every migration step applied to this database, oldest first."""
        with self.read() as session:
            rows = session.scalars(select(SchemaHistory).order_by(SchemaHistory.id)).all()
            return [
                {"revision": r.revision, "applied_at": r.applied_at.isoformat(), "pid": r.pid, "host": r.host}
                for r in rows
            ]

    # -- datasets ------------------------------------------------------------------------------

    def record_dataset(self, record: DatasetRecord, *, actor: str | None = None) -> DatasetRecord:
        """Store a dataset's description once per fingerprint; recording it again is a no-op."""
        existing = self._find_dataset(record.fingerprint)
        if existing is not None:
            return existing
        row = DatasetRow(**{**asdict(record), "created_at": utcnow()})
        try:
            with self.write() as session:
                session.add(row)
                session.flush()
                self._audit(
                    session,
                    "dataset.record",
                    f"dataset:{record.fingerprint}",
                    actor=actor,
                    details={"name": record.name, "source": record.source},
                )
        except StoreError as exc:
            if isinstance(exc.__context__, IntegrityError):  # another process recorded it first
                found = self._find_dataset(record.fingerprint)
                if found is not None:
                    return found
            raise
        return to_record(DatasetRecord, row)

    def _find_dataset(self, fingerprint: str) -> DatasetRecord | None:
        with self.read() as session:
            row = session.get(DatasetRow, fingerprint)
            return None if row is None else to_record(DatasetRecord, row)

    def get_dataset(self, fingerprint: str) -> DatasetRecord:
        found = self._find_dataset(fingerprint)
        if found is None:
            raise DatasetNotFound(
                f"no dataset with fingerprint {fingerprint} in the store; "
                "`amploop store info` shows how many are recorded"
            )
        return found

    def list_datasets(self) -> list[DatasetRecord]:
        with self.read() as session:
            rows = session.scalars(select(DatasetRow).order_by(DatasetRow.created_at)).all()
            return [to_record(DatasetRecord, r) for r in rows]

    # -- evaluations ---------------------------------------------------------------------------

    def record_evaluation(
        self,
        name: str,
        version: int,
        report: Mapping[str, Any],
        *,
        html: bytes | None = None,
        actor: str | None = None,
    ) -> EvaluationRecord:
        """Keep an evaluation report with its model version (the HTML page goes to the artifacts)."""
        self.get_model_version(name, version)  # ModelNotFound when there is no such version
        html_uri = None
        if html is not None:
            key = f"models/{name}/evaluations/{version}-{uuid.uuid4().hex[:12]}.html"
            html_uri = self.artifacts.put_bytes(key, html).uri
        passed = bool(report.get("verdict", {}).get("passed", False))
        with self.write() as session:
            row = EvaluationRow(
                model_name=name,
                version=version,
                dataset_fingerprint=str(report.get("dataset", {}).get("fingerprint", "")),
                passed=passed,
                report=jsonable(dict(report)),
                html_uri=html_uri,
                actor=actor or current_actor(),
                created_at=utcnow(),
            )
            session.add(row)
            session.flush()
            self._audit(
                session,
                "model.evaluate",
                f"{name}:{version}",
                actor=actor,
                details={"passed": passed, "evaluation_id": row.id, "html_uri": html_uri},
            )
        return to_record(EvaluationRecord, row)

    def list_evaluations(self, name: str, version: int | None = None) -> list[EvaluationRecord]:
        stmt = select(EvaluationRow).where(EvaluationRow.model_name == name).order_by(EvaluationRow.id)
        if version is not None:
            if version_in_range(version) is None:
                return []
            stmt = stmt.where(EvaluationRow.version == version_in_range(version))
        with self.read() as session:
            return [to_record(EvaluationRecord, r) for r in session.scalars(stmt).all()]

    def alias_version(self, name: str, alias: str) -> int | None:
        """The version an alias of ``name`` points at now, or None."""
        from amploop.registry.tables import Alias

        with self.read() as session:
            row = session.get(Alias, (name, alias))
            return None if row is None else row.version

    # -- audit log -----------------------------------------------------------------------------

    def append_audit(
        self,
        action: str,
        target: str,
        *,
        reason: str = "",
        details: Mapping[str, Any] | None = None,
        actor: str | None = None,
    ) -> AuditEntry:
        """Append one entry to the audit log in its own transaction."""
        with self.write() as session:
            row = self._audit(session, action, target, reason=reason, details=details, actor=actor)
        return to_record(AuditEntry, row)

    def _audit(
        self,
        session: Session,
        action: str,
        target: str,
        *,
        reason: str = "",
        details: Mapping[str, Any] | None = None,
        actor: str | None = None,
    ) -> AuditRow:
        """Add an audit row inside the caller's transaction, so action and record commit together."""
        row = AuditRow(
            at=utcnow(),
            actor=actor or current_actor(),
            action=action,
            target=target,
            reason=reason,
            details=dict(details or {}),
        )
        session.add(row)
        session.flush()
        return row

    def audit_log(self, *, since: datetime | None = None, limit: int | None = None) -> list[AuditEntry]:
        """Audit entries, oldest first; ``since`` keeps those at or after that moment.

        ``limit`` keeps the newest ``limit`` of them, still listed oldest first.
        """
        if limit is not None and limit < 1:
            raise UsageError(f"limit {limit}: ask for at least 1 audit entry")
        stmt = select(AuditRow).order_by(AuditRow.id.desc())
        if since is not None:
            stmt = stmt.where(AuditRow.at >= since)
        if limit is not None:
            stmt = stmt.limit(min(limit, MAX_ROWS))
        with self.read() as session:
            return [to_record(AuditEntry, r) for r in reversed(session.scalars(stmt).all())]
