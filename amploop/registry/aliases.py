"""Aliases (``champion``, ``challenger``, any name): promote, roll back, and every move kept.

Each move is one transaction that takes the model's row lock first (``SELECT ... FOR UPDATE``
on PostgreSQL; ``BEGIN IMMEDIATE`` already serialises writers on SQLite), then updates the
alias and appends its history row and an audit entry. Concurrent promotions therefore form
one chain in which every move starts from the version the previous one ended at, and a process
killed in the middle leaves the alias where it was. "Which version held ``champion`` at time T"
is the last history row at or before T.

Promotion is guarded: a version must have an evaluation whose gate passed and files that still
match the SHA-256 stored at registration. ``force=True`` (with the ``reason`` every move needs)
overrides a failed gate, a missing evaluation or altered files; what was forced past is kept in
the move's reason, the alias history and the audit entry.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import select

from amploop.errors import ArtifactError, ConfigError, GateFailed, ModelNotFound, close_matches
from amploop.names import check_name
from amploop.registry.model_versions import version_in_range
from amploop.registry.records import ModelVersionRecord, jsonable, to_record
from amploop.registry.store import Store
from amploop.registry.tables import Alias, AliasEvent, EvaluationRow, ModelVersionRow, RegisteredModel, utcnow
from amploop.workspace import current_actor

__all__ = ["AliasMove", "alias_at", "alias_history", "delete_version", "list_aliases", "promote", "rollback"]


@dataclass(frozen=True)
class AliasMove:
    name: str
    alias: str
    from_version: int | None
    to_version: int | None
    at: datetime
    actor: str
    reason: str

    def to_dict(self) -> dict[str, Any]:
        return jsonable(dict(self.__dict__))


def _lock_model(session: Any, name: str) -> RegisteredModel:
    model = session.execute(
        select(RegisteredModel).where(RegisteredModel.name == name).with_for_update()
    ).scalar_one_or_none()
    if model is None:
        names = list(session.scalars(select(RegisteredModel.name)).all())
        close, hint = close_matches(name, names)
        raise ModelNotFound(f"no model named '{name}'; {hint}`amploop models list` lists them", close_matches=close)
    return model


def _version_row(session: Any, name: str, version: int) -> ModelVersionRow | None:
    number = version_in_range(version)
    if number is None:  # beyond the column's range: no such version, and no query that overflows
        return None
    return session.execute(
        select(ModelVersionRow).where(ModelVersionRow.name == name, ModelVersionRow.version == number)
    ).scalar_one_or_none()


def _move(
    store: Store,
    session: Any,
    name: str,
    alias: str,
    version: int | None,
    *,
    actor: str,
    reason: str,
    details: dict[str, Any] | None = None,
) -> AliasMove:
    current = session.get(Alias, (name, alias))
    previous = current.version if current is not None else None
    now = utcnow()
    if version is None:
        if current is not None:
            session.delete(current)
    elif current is None:
        session.add(Alias(model_name=name, alias=alias, version=version, updated_at=now))
    else:
        current.version, current.updated_at = version, now
    session.add(
        AliasEvent(
            model_name=name, alias=alias, from_version=previous, to_version=version, at=now, actor=actor, reason=reason
        )
    )
    store._audit(
        session,
        "model.alias",
        f"{name}@{alias}",
        reason=reason,
        actor=actor,
        details={"from_version": previous, "to_version": version, **(details or {})},
    )
    return AliasMove(name, alias, previous, version, now, actor, reason)


def promote(
    store: Store,
    name: str,
    version: int,
    *,
    alias: str = "champion",
    reason: str,
    actor: str | None = None,
    force: bool = False,
) -> AliasMove:
    """Point ``alias`` at ``version``: refused for a version that was never evaluated, failed its
    gate, or whose files no longer match their SHA-256, unless ``force`` (the reason is kept)."""
    check_name(alias, what="alias")
    if not reason.strip():
        raise ConfigError("a promotion needs --reason: it is kept in the alias history and the audit log")
    actor = actor or current_actor()
    # Files are read and hashed before the write transaction, so the lock is not held over I/O.
    with store.read() as session:
        found = _version_row(session, name, version)
        record = to_record(ModelVersionRecord, found) if found is not None and found.status == "ready" else None
    file_problems = store.verify_model_files(record) if record is not None else []
    with store.write() as session:
        _lock_model(session, name)
        row = _version_row(session, name, version)
        if row is None or row.status != "ready":
            state = "was deleted" if row is not None else "does not exist"
            raise ModelNotFound(f"{name}:{version} {state}; `amploop models show {name}` lists the versions")
        latest = session.scalars(
            select(EvaluationRow)
            .where(EvaluationRow.model_name == name, EvaluationRow.version == row.version)
            .order_by(EvaluationRow.id.desc())
            .limit(1)
        ).first()
        forced_past = []
        if file_problems:
            forced_past.append("altered artifacts")
            if not force:
                raise ArtifactError(
                    f"{name}:{version} cannot be promoted: {'; '.join(file_problems)}; restore the files or "
                    "register the model again (promoting it anyway needs --force and a --reason)",
                    problems=file_problems,
                )
        if latest is None:
            forced_past.append("a missing evaluation")
            if not force:
                raise GateFailed(
                    f"{name}:{version} was never evaluated; run `amploop evaluate {name}:{version}` first "
                    "(promoting it anyway needs --force and a --reason)"
                )
        elif not latest.passed:
            forced_past.append("a failed gate")
            if not force:
                rules = latest.report.get("verdict", {}).get("rules", [])
                failed = [r["metric"] for r in rules if r.get("outcome") == "fail"]
                raise GateFailed(
                    f"{name}:{version} failed its release gate ({', '.join(failed)}); promoting it "
                    "anyway needs --force and a --reason"
                )
        details: dict[str, Any] = {"evaluation_id": latest.id if latest is not None else None}
        if forced_past:
            details.update(forced=True, forced_past=forced_past, file_problems=file_problems)
        return _move(
            store,
            session,
            name,
            alias,
            row.version,
            actor=actor,
            reason=reason + (f" [forced past {' and '.join(forced_past)}]" if forced_past else ""),
            details=details,
        )


def rollback(
    store: Store, name: str, *, alias: str = "champion", to: int | None = None, reason: str, actor: str | None = None
) -> AliasMove:
    """Move ``alias`` back: to ``to``, or to the version it held before its current one."""
    if not reason.strip():
        raise ConfigError("a rollback needs --reason: it is kept in the alias history and the audit log")
    actor = actor or current_actor()
    with store.write() as session:
        _lock_model(session, name)
        current = session.get(Alias, (name, alias))
        if current is None:
            raise ModelNotFound(f"model '{name}' has no alias '{alias}' to roll back")
        target = to
        if target is None:
            history = session.scalars(
                select(AliasEvent)
                .where(AliasEvent.model_name == name, AliasEvent.alias == alias)
                .order_by(AliasEvent.id.desc())
            ).all()
            target = next(
                (
                    e.from_version
                    for e in history
                    if e.to_version == current.version
                    and e.from_version is not None
                    and e.from_version != current.version
                ),
                None,
            )
            if target is None:
                raise ModelNotFound(f"{name}@{alias} has no earlier version to roll back to; pass --to VERSION")
        row = _version_row(session, name, target)
        if row is None or row.status != "ready":
            raise ModelNotFound(f"{name}:{target} cannot be rolled back to: it does not exist or was deleted")
        return _move(store, session, name, alias, row.version, actor=actor, reason=f"rollback: {reason}")


def alias_history(store: Store, name: str, alias: str | None = None) -> list[AliasMove]:
    stmt = select(AliasEvent).where(AliasEvent.model_name == name).order_by(AliasEvent.id)
    if alias is not None:
        stmt = stmt.where(AliasEvent.alias == alias)
    with store.read() as session:
        return [
            AliasMove(e.model_name, e.alias, e.from_version, e.to_version, e.at, e.actor, e.reason)
            for e in session.scalars(stmt).all()
        ]


def alias_at(store: Store, name: str, alias: str, at: datetime) -> int | None:
    """The version ``alias`` pointed at, at moment ``at`` (None before its first promotion)."""
    with store.read() as session:
        event = session.scalars(
            select(AliasEvent)
            .where(AliasEvent.model_name == name, AliasEvent.alias == alias, AliasEvent.at <= at)
            .order_by(AliasEvent.at.desc(), AliasEvent.id.desc())
            .limit(1)
        ).first()
        return None if event is None else event.to_version


def list_aliases(store: Store, name: str) -> dict[str, int]:
    with store.read() as session:
        rows = session.scalars(select(Alias).where(Alias.model_name == name)).all()
        return {r.alias: r.version for r in rows}


def delete_version(store: Store, name: str, version: int, *, reason: str, actor: str | None = None) -> None:
    """Soft-delete: the version stays on record, marked deleted; refused while an alias points at it."""
    if not reason.strip():
        raise ConfigError("deleting a version needs --reason")
    with store.write() as session:
        _lock_model(session, name)
        row = _version_row(session, name, version)
        if row is None or row.status != "ready":
            raise ModelNotFound(f"{name}:{version} does not exist or was already deleted")
        holders = session.scalars(
            select(Alias.alias).where(Alias.model_name == name, Alias.version == row.version)
        ).all()
        if holders:
            raise ConfigError(f"{name}:{version} holds the alias(es) {', '.join(sorted(holders))}; move them first")
        row.status = "deleted"
        store._audit(session, "model.delete", f"{name}:{version}", reason=reason, actor=actor)
