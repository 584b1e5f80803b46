"""The Store: amploop's one source of truth for datasets, runs, models, aliases and the audit log.

One SQLAlchemy implementation serves both backends, chosen by the URL's scheme:

- ``sqlite:///path/amploop.db`` (the default): WAL mode, so readers never block the writer;
  every write transaction starts with ``BEGIN IMMEDIATE``, so two processes never both read
  and then fail to upgrade to a write lock; a busy timeout makes writers queue instead of fail.
- ``postgresql+psycopg://user@host/db``: for teams; several servers and trainers share it.

Opening a store applies the alembic migrations that are missing. Concurrent first opens are
serialised (a lock file next to the SQLite file; a transaction-scoped advisory lock on
PostgreSQL), and each applied step is recorded in ``schema_history``, so it is visible that
every step ran exactly once. Backend errors are translated into :class:`StoreError` here, at
the boundary, with the URL's password masked.

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

import difflib
import operator
import os
import socket
import uuid
from collections.abc import Iterator, Mapping
from contextlib import contextmanager, nullcontext
from dataclasses import asdict, dataclass, field
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from filelock import FileLock
from sqlalchemy import Engine, create_engine, event, func, select, text
from sqlalchemy.engine import make_url
from sqlalchemy.exc import ArgumentError, IntegrityError, NoSuchModuleError, SQLAlchemyError
from sqlalchemy.orm import Session

from amploop.data.dataset import Dataset
from amploop.errors import ArtifactError, DatasetNotFound, ModelNotFound, NotFound, StoreError, UsageError
from amploop.names import MAX_VERSION, check_name
from amploop.registry.artifacts import ArtifactStore
from amploop.registry.owners import process_start, stale_runs
from amploop.registry.tables import (
    VERSION_TABLE,
    AliasEvent,
    AuditRow,
    DatasetRow,
    EvaluationRow,
    ModelVersionRow,
    RegisteredModel,
    RunRow,
    SchemaHistory,
    utcnow,
)
from amploop.workspace import Workspace, current_actor, mask_url

__all__ = [
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

if TYPE_CHECKING:
    from amploop.models.runtime import ModelBundle

_MIGRATIONS = Path(__file__).with_name("migrations")
# Any constant works; it only has to be the same for every amploop process on the server.
_PG_MIGRATION_LOCK_KEY = 0x616D706C6F6F70  # "amploop"
_SQLITE_BUSY_TIMEOUT_S = 60
# A LIMIT larger than any table; also keeps a huge --limit from overflowing the driver's integer.
_MAX_ROWS = 2**62


def _jsonable(value: Any) -> Any:
    if isinstance(value, datetime):
        return value.isoformat()
    if isinstance(value, dict):
        return {k: _jsonable(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_jsonable(v) for v in value]
    return value


class _Record:
    def to_dict(self) -> dict[str, Any]:
        return _jsonable(asdict(self))  # type: ignore[call-overload]


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
class StoreInfo(_Record):
    backend: str
    db_url: str
    artifacts_url: str
    home: str
    schema_revision: str | None
    server: str
    counts: dict[str, int]


def _to_record(cls: type, row: Any) -> Any:
    return cls(**{name: getattr(row, name) for name in cls.__dataclass_fields__})


class Store:
    """Persisted state behind every amploop stage. Open with :meth:`Store.open`; close when done."""

    def __init__(self, engine: Engine, artifacts: ArtifactStore, workspace: Workspace) -> None:
        self.engine = engine
        self.artifacts = artifacts
        self.workspace = workspace

    # -- opening -------------------------------------------------------------------------------

    @classmethod
    def open(cls, workspace: Workspace | None = None) -> Store:
        """Connect to the workspace's database, migrate it to the newest schema, and return it."""
        ws = workspace or Workspace.from_env()
        engine = _create_engine(ws)
        try:
            _migrate(engine)
        except SQLAlchemyError as exc:
            engine.dispose()
            raise _store_error(exc, ws.db_url) from None
        except BaseException:
            engine.dispose()
            raise
        return cls(engine, ArtifactStore(ws.artifacts_url), ws)

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
            raise _store_error(exc, self.workspace.db_url) from None

    @contextmanager
    def write(self) -> Iterator[Session]:
        """One write transaction: everything in the block commits together or not at all."""
        engine = self.engine.execution_options(amploop_write=True)
        try:
            with Session(engine, expire_on_commit=False) as session, session.begin():
                yield session
        except SQLAlchemyError as exc:
            raise _store_error(exc, self.workspace.db_url) from None

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
        return _to_record(DatasetRecord, row)

    def _find_dataset(self, fingerprint: str) -> DatasetRecord | None:
        with self.read() as session:
            row = session.get(DatasetRow, fingerprint)
            return None if row is None else _to_record(DatasetRecord, row)

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
            return [_to_record(DatasetRecord, r) for r in rows]

    # -- runs ----------------------------------------------------------------------------------

    def start_run(
        self,
        kind: str,
        *,
        config: Mapping[str, Any],
        dataset_fingerprints: Mapping[str, str] | None = None,
        code_version: Mapping[str, Any] | None = None,
        actor: str | None = None,
    ) -> RunRecord:
        row = RunRow(
            id=uuid.uuid4().hex,
            kind=kind,
            status="running",
            actor=actor or current_actor(),
            config=dict(config),
            dataset_fingerprints=dict(dataset_fingerprints or {}),
            code_version=dict(code_version or {}),
            metrics={},
            timings={},
            error=None,
            started_at=utcnow(),
            finished_at=None,
            host=socket.gethostname(),
            pid=os.getpid(),
            process_start=process_start(os.getpid()),
        )
        with self.write() as session:
            session.add(row)
        return _to_record(RunRecord, row)

    def finish_run(
        self,
        run_id: str,
        *,
        status: str = "finished",
        metrics: Mapping[str, Any] | None = None,
        timings: Mapping[str, Any] | None = None,
        error: str | None = None,
    ) -> RunRecord:
        if status not in ("finished", "failed"):
            raise ValueError(f"status must be 'finished' or 'failed', not {status!r}")
        with self.write() as session:
            row = session.get(RunRow, run_id)
            if row is None:
                raise NotFound(f"no run {run_id} in the store")
            row.status = status
            row.metrics = {**row.metrics, **(metrics or {})}
            row.timings = {**row.timings, **(timings or {})}
            row.error = error
            row.finished_at = utcnow()
        return _to_record(RunRecord, row)

    def get_run(self, run_id: str) -> RunRecord:
        """One run; a ``running`` run whose process on this host is gone reads ``failed``."""
        with self.read() as session:
            row = session.get(RunRow, run_id)
            if row is None:
                raise NotFound(
                    f"no run {run_id} in the store; `amploop models lineage NAME:VERSION` shows the run of a version"
                )
            record = _to_record(RunRecord, row)
            stale = stale_runs([row])
        if not stale:
            return record
        self._fail_stale_runs(stale)
        with self.read() as session:
            return _to_record(RunRecord, session.get(RunRow, run_id))

    def list_runs(self, *, limit: int = 50) -> list[RunRecord]:
        """The newest ``limit`` runs, newest first, after :meth:`reap_stale_runs`."""
        if limit < 1:
            raise UsageError(f"limit {limit}: ask for at least 1 run")
        self.reap_stale_runs()
        with self.read() as session:
            stmt = select(RunRow).order_by(RunRow.started_at.desc()).limit(min(limit, _MAX_ROWS))
            return [_to_record(RunRecord, r) for r in session.scalars(stmt).all()]

    def reap_stale_runs(self) -> list[RunRecord]:
        """Mark ``failed`` every ``running`` run whose process on this host is gone; return them.

        A run killed with SIGKILL (or by the OOM killer, or a reboot) never calls
        :meth:`finish_run`. Its owner is known by host name, pid and, on Linux, the process's
        start (pid namespace, boot id, start ticks), so a pid the kernel handed to a newer
        process does not keep it alive. Runs of other hosts, and of other containers that
        share this host name, are never touched: their processes cannot be seen from here.
        Each change is one audit entry (``run.reap``) with the reason.
        """
        host = socket.gethostname()
        with self.read() as session:
            running = session.scalars(
                select(RunRow).where(RunRow.status == "running", RunRow.host == host, RunRow.pid.is_not(None))
            ).all()
            stale = stale_runs(running)
        if not stale:
            return []
        reaped = self._fail_stale_runs(stale)
        return [self.get_run(run_id) for run_id in reaped]

    def _fail_stale_runs(self, stale: Mapping[str, str]) -> list[str]:
        """Fail the runs in ``stale`` (id -> reason) that are still running; return their ids."""
        reaped = []
        with self.write() as session:
            # Under the write lock, so two readers reaping at once record each run once.
            rows = session.scalars(
                select(RunRow).where(RunRow.id.in_(list(stale)), RunRow.status == "running").with_for_update()
            ).all()
            for row in rows:
                row.status, row.error, row.finished_at = "failed", stale[row.id], utcnow()
                self._audit(
                    session,
                    "run.reap",
                    f"run:{row.id}",
                    reason=stale[row.id],
                    details={"kind": row.kind, "host": row.host, "pid": row.pid},
                )
                reaped.append(row.id)
        return reaped

    # -- model versions ------------------------------------------------------------------------

    def register_model_version(
        self,
        name: str,
        files: Mapping[str, bytes],
        *,
        run_id: str | None = None,
        metrics: Mapping[str, Any] | None = None,
        description: str = "",
        actor: str | None = None,
    ) -> ModelVersionRecord:
        """Store a model's files and give it the next version number of ``name``.

        The files go first, under a fresh folder, each with its SHA-256; then one transaction
        takes the name's version counter under a row lock (``BEGIN IMMEDIATE`` on SQLite,
        ``SELECT ... FOR UPDATE`` on PostgreSQL), so concurrent registrations get 1, 2, 3, ...
        with no gap or duplicate. A failure before the commit leaves no version row behind.
        """
        check_name(name)
        prefix = f"models/{name}/{uuid.uuid4().hex}"
        digests = {file: self.artifacts.put_bytes(f"{prefix}/{file}", data).sha256 for file, data in files.items()}
        with self.write() as session:
            dialect = self.engine.dialect.name
            if dialect == "postgresql":
                from sqlalchemy.dialects.postgresql import insert as dialect_insert
            else:
                from sqlalchemy.dialects.sqlite import insert as dialect_insert
            session.execute(
                dialect_insert(RegisteredModel)
                .values(name=name, description=description, next_version=1, created_at=utcnow())
                .on_conflict_do_nothing(index_elements=["name"])
            )
            counter = session.execute(
                select(RegisteredModel).where(RegisteredModel.name == name).with_for_update()
            ).scalar_one()
            version = counter.next_version
            counter.next_version = version + 1
            row = ModelVersionRow(
                name=name,
                version=version,
                run_id=run_id,
                artifact_uri=self.artifacts.uri(prefix),
                artifacts=digests,
                metrics=dict(metrics or {}),
                status="ready",
                created_at=utcnow(),
            )
            session.add(row)
            session.flush()
            self._audit(
                session,
                "model.register",
                f"{name}:{version}",
                actor=actor,
                details={"run_id": run_id, "artifact_uri": row.artifact_uri},
            )
        return _to_record(ModelVersionRecord, row)

    def get_model_version(self, name: str, version: int | None = None) -> ModelVersionRecord:
        """A version of ``name``; the newest ready one when ``version`` is None."""
        # A number outside the column's 32-bit range names no version; asking the database
        # would overflow its integer type (an error on PostgreSQL, an OverflowError on SQLite).
        in_range = version is None or version_in_range(version) is not None
        with self.read() as session:
            stmt = select(ModelVersionRow).where(ModelVersionRow.name == name, ModelVersionRow.status == "ready")
            if version is not None:
                stmt = stmt.where(ModelVersionRow.version == version_in_range(version))
            row = session.scalars(stmt.order_by(ModelVersionRow.version.desc()).limit(1)).first() if in_range else None
            if row is not None:
                return _to_record(ModelVersionRecord, row)
            names = list(session.scalars(select(RegisteredModel.name)).all())
        if name in names:
            raise ModelNotFound(f"model '{name}' has no version {version}; `amploop models show {name}` lists them")
        close = difflib.get_close_matches(name, names, n=3)
        hint = f"; did you mean {', '.join(close)}?" if close else ""
        raise ModelNotFound(f"no model named '{name}'{hint}", close_matches=close)

    def list_model_versions(self, name: str | None = None) -> list[ModelVersionRecord]:
        stmt = select(ModelVersionRow).order_by(ModelVersionRow.name, ModelVersionRow.version)
        if name is not None:
            stmt = stmt.where(ModelVersionRow.name == name)
        with self.read() as session:
            return [_to_record(ModelVersionRecord, r) for r in session.scalars(stmt).all()]

    def load_model_files(self, record: ModelVersionRecord) -> dict[str, bytes]:
        """The version's files, each checked against the SHA-256 stored at registration."""
        files = {}
        for file, digest in record.artifacts.items():
            try:
                files[file] = self.artifacts.get_bytes(_model_file_key(record, file), expected_sha256=digest)
            except ArtifactError as exc:
                raise ArtifactError(
                    f"{record.name}:{record.version}: {exc.message}", **exc.details, file=file
                ) from None
        return files

    def verify_model_files(self, record: ModelVersionRecord) -> list[str]:
        """What is wrong with the version's files (missing, or not matching their SHA-256); [] if nothing."""
        problems = []
        for file, digest in sorted(record.artifacts.items()):
            try:
                self.artifacts.get_bytes(_model_file_key(record, file), expected_sha256=digest)
            except ArtifactError as exc:
                altered = exc.details.get("problem") == "altered"
                problems.append(f"{file} {'does not match its stored SHA-256' if altered else 'is missing'}")
        return problems

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
                report=_jsonable(dict(report)),
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
        return _to_record(EvaluationRecord, row)

    def list_evaluations(self, name: str, version: int | None = None) -> list[EvaluationRecord]:
        stmt = select(EvaluationRow).where(EvaluationRow.model_name == name).order_by(EvaluationRow.id)
        if version is not None:
            if version_in_range(version) is None:
                return []
            stmt = stmt.where(EvaluationRow.version == version_in_range(version))
        with self.read() as session:
            return [_to_record(EvaluationRecord, r) for r in session.scalars(stmt).all()]

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
        return _to_record(AuditEntry, row)

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
            stmt = stmt.limit(min(limit, _MAX_ROWS))
        with self.read() as session:
            return [_to_record(AuditEntry, r) for r in reversed(session.scalars(stmt).all())]


