"""Runs: each run of a stage (``train``, ...) from its start to its end, and the runs whose process died.

A run is started with its configuration, dataset fingerprints and code version, and finished
with its metrics and timings, or with the error that failed it. The store keeps the host, pid
and process start of each run's owner (see :mod:`amploop.registry.owners`), so a run whose
process was killed before it could record its end reads ``failed`` instead of ``running``
forever. These methods are part of :class:`~amploop.registry.store.Store`.
"""

from __future__ import annotations

import os
import socket
import uuid
from collections.abc import Mapping
from contextlib import AbstractContextManager
from typing import TYPE_CHECKING, Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from amploop.errors import NotFound, UsageError
from amploop.registry.engine import MAX_ROWS
from amploop.registry.owners import process_start, stale_runs
from amploop.registry.records import RunRecord, to_record
from amploop.registry.tables import AuditRow, RunRow, utcnow
from amploop.workspace import current_actor

__all__ = ["RunsMixin"]


class RunsMixin:
    """The run methods of :class:`~amploop.registry.store.Store`, in its transactions and audit log."""

    if TYPE_CHECKING:  # provided by Store

        def read(self) -> AbstractContextManager[Session]: ...

        def write(self) -> AbstractContextManager[Session]: ...

        def _audit(self, session: Session, action: str, target: str, **fields: Any) -> AuditRow: ...

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
        return to_record(RunRecord, row)

    def finish_run(
        self,
        run_id: str,
        *,
        status: str = "finished",
        metrics: Mapping[str, Any] | None = None,
        timings: Mapping[str, Any] | None = None,
        error: str | None = None,
        dataset_fingerprints: Mapping[str, str] | None = None,
    ) -> RunRecord:
        """Close a run with its outcome; ``dataset_fingerprints`` adds the fingerprints known only at the end."""
        if status not in ("finished", "failed"):
            raise UsageError(f"run status must be 'finished' or 'failed', not {status!r}")
        with self.write() as session:
            row = session.get(RunRow, run_id)
            if row is None:
                raise NotFound(f"no run {run_id} in the store")
            row.status = status
            row.metrics = {**row.metrics, **(metrics or {})}
            row.timings = {**row.timings, **(timings or {})}
            row.error = error
            if dataset_fingerprints:
                row.dataset_fingerprints = {**row.dataset_fingerprints, **dataset_fingerprints}
            row.finished_at = utcnow()
        return to_record(RunRecord, row)

    def get_run(self, run_id: str) -> RunRecord:
        """One run; a ``running`` run whose process on this host is gone reads ``failed``."""
        with self.read() as session:
            row = session.get(RunRow, run_id)
            if row is None:
                raise NotFound(
                    f"no run {run_id} in the store; `amploop models lineage NAME:VERSION` shows the run of a version"
                )
            record = to_record(RunRecord, row)
            stale = stale_runs([row])
        if not stale:
            return record
        self._fail_stale_runs(stale)
        with self.read() as session:
            return to_record(RunRecord, session.get(RunRow, run_id))

    def list_runs(self, *, limit: int = 50) -> list[RunRecord]:
        """The newest ``limit`` runs, newest first, after :meth:`reap_stale_runs`."""
        if limit < 1:
            raise UsageError(f"limit {limit}: ask for at least 1 run")
        self.reap_stale_runs()
        with self.read() as session:
            stmt = select(RunRow).order_by(RunRow.started_at.desc()).limit(min(limit, MAX_ROWS))
            return [to_record(RunRecord, r) for r in session.scalars(stmt).all()]

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
