"""The ``amploop`` command line: a thin layer that calls stage functions and renders results.

Every command takes ``--json`` and then prints exactly its result object as JSON on stdout.
Errors print one line on stderr (and, under ``--json``, the error object on stdout) and exit
with the error class's code (see :mod:`amploop.errors`).
"""

from __future__ import annotations

import functools
import json
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Any, TypeVar

import typer
from rich.console import Console
from rich.table import Table

from amploop import __version__
from amploop.config import AmploopConfig, load_config
from amploop.data import builtin_info, builtin_names, load_builtin, open_dataset
from amploop.data.dataset import DatasetSummary
from amploop.errors import AmploopError
from amploop.registry import Store, dataset_record

app = typer.Typer(
    name="amploop",
    help="Train, evaluate, register, serve, watch and retrain models on one path.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)
data_app = typer.Typer(help="Look at datasets: built-in names or files.", no_args_is_help=True)
store_app = typer.Typer(help="The metadata store and artifact storage.", no_args_is_help=True)
config_app = typer.Typer(help="The effective configuration.", no_args_is_help=True)
app.add_typer(data_app, name="data")
app.add_typer(store_app, name="store")
app.add_typer(config_app, name="config")

out = Console(soft_wrap=True)
err = Console(stderr=True, soft_wrap=True)

JsonFlag = Annotated[bool, typer.Option("--json", help="Print the result as JSON on stdout.")]
F = TypeVar("F", bound=Callable[..., Any])


@dataclass
class _State:
    config_path: Path | None = None

    def config(self, overrides: dict[str, Any] | None = None) -> AmploopConfig:
        return load_config(self.config_path, overrides=overrides)


_state = _State()


def _print_json(obj: Any) -> None:
    sys.stdout.write(json.dumps(obj, indent=2, default=str) + "\n")


def command(func: F) -> F:
    """Turn an AmploopError into one readable line and the error class's exit code."""

    @functools.wraps(func)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return func(*args, **kwargs)
        except AmploopError as exc:
            if kwargs.get("as_json"):
                _print_json(exc.to_dict())
            err.print(f"[bold red]error:[/] {exc.message}", highlight=False, markup=True)
            raise typer.Exit(exc.exit_code) from None

    return wrapper  # type: ignore[return-value]


def _version(value: bool) -> None:
    if value:
        out.print(f"amploop {__version__}", highlight=False)
        raise typer.Exit()


@app.callback()
def _main(
    config: Annotated[Path | None, typer.Option("--config", help="Path to amploop.yaml.")] = None,
    version: Annotated[
        bool, typer.Option("--version", callback=_version, is_eager=True, help="Print the version and exit.")
    ] = False,
) -> None:
    _state.config_path = config


# -- datasets ----------------------------------------------------------------------------------


@app.command("datasets")
@command
def datasets_command(as_json: JsonFlag = False) -> None:
    """List the built-in datasets."""
    rows = []
    for name in builtin_names():
        info, dataset = builtin_info(name), load_builtin(name)
        rows.append(
            {
                "name": name,
                "title": info.title,
                "rows": dataset.n_rows,
                "columns": dataset.n_columns,
                "target": dataset.target,
                "task": dataset.task,
                "splits": {k: len(v) for k, v in dataset.splits.items()},
                "licence": info.licence,
                "fingerprint": dataset.fingerprint,
            }
        )
    if as_json:
        _print_json({"datasets": rows})
        return
    table = Table(title="Built-in datasets")
    for column in ("name", "rows", "columns", "target", "task", "licence"):
        table.add_column(column, justify="right" if column in ("rows", "columns") else "left")
    for row in rows:
        table.add_row(
            row["name"], f"{row['rows']:,}", str(row["columns"]), row["target"], row["task"], row["licence"]
        )
    out.print(table)


@data_app.command("show")
@command
def data_show(
    ref: Annotated[str, typer.Argument(help="A built-in dataset name or a CSV/Parquet/NumPy file.")],
    target: Annotated[str | None, typer.Option(help="The label column of a file.")] = None,
    as_json: JsonFlag = False,
) -> None:
    """Describe a dataset: shape, schema, missing values, label balance and fingerprint."""
    summary = open_dataset(ref, target=target).summary()
    if as_json:
        _print_json(summary.to_dict())
        return
    _render_summary(summary)


def _render_summary(summary: DatasetSummary) -> None:
    splits = ", ".join(f"{k} {v:,}" for k, v in summary.splits.items())
    out.print(
        f"[bold]{summary.name}[/]  {summary.rows:,} rows × {summary.columns} columns"
        + (f"  (splits: {splits})" if splits else ""),
        highlight=False,
    )
    out.print(f"source {summary.source}   fingerprint {summary.fingerprint[:16]}…", highlight=False)
    if summary.target:
        balance = ", ".join(f"{k}: {v:,}" for k, v in summary.class_balance.items())
        out.print(
            f"target [bold]{summary.target}[/] ({summary.task})" + (f"  {balance}" if balance else ""),
            highlight=False,
        )
    table = Table(show_edge=False)
    for column in ("column", "kind", "missing", "distinct", "range / top values"):
        table.add_column(column)
    for c in summary.column_summaries:
        if c.kind == "numeric":
            detail = f"{c.minimum:g} … {c.maximum:g}, mean {c.mean:g}" if c.minimum is not None else ""
        elif c.kind == "image":
            detail = f"shape {c.shape}, values {c.minimum:g} … {c.maximum:g}"
        else:
            detail = ", ".join(f"{t[0]} ({t[1]:,})" for t in (c.top or [])[:3])
        table.add_row(
            c.name, c.kind, f"{c.missing:,}", "" if c.distinct is None else f"{c.distinct:,}", detail
        )
    out.print(table)


# -- store -------------------------------------------------------------------------------------


@store_app.command("info")
@command
def store_info(as_json: JsonFlag = False) -> None:
    """Where state lives, the schema revision, and how many rows each table holds."""
    with Store.open() as store:
        info = store.info()
    if as_json:
        _print_json(info.to_dict())
        return
    out.print(f"database   {info.db_url}  ({info.server})", highlight=False)
    out.print(f"artifacts  {info.artifacts_url}", highlight=False)
    out.print(f"schema     revision {info.schema_revision}", highlight=False)
    out.print("rows       " + ", ".join(f"{k} {v}" for k, v in info.counts.items()), highlight=False)


# -- config ------------------------------------------------------------------------------------


@config_app.command("show")
@command
def config_show(as_json: JsonFlag = False) -> None:
    """Print the configuration after file, environment and flags are merged and validated."""
    cfg = _state.config()
    if as_json:
        _print_json(cfg.to_dict())
        return
    import yaml

    out.print(yaml.safe_dump(cfg.to_dict(), sort_keys=False).rstrip(), highlight=False)


# -- demo --------------------------------------------------------------------------------------


@app.command("demo")
@command
def demo(as_json: JsonFlag = False) -> None:
    """Run every stage that exists on the built-in data, end to end."""
    started = time.perf_counter()
    cfg = _state.config()
    stages: list[dict[str, Any]] = []
    recorded = []
    with Store.open() as store:
        for name in builtin_names():
            dataset = load_builtin(name)
            info = builtin_info(name)
            sheet = {**info.datasheet, "licence": info.licence, "attribution": info.attribution}
            store.record_dataset(dataset_record(dataset, datasheet=sheet))
            recorded.append(dataset.summary())
            if not as_json:
                _render_summary(recorded[-1])
                out.print()
        stages.append(
            {
                "stage": "data",
                "datasets": [s.name for s in recorded],
                "recorded": [r.name for r in store.list_datasets()],
            }
        )
        info_store = store.info()
    result = {
        "project": cfg.project.name,
        "stages": stages,
        "datasets": [{"name": s.name, "rows": s.rows, "fingerprint": s.fingerprint} for s in recorded],
        "store": info_store.to_dict(),
        "seconds": round(time.perf_counter() - started, 2),
    }
    if as_json:
        _print_json(result)
        return
    out.print(
        f"[bold green]demo finished[/] in {result['seconds']} s: stages run: "
        f"{', '.join(s['stage'] for s in stages)}; state in {info_store.db_url}",
        highlight=False,
    )


def main() -> None:
    app()


if __name__ == "__main__":
    main()
