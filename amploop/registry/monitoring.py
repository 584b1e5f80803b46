"""What monitoring keeps: reference profiles, a report per window of the prediction log, alerts.

A reference profile is an artifact (an ``.npz`` of counts and samples) found through
``monitor_profiles``; a window's report and the alerts it raised are written in one
transaction, with an audit entry per alert, so a report is never stored without its alerts or
the other way round. Two monitors on one model cannot store the same window twice: the window's
last prediction-log id is unique per version, and the second gets :class:`~amploop.errors.Conflict`.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from contextlib import AbstractContextManager
from datetime import datetime
from typing import TYPE_CHECKING, Any

from sqlalchemy import select
from sqlalchemy.exc import IntegrityError

from amploop.errors import Conflict, StoreError, UsageError
from amploop.registry.engine import MAX_ROWS
from amploop.registry.records import AlertRecord, DriftReportRecord, to_record
from amploop.registry.tables import AlertRow, DriftReportRow, ProfileRow, utcnow

if TYPE_CHECKING:
    from sqlalchemy.orm import Session

    from amploop.registry.artifacts import ArtifactStore
    from amploop.registry.tables import AuditRow

__all__ = ["MonitoringMixin"]


class MonitoringMixin:
    """Reference-profile, drift-report and alert methods of :class:`~amploop.registry.store.Store`."""

    if TYPE_CHECKING:  # provided by Store
        artifacts: ArtifactStore

        def read(self) -> AbstractContextManager[Session]: ...

        def write(self) -> AbstractContextManager[Session]: ...

        def _audit(self, session: Session, action: str, target: str, **fields: Any) -> AuditRow: ...

    def save_profile(self, name: str, version: int, data: bytes, *, n_rows: int) -> None:
        """Keep a version's reference profile (replacing an older one of the same version)."""
        key = f"monitor/{name}/{version}/reference-profile.npz"
        ref = self.artifacts.put_bytes(key, data)
        with self.write() as session:
            row = session.scalars(
                select(ProfileRow).where(ProfileRow.model_name == name, ProfileRow.version == version)
            ).first()
            if row is None:
                row = ProfileRow(model_name=name, version=version, artifact_key=key, sha256="", n_rows=0)
                session.add(row)
            row.sha256, row.n_rows, row.created_at = ref.sha256, n_rows, utcnow()

    def load_profile(self, name: str, version: int) -> bytes | None:
        """A version's stored reference profile, checked against its SHA-256; None when none is kept."""
        with self.read() as session:
            row = session.scalars(
                select(ProfileRow).where(ProfileRow.model_name == name, ProfileRow.version == version)
            ).first()
            if row is None:
                return None
            key, sha256 = row.artifact_key, row.sha256
        return self.artifacts.get_bytes(key, expected_sha256=sha256)

    def record_drift_report(
        self,
        name: str,
        version: int,
        *,
        window: Mapping[str, Any],
        drifted: bool,
        report: Mapping[str, Any],
        alerts: Sequence[Mapping[str, Any]] = (),
    ) -> tuple[DriftReportRecord, list[AlertRecord]]:
        """Store a window's report and its alerts together (``window``: first/last log id and time, rows)."""
        now = utcnow()
        try:
            with self.write() as session:
                row = DriftReportRow(
                    model_name=name,
                    version=version,
                    first_log_id=int(window["first_log_id"]),
                    last_log_id=int(window["last_log_id"]),
                    first_at=window["first_at"],
                    last_at=window["last_at"],
                    n_rows=int(window["n_rows"]),
                    drifted=drifted,
                    report=dict(report),
                    created_at=now,
                )
                session.add(row)
                session.flush()
                stored = []
                for alert in alerts:
                    alert_row = AlertRow(
                        model_name=name,
                        version=version,
                        report_id=row.id,
                        kind=alert["kind"],
                        severity=alert["severity"],
                        message=alert["message"],
                        details=dict(alert.get("details", {})),
                        at=now,
                        delivery=None,
                    )
                    session.add(alert_row)
                    session.flush()
                    self._audit(
                        session,
                        "monitor.alert",
                        f"model:{name}:{version}",
                        reason=alert["message"],
                        details={"alert_id": alert_row.id, "kind": alert["kind"], "report_id": row.id},
                    )
                    stored.append(alert_row)
                return to_record(DriftReportRecord, row), [to_record(AlertRecord, a) for a in stored]
        except StoreError as exc:
            if isinstance(exc.__context__, IntegrityError):
                raise Conflict(
                    f"the window of {name}:{version} ending at log row {window['last_log_id']} already has a "
                    "report; another monitor stored it first"
                ) from None
            raise

    def drift_reports(
        self, name: str, *, version: int | None = None, since: datetime | None = None, limit: int | None = None
    ) -> list[DriftReportRecord]:
        """Stored window reports of ``name``, oldest first (the newest ``limit`` when given)."""
        stmt = select(DriftReportRow).where(DriftReportRow.model_name == name)
        if version is not None:
            stmt = stmt.where(DriftReportRow.version == version)
        if since is not None:
            stmt = stmt.where(DriftReportRow.last_at >= since)
        if limit is not None:
            if limit < 1:
                raise UsageError(f"limit {limit}: ask for at least 1 report")
            stmt = stmt.order_by(DriftReportRow.last_log_id.desc()).limit(min(limit, MAX_ROWS))
        with self.read() as session:
            rows = [to_record(DriftReportRecord, r) for r in session.scalars(stmt).all()]
        return sorted(rows, key=lambda r: (r.version, r.last_log_id))

    def last_monitored_log_id(self, name: str, version: int) -> int | None:
        """The last prediction-log id a stored window of this version covers; None before the first."""
        stmt = (
            select(DriftReportRow.last_log_id)
            .where(DriftReportRow.model_name == name, DriftReportRow.version == version)
            .order_by(DriftReportRow.last_log_id.desc())
        )
        with self.read() as session:
            return session.scalars(stmt).first()

    def alerts(self, name: str | None = None, *, since: datetime | None = None) -> list[AlertRecord]:
        """Alerts, oldest first; of ``name`` only and from ``since`` on, when given."""
        stmt = select(AlertRow).order_by(AlertRow.id)
        if name is not None:
            stmt = stmt.where(AlertRow.model_name == name)
        if since is not None:
            stmt = stmt.where(AlertRow.at >= since)
        with self.read() as session:
            return [to_record(AlertRecord, r) for r in session.scalars(stmt.limit(MAX_ROWS)).all()]

    def set_alert_delivery(self, alert_id: int, delivery: str) -> None:
        """Record how an alert's webhook went (``delivered``, or why it was not)."""
        with self.write() as session:
            row = session.get(AlertRow, alert_id)
            if row is not None:
                row.delivery = delivery[:255]
