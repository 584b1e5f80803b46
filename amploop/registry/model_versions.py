"""Model versions: register a model's files under the next version number, look versions up,
and load or verify their files against the SHA-256 stored at registration.

These methods are part of :class:`~amploop.registry.store.Store`; :func:`load_model_bundle`
turns a stored version into a ready :class:`~amploop.models.runtime.ModelBundle`.
"""

from __future__ import annotations

import operator
import uuid
from collections.abc import Mapping
from contextlib import AbstractContextManager
from typing import TYPE_CHECKING, Any

from sqlalchemy import Engine, select
from sqlalchemy.orm import Session

from amploop.errors import ArtifactError, ModelNotFound, close_matches
from amploop.names import MAX_VERSION, check_name
from amploop.registry.artifacts import ArtifactStore
from amploop.registry.records import ModelVersionRecord, to_record
from amploop.registry.tables import AuditRow, ModelVersionRow, RegisteredModel, utcnow

__all__ = ["ModelVersionsMixin", "load_model_bundle", "version_in_range"]

if TYPE_CHECKING:
    from amploop.models.bundle import ModelBundle
    from amploop.registry.store import Store


class ModelVersionsMixin:
    """The model-version methods of :class:`~amploop.registry.store.Store`, over its engine and artifacts."""

    engine: Engine
    artifacts: ArtifactStore

    if TYPE_CHECKING:  # provided by Store

        def read(self) -> AbstractContextManager[Session]: ...

        def write(self) -> AbstractContextManager[Session]: ...

        def _audit(self, session: Session, action: str, target: str, **fields: Any) -> AuditRow: ...

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
        return to_record(ModelVersionRecord, row)

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
                return to_record(ModelVersionRecord, row)
            names = list(session.scalars(select(RegisteredModel.name)).all())
        if name in names:
            raise ModelNotFound(f"model '{name}' has no version {version}; `amploop models show {name}` lists them")
        close, hint = close_matches(name, names)
        raise ModelNotFound(f"no model named '{name}'; {hint}`amploop models list` lists them", close_matches=close)

    def list_model_versions(self, name: str | None = None) -> list[ModelVersionRecord]:
        stmt = select(ModelVersionRow).order_by(ModelVersionRow.name, ModelVersionRow.version)
        if name is not None:
            stmt = stmt.where(ModelVersionRow.name == name)
        with self.read() as session:
            return [to_record(ModelVersionRecord, r) for r in session.scalars(stmt).all()]

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


def load_model_bundle(store: Store, name: str, version: int | None = None) -> tuple[ModelVersionRecord, ModelBundle]:
    """A registered version and its model bundle, every file checked against its stored SHA-256."""
    from amploop.models.bundle import ModelBundle  # torch: imported only when a model is loaded

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
