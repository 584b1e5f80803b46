"""`amploop models …` and `amploop audit`."""

from __future__ import annotations

import sys
from typing import Annotated, Any

import typer
from rich.table import Table
from rich.text import Text

from amploop.cli._common import JsonFlag, app, command, models_app, out, print_json, state
from amploop.errors import UsageError
from amploop.names import MAX_VERSION, ModelRef, check_name, parse_model_ref
from amploop.registry import Store

# -- models and audit ----------------------------------------------------------------------------

REF_HELP = "NAME (its newest version), NAME:VERSION or NAME@ALIAS."


def show(result: Any, as_json: bool, text: str | None = None) -> None:
    """The result as JSON under --json; else ``text``, or the result pretty-printed when there is none."""
    if as_json:
        print_json(result)
    elif text is None:
        out.print_json(data=result)
    else:
        out.print(text, highlight=False)


def show_move(move: Any, as_json: bool) -> None:
    show(move.to_dict(), as_json, f"{move.name}@{move.alias}: {move.from_version} -> {move.to_version} ({move.reason})")


def version_ref(text: str) -> tuple[str, int]:
    """``NAME:VERSION`` exactly: for the commands that change a version (promote, delete)."""
    ref = parse_model_ref(text)
    if ref.version is None:
        raise UsageError(f"'{ref}': name a version, as NAME:VERSION")
    return ref.name, ref.version


def resolve_ref(store: Store, ref: ModelRef) -> tuple[str, int]:
    """The version ``ref`` names: ``NAME`` is its newest ready version, as for `amploop evaluate NAME`."""
    from amploop.registry.evaluations import resolve_version

    record = resolve_version(store, ref)
    return record.name, record.version


def iso_time(flag: str, text: str) -> Any:
    """``text`` as an aware datetime, or a UsageError naming ``flag``."""
    from datetime import datetime

    try:
        moment = datetime.fromisoformat(text)
    except ValueError:
        raise UsageError(f"{flag} {text!r} is not an ISO time such as 2026-11-26T14:00:00+00:00") from None
    if moment.tzinfo is None:
        raise UsageError(f"{flag} needs a time zone, e.g. 2026-11-26T14:00:00+00:00")
    return moment


@models_app.command("list")
@command
def models_list(as_json: JsonFlag = False) -> None:
    """Every registered model: each ready version's test metric, its latest gate verdict and its aliases."""
    from amploop.registry.overview import models_overview

    with Store.open() as store:
        rows = models_overview(store)
    if as_json:
        print_json({"models": rows})
        return
    table = Table(title="Registered models")
    for column in ("name", "version", "test metric", "gate", "aliases"):
        table.add_column(column)
    gate_styles = {"pass": "green", "fail": "red"}
    for row in rows:
        if not row["ready_versions"]:
            table.add_row(row["name"], "-", "-", "-", "(no ready version)", end_section=True)
        for i, summary in enumerate(row["ready_versions"]):
            metric = "-"
            if summary["metric"] is not None:
                metric = f"{summary['metric'].removeprefix('test_')} {summary['value']:.4f}"
            gate = summary["gate"] or "\N{EM DASH}"
            table.add_row(
                row["name"] if i == 0 else "",
                str(summary["version"]),
                metric,
                Text(gate, style=gate_styles.get(gate, "dim")),
                ", ".join(summary["aliases"]),
                end_section=i == len(row["ready_versions"]) - 1,
            )
    out.print(table)


@models_app.command("show")
@command
def models_show(
    model: Annotated[str, typer.Argument(help="NAME (all its versions), NAME:VERSION or NAME@ALIAS.")],
    as_json: JsonFlag = False,
) -> None:
    """A model's versions, or one version with its metrics, files and evaluations."""
    from amploop.registry.overview import model_overview, version_overview

    ref = parse_model_ref(model)
    with Store.open() as store:
        whole = ref.version is None and ref.alias is None
        result = model_overview(store, ref.name) if whole else version_overview(store, ref)
    show(result, as_json)


@models_app.command("promote")
@command
def models_promote(
    model: Annotated[str, typer.Argument(help="NAME:VERSION")],
    reason: Annotated[str, typer.Option(help="Why; kept in the alias history and the audit log.")],
    alias: Annotated[str, typer.Option(help="champion, challenger, or your own.")] = "champion",
    force: Annotated[
        bool,
        typer.Option(
            "--force", help="Promote although the version failed its gate, was never evaluated, or its files changed."
        ),
    ] = False,
    as_json: JsonFlag = False,
) -> None:
    """Point an alias at an evaluated version whose gate passed (anything else needs --force and --reason)."""
    from amploop.registry.aliases import promote

    name, version = version_ref(model)
    with Store.open() as store:
        move = promote(store, name, version, alias=alias, reason=reason, force=force)
    show_move(move, as_json)


@models_app.command("rollback")
@command
def models_rollback(
    name: Annotated[str, typer.Argument(help="Model name.")],
    reason: Annotated[str, typer.Option(help="Why; kept in the alias history and the audit log.")],
    to: Annotated[int | None, typer.Option(help="Version to go back to (default: the previous one).")] = None,
    alias: Annotated[str, typer.Option()] = "champion",
    as_json: JsonFlag = False,
) -> None:
    """Move an alias back to the version it held before (or to --to)."""
    from amploop.registry.aliases import rollback

    check_name(name)
    if to is not None and not 1 <= to <= MAX_VERSION:
        raise UsageError(f"--to {to}: a version is a whole number from 1 to {MAX_VERSION}")
    with Store.open() as store:
        move = rollback(store, name, alias=alias, to=to, reason=reason)
    show_move(move, as_json)


