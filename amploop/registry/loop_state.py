"""What the closed loop keeps in the store: its decisions, and one lease per model.

A loop controller acts on a model only while it holds the model's lease: taken in a write
transaction under a row lock (``BEGIN IMMEDIATE`` on SQLite), renewed while it works, released
when it stops. A controller that dies stops renewing; once its lease has expired another takes
it over, and the takeover is an audit entry. Two controllers therefore never act on one model at
the same moment, and a dead one never blocks the model for longer than its lease.

Each decision (a retrain started, a challenger promoted or rejected, a rollback, a step
abandoned) is a row with its reasons and numbers and an audit entry, written in one transaction.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from contextlib import AbstractContextManager
from datetime import timedelta
from typing import TYPE_CHECKING, Any

from sqlalchemy import delete, select
from sqlalchemy.exc import IntegrityError

from amploop.errors import StoreError, UsageError
from amploop.registry.engine import MAX_ROWS
from amploop.registry.records import LeaseRecord, LoopDecisionRecord, to_record
from amploop.registry.tables import LoopDecisionRow, LoopLeaseRow, utcnow
from amploop.workspace import current_actor

if TYPE_CHECKING:
    from sqlalchemy.orm import Session

    from amploop.registry.tables import AuditRow

__all__ = ["DECISION_KINDS", "LoopStateMixin"]

DECISION_KINDS = ("retrain", "promoted", "rejected", "confirmed", "rolled_back", "abandoned", "blocked")


class LoopStateMixin:
    """Loop-decision and lease methods of :class:`~amploop.registry.store.Store`."""

    if TYPE_CHECKING:  # provided by Store

        def read(self) -> AbstractContextManager[Session]: ...

        def write(self) -> AbstractContextManager[Session]: ...

        def _audit(self, session: Session, action: str, target: str, **fields: Any) -> AuditRow: ...

    # -- decisions -----------------------------------------------------------------------------

    def record_loop_decision(
        self,
        name: str,
        kind: str,
        *,
        reasons: Sequence[str],
        numbers: Mapping[str, Any] | None = None,
        champion_version: int | None = None,
        challenger_version: int | None = None,
        actor: str | None = None,
    ) -> LoopDecisionRecord:
        """Store one decision with its reasons and numbers, and its audit entry (``loop.<kind>``)."""
        if kind not in DECISION_KINDS:
            raise UsageError(f"loop decision '{kind}': use one of {', '.join(DECISION_KINDS)}")
        who = actor or current_actor()
        with self.write() as session:
            row = LoopDecisionRow(
                model_name=name,
                kind=kind,
                champion_version=champion_version,
                challenger_version=challenger_version,
                reasons=list(reasons),
                numbers=dict(numbers or {}),
                at=utcnow(),
                actor=who,
            )
            session.add(row)
            session.flush()
            self._audit(
                session,
                f"loop.{kind}",
                f"model:{name}",
                actor=who,
                reason="; ".join(reasons),
                details={"decision_id": row.id, "champion": champion_version, "challenger": challenger_version},
            )
            return to_record(LoopDecisionRecord, row)

    def loop_decisions(self, name: str, *, limit: int | None = None) -> list[LoopDecisionRecord]:
        """The loop's decisions on ``name``, oldest first (the newest ``limit`` when given)."""
        stmt = select(LoopDecisionRow).where(LoopDecisionRow.model_name == name).order_by(LoopDecisionRow.id.desc())
        if limit is not None:
            if limit < 1:
                raise UsageError(f"limit {limit}: ask for at least 1 decision")
            stmt = stmt.limit(min(limit, MAX_ROWS))
        with self.read() as session:
            rows = [to_record(LoopDecisionRecord, r) for r in session.scalars(stmt).all()]
        return rows[::-1]

    # -- the lease -----------------------------------------------------------------------------

    def acquire_lease(self, name: str, holder: str, *, ttl_s: float) -> LeaseRecord | None:
        """Take (or keep) ``name``'s lease for ``ttl_s`` seconds; None while another holder's lease runs."""
        if ttl_s <= 0:
            raise UsageError(f"a lease of {ttl_s} s: give it a positive time")
        now = utcnow()
        try:
            with self.write() as session:
                row = session.get(LoopLeaseRow, name, with_for_update=True)
                if row is None:
                    row = LoopLeaseRow(model_name=name, holder=holder, acquired_at=now, expires_at=now)
                    session.add(row)
                elif row.holder != holder:
                    if row.expires_at > now:
                        return None
                    self._audit(
                        session,
                        "loop.lease_takeover",
                        f"model:{name}",
                        reason=f"the lease of {row.holder} expired at {row.expires_at.isoformat()}",
                        details={"from": row.holder, "to": holder},
                    )
                    row.holder, row.acquired_at = holder, now
                row.expires_at = now + timedelta(seconds=ttl_s)
                session.flush()
                return to_record(LeaseRecord, row)
        except StoreError as exc:
            if isinstance(exc.__context__, IntegrityError):
                return None  # another controller inserted the first lease at the same moment
            raise

    def renew_lease(self, name: str, holder: str, *, ttl_s: float) -> bool:
        """Extend ``holder``'s lease; False when it no longer holds it (expired and taken over)."""
        with self.write() as session:
            row = session.get(LoopLeaseRow, name, with_for_update=True)
            if row is None or row.holder != holder:
                return False
            row.expires_at = utcnow() + timedelta(seconds=ttl_s)
            return True

    def release_lease(self, name: str, holder: str) -> None:
        """Give the lease up, if ``holder`` holds it."""
        with self.write() as session:
            session.execute(delete(LoopLeaseRow).where(LoopLeaseRow.model_name == name, LoopLeaseRow.holder == holder))

    def lease(self, name: str) -> LeaseRecord | None:
        """Who holds ``name``'s lease and until when (it may have expired); None when nobody took it."""
        with self.read() as session:
            row = session.get(LoopLeaseRow, name)
            return None if row is None else to_record(LeaseRecord, row)