# -- engine and migrations ---------------------------------------------------------------------


def _create_engine(ws: Workspace) -> Engine:
    masked = mask_url(ws.db_url)
    try:
        url = make_url(ws.db_url)
    except ArgumentError:
        raise StoreError(
            f"{masked} is not a database URL; set AMPLOOP_DB_URL to sqlite:///path/amploop.db "
            "or postgresql+psycopg://user@host:5432/db"
        ) from None
    backend = url.get_backend_name()
    if backend == "sqlite":
        return _sqlite_engine(url)
    if backend in ("postgresql", "postgres"):
        if url.drivername in ("postgresql", "postgres"):
            url = url.set(drivername="postgresql+psycopg")
        try:
            return create_engine(url, pool_pre_ping=True, connect_args={"connect_timeout": 10})
        except NoSuchModuleError as exc:
            raise StoreError(f"{masked}: {exc}; use postgresql+psycopg://") from None
    raise StoreError(f"{masked}: unsupported database '{backend}'; amploop stores state in SQLite or PostgreSQL")


def _sqlite_engine(url: Any) -> Engine:
    database = url.database
    if database and database != ":memory:":
        try:
            Path(database).parent.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise StoreError(f"cannot create the folder for {database}: {exc}") from None
    engine = create_engine(url, connect_args={"timeout": _SQLITE_BUSY_TIMEOUT_S})

    @event.listens_for(engine, "connect")
    def _on_connect(dbapi_connection: Any, _record: Any) -> None:
        # Take transaction control from the driver so that "begin" below decides the BEGIN kind.
        dbapi_connection.isolation_level = None
        cursor = dbapi_connection.cursor()
        cursor.execute("PRAGMA foreign_keys=ON")
        cursor.execute(f"PRAGMA busy_timeout={_SQLITE_BUSY_TIMEOUT_S * 1000}")
        cursor.execute("PRAGMA synchronous=NORMAL")  # safe in WAL mode; fsync at checkpoints
        cursor.close()

    @event.listens_for(engine, "begin")
    def _on_begin(connection: Any) -> None:
        write = connection.get_execution_options().get("amploop_write", False)
        connection.exec_driver_sql("BEGIN IMMEDIATE" if write else "BEGIN")

    return engine


