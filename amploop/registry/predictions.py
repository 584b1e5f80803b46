"""The prediction log, feedback labels and API keys: what serving writes and monitoring reads.

A server appends answered requests in batches (:meth:`PredictionsMixin.log_predictions`, one
transaction per batch); monitoring reads them back by model, version and time window
(:meth:`PredictionsMixin.prediction_log`). Feedback is a true label for one row of an answered
request. API keys are kept as the SHA-256 of their secret only; :mod:`amploop.serve.auth`
makes and checks them.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from contextlib import AbstractContextManager
from datetime import datetime
from typing import TYPE_CHECKING, Any

from sqlalchemy import func, insert, select
from sqlalchemy.exc import IntegrityError

from amploop.errors import Conflict, NotFound, StoreError, UsageError
from amploop.registry.engine import MAX_ROWS
from amploop.registry.records import ApiKeyRecord, FeedbackRecord, PredictionRecord, to_record
from amploop.registry.tables import ApiKeyRow, FeedbackRow, PredictionRow, utcnow
from amploop.workspace import current_actor

if TYPE_CHECKING:
    from sqlalchemy.orm import Session

    from amploop.registry.tables import AuditRow

__all__ = ["PREDICTION_FIELDS", "PredictionsMixin"]

# What a server hands to log_predictions for each request (the id is given by the database).
PREDICTION_FIELDS = (
    "request_id",
    "model_name",
    "version",
    "role",
    "at",
    "n_rows",
    "features",
    "outputs",
    "latency_ms",
    "replica",
)


class PredictionsMixin:
    """Prediction-log, feedback and API-key methods of :class:`~amploop.registry.store.Store`."""

    if TYPE_CHECKING:  # provided by Store

        def read(self) -> AbstractContextManager[Session]: ...

        def write(self) -> AbstractContextManager[Session]: ...

        def _audit(self, session: Session, action: str, target: str, **fields: Any) -> AuditRow: ...

    # -- the prediction log --------------------------------------------------------------------

    def log_predictions(self, entries: Sequence[Mapping[str, Any]]) -> int:
        """Append logged requests (each with :data:`PREDICTION_FIELDS`, JSON-ready) in one transaction; their count."""
        if not entries:
            return 0
        # features and outputs must be JSON-ready already (a server's are: parsed from and made for
        # JSON); walking them again here cost a fifth of a busy server's time
        rows = [{field: entry[field] for field in PREDICTION_FIELDS} for entry in entries]
        with self.write() as session:
            session.execute(insert(PredictionRow), rows)  # one executemany, not one INSERT per ORM object
        return len(rows)

    def prediction_log(
        self,
        name: str,
        *,
        version: int | None = None,
        role: str = "served",
        since: datetime | None = None,
        until: datetime | None = None,
        after_id: int | None = None,
        limit: int | None = None,
    ) -> list[PredictionRecord]:
        """Logged requests of ``name`` in arrival order: ``since <= at < until``, ids above ``after_id``."""
        stmt = select(PredictionRow).where(PredictionRow.model_name == name, PredictionRow.role == role)
        if version is not None:
            stmt = stmt.where(PredictionRow.version == version)
        if since is not None:
            stmt = stmt.where(PredictionRow.at >= since)
        if until is not None:
            stmt = stmt.where(PredictionRow.at < until)
        if after_id is not None:
            stmt = stmt.where(PredictionRow.id > after_id)
        if limit is not None:
            if limit < 1:
                raise UsageError(f"limit {limit}: ask for at least 1 logged prediction")
            stmt = stmt.limit(min(limit, MAX_ROWS))
        with self.read() as session:
            return [to_record(PredictionRecord, r) for r in session.scalars(stmt.order_by(PredictionRow.id)).all()]

    def count_predictions(self, name: str | None = None, *, version: int | None = None, role: str = "served") -> int:
        """How many requests are logged (for ``name``, ``version`` and ``role`` when given)."""
        stmt = select(func.count()).select_from(PredictionRow).where(PredictionRow.role == role)
        if name is not None:
            stmt = stmt.where(PredictionRow.model_name == name)
        if version is not None:
            stmt = stmt.where(PredictionRow.version == version)
        with self.read() as session:
            return int(session.scalar(stmt) or 0)

    # -- feedback ------------------------------------------------------------------------------

    def record_feedback(
        self, request_id: str, labels: Mapping[int, Any], *, actor: str | None = None
    ) -> list[FeedbackRecord]:
        """Store true labels for rows of an answered request: ``{row: label}``, rows counted from 0.

        The request must be in the prediction log (a server flushes its log within a second or
        two; :class:`NotFound` says to retry) and each row may get one label (:class:`Conflict`).
        """
        if not labels:
            raise UsageError("feedback needs at least one label")
        with self.read() as session:
            logged = session.scalars(
                select(PredictionRow.n_rows).where(
                    PredictionRow.request_id == request_id, PredictionRow.role == "served"
                )
            ).first()
        if logged is None:
            raise NotFound(
                f"no answered request with id {request_id} in the prediction log; check the id, "
                "or retry in a few seconds if the request was just answered"
            )
        outside = sorted(row for row in labels if not 0 <= row < logged)
        if outside:
            raise NotFound(f"request {request_id} has {logged} row(s), so no row {outside[0]}; rows count from 0")
        now, who = utcnow(), actor or current_actor()
        rows = [
            FeedbackRow(request_id=request_id, row=row, label=label, at=now, actor=who) for row, label in labels.items()
        ]
        try:
            with self.write() as session:
                session.add_all(rows)
                session.flush()
        except StoreError as exc:
            if isinstance(exc.__context__, IntegrityError):
                raise Conflict(
                    f"feedback for request {request_id} was already recorded for one of these rows; "
                    "each row takes one label"
                ) from None
            raise
        return [to_record(FeedbackRecord, r) for r in rows]

    def feedback(self, request_ids: Sequence[str] | None = None) -> list[FeedbackRecord]:
        """Feedback labels, oldest first; only those of ``request_ids`` when given."""
        stmt = select(FeedbackRow).order_by(FeedbackRow.id)
        if request_ids is not None:
            stmt = stmt.where(FeedbackRow.request_id.in_(list(request_ids)))
        with self.read() as session:
            return [to_record(FeedbackRecord, r) for r in session.scalars(stmt).all()]

    # -- API keys ------------------------------------------------------------------------------

    def add_api_key(
        self, key_id: str, *, name: str, role: str, secret_sha256: str, actor: str | None = None
    ) -> ApiKeyRecord:
        """Keep a new key's id, role and the SHA-256 of its secret (never the secret), with an audit entry."""
        row = ApiKeyRow(
            id=key_id,
            name=name,
            role=role,
            secret_sha256=secret_sha256,
            created_at=utcnow(),
            created_by=actor or current_actor(),
            revoked_at=None,
        )
        with self.write() as session:
            session.add(row)
            session.flush()
            self._audit(session, "key.create", f"key:{key_id}", actor=actor, details={"name": name, "role": role})
        return to_record(ApiKeyRecord, row)

    def api_key_secret(self, key_id: str) -> tuple[ApiKeyRecord, str] | None:
        """A key's record and its secret's SHA-256, or None when there is no such key."""
        with self.read() as session:
            row = session.get(ApiKeyRow, key_id)
            return None if row is None else (to_record(ApiKeyRecord, row), row.secret_sha256)

    def list_api_keys(self) -> list[ApiKeyRecord]:
        with self.read() as session:
            rows = session.scalars(select(ApiKeyRow).order_by(ApiKeyRow.created_at, ApiKeyRow.id)).all()
            return [to_record(ApiKeyRecord, r) for r in rows]

    def revoke_api_key(self, key_id: str, *, reason: str = "", actor: str | None = None) -> ApiKeyRecord:
        """Revoke a key from now on; revoking it again changes nothing."""
        with self.write() as session:
            row = session.get(ApiKeyRow, key_id, with_for_update=True)
            if row is None:
                raise NotFound(f"no API key with id {key_id}; `amploop keys list` lists them")
            if row.revoked_at is None:
                row.revoked_at = utcnow()
                self._audit(session, "key.revoke", f"key:{key_id}", actor=actor, reason=reason, details={})
            session.flush()
        return to_record(ApiKeyRecord, row)