@models_app.command("history")
@command
def models_history(
    name: Annotated[str, typer.Argument(help="Model name.")],
    alias: Annotated[str | None, typer.Option(help="Only this alias.")] = None,
    at: Annotated[str | None, typer.Option(help="ISO time: which version held --alias then.")] = None,
    as_json: JsonFlag = False,
) -> None:
    """Every alias move, with time, actor and reason; or, with --at, the version held at that moment."""
    from amploop.registry.aliases import alias_at, alias_history

    check_name(name)
    moment = None if at is None else iso_time("--at", at)
    with Store.open() as store:
        store.get_model_version(name)
        if moment is not None:
            version = alias_at(store, name, alias or "champion", moment)
            result: Any = {"name": name, "alias": alias or "champion", "at": moment.isoformat(), "version": version}
            show(result, as_json, f"{name}@{alias or 'champion'} at {at}: {version}")
            return
        moves = [m.to_dict() for m in alias_history(store, name, alias)]
    if as_json:
        print_json({"name": name, "moves": moves})
        return
    for m in moves:
        out.print(
            f"{m['at']}  {m['alias']}: {m['from_version']} -> {m['to_version']}  {m['actor']}: {m['reason']}",
            highlight=False,
        )


@models_app.command("delete")
@command
def models_delete(
    model: Annotated[str, typer.Argument(help="NAME:VERSION")],
    reason: Annotated[str, typer.Option(help="Why; kept in the audit log.")],
    as_json: JsonFlag = False,
) -> None:
    """Soft-delete a version (refused while an alias points at it)."""
    from amploop.registry.aliases import delete_version

    name, version = version_ref(model)
    with Store.open() as store:
        delete_version(store, name, version, reason=reason)
    result = {"name": name, "version": version, "status": "deleted"}
    show(result, as_json, f"{name}:{version} deleted")


@models_app.command("lineage")
@command
def models_lineage(model: Annotated[str, typer.Argument(help=REF_HELP)], as_json: JsonFlag = False) -> None:
    """Everything that made a version: run, config, code, data fingerprints, evaluations, alias moves."""
    from amploop.registry.lineage import lineage

    ref = parse_model_ref(model)
    with Store.open() as store:
        facts = lineage(store, *resolve_ref(store, ref))
    show(facts, as_json)


@models_app.command("card")
@command
def models_card(
    model: Annotated[str, typer.Argument(help=REF_HELP)],
    fmt: Annotated[str, typer.Option("--format", help="markdown or html.")] = "markdown",
    as_json: JsonFlag = False,
) -> None:
    """The version's model card, from stored results and project.card in amploop.yaml; kept in the artifacts."""
    from amploop.registry.cards import write_model_card

    ref = parse_model_ref(model)
    config = state.config()
    with Store.open() as store:
        name, version = resolve_ref(store, ref)
        card = write_model_card(store, name, version, config=config, fmt=fmt)
    if as_json:
        print_json(card.to_dict())
    elif fmt == "markdown":
        sys.stdout.write(card.text)
    else:
        out.print(f"model card: {card.uri}", highlight=False)


@models_app.command("export")
@command
def models_export(
    model: Annotated[str, typer.Argument(help=REF_HELP)],
    fmt: Annotated[str, typer.Option("--format", help="onnx (checked against torch) or mlflow.")] = "onnx",
    tolerance: Annotated[float, typer.Option(help="Largest allowed probability difference from torch.")] = 1e-4,
    as_json: JsonFlag = False,
) -> None:
    """Export a version (ONNX: verified against torch on seeded inputs before it is kept)."""
    from amploop.registry.export import export_version

    ref = parse_model_ref(model)
    with Store.open() as store:
        result = export_version(store, *resolve_ref(store, ref), fmt=fmt, tolerance=tolerance)
    text = f"{result.uri} (max difference from torch {result.max_abs_difference:.1e} <= {result.tolerance:g})"
    show(result.to_dict(), as_json, text)


@app.command("audit")
@command
def audit_command(
    since: Annotated[str | None, typer.Option(help="ISO time, e.g. 2026-11-26T00:00:00+00:00.")] = None,
    limit: Annotated[int | None, typer.Option(help="Only the newest this many entries (listed oldest first).")] = None,
    as_json: JsonFlag = False,
) -> None:
    """The append-only audit log, oldest first: who did what, when and why."""
    moment = None if since is None else iso_time("--since", since)
    if limit is not None and limit < 1:
        raise UsageError(f"--limit {limit}: show at least 1 entry (the newest N are shown)")
    with Store.open() as store:
        entries = [e.to_dict() for e in store.audit_log(since=moment, limit=limit)]
    if as_json:
        print_json({"entries": entries})
        return
    for e in entries:
        why = f" — {e['reason']}" if e["reason"] else ""
        out.print(f"{e['at']}  {e['actor']}  {e['action']}  {e['target']}{why}", highlight=False)