def _alembic_config(connection: Any) -> Config:
    cfg = Config()
    cfg.set_main_option("script_location", str(_MIGRATIONS))
    cfg.attributes["connection"] = connection
    return cfg


def head_revision() -> str:
    return str(ScriptDirectory.from_config(_alembic_config(None)).get_current_head())


def _current_revision(engine: Engine) -> str | None:
    with engine.connect() as conn:
        return MigrationContext.configure(conn, opts={"version_table": VERSION_TABLE}).get_current_revision()


def _migrate(engine: Engine) -> None:
    head = head_revision()
    if _current_revision(engine) == head:
        return
    database = engine.url.database
    sqlite_file = engine.dialect.name == "sqlite" and database not in (None, "", ":memory:")
    lock = FileLock(f"{database}.migrate.lock") if sqlite_file else nullcontext()
    with lock:
        if sqlite_file:
            # WAL must be switched on outside a transaction; it then persists in the file.
            raw = engine.raw_connection()
            try:
                raw.driver_connection.execute("PRAGMA journal_mode=WAL")
            finally:
                raw.close()
        with engine.connect().execution_options(amploop_write=True) as conn, conn.begin():
            if engine.dialect.name == "postgresql":
                # Held to the end of this transaction: concurrent openers wait, then find it done.
                conn.execute(text("SELECT pg_advisory_xact_lock(:key)"), {"key": _PG_MIGRATION_LOCK_KEY})
            command.upgrade(_alembic_config(conn), "head")


def _store_error(exc: SQLAlchemyError, db_url: str) -> StoreError:
    reason = str(getattr(exc, "orig", None) or exc).strip().splitlines()[0]
    return StoreError(
        f"database error at {mask_url(db_url)}: {reason}; check that the database server is "
        "running and reachable and that AMPLOOP_DB_URL is right"
    )


def load_model_bundle(store: Store, name: str, version: int | None = None) -> tuple[ModelVersionRecord, ModelBundle]:
    """A registered version and its model bundle, every file checked against its stored SHA-256."""
    from amploop.models.runtime import ModelBundle  # torch: imported only when a model is loaded

    record = store.get_model_version(name, version)
    return record, ModelBundle.from_files(store.load_model_files(record), source=f"{record.name}:{record.version}")


def version_in_range(version: object) -> int | None:
    """``version`` as an int when it can be a stored version number (1 to 2**31 - 1), else None."""
    try:
        number = operator.index(version)  # int, numpy integers; not floats or strings
    except TypeError:
        return None
    return number if 1 <= number <= MAX_VERSION else None


def _model_file_key(record: ModelVersionRecord, file: str) -> str:
    prefix = record.artifact_uri.rstrip("/").rsplit("/models/", 1)[-1]
    return f"models/{prefix}/{file}"
