"""Shared parts of the command line: the typer apps, the consoles, ``--json``, and error handling."""

from __future__ import annotations

import functools
import json
import os
import sys
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Any, TypeVar

import typer
from rich.console import Console
from rich.markup import escape

from amploop import __version__
from amploop.config import AmploopConfig, load_config
from amploop.errors import AmploopError

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
bench_app = typer.Typer(help="Measure trade-offs side by side.", no_args_is_help=True)
models_app = typer.Typer(help="Registered models: versions, aliases and their history.", no_args_is_help=True)
app.add_typer(models_app, name="models")
app.add_typer(bench_app, name="bench")

out = Console(soft_wrap=True, markup=False)  # data is printed as is; markup=True where styled
err = Console(stderr=True, soft_wrap=True)

JsonFlag = Annotated[bool, typer.Option("--json", help="Print the result as JSON on stdout.")]
F = TypeVar("F", bound=Callable[..., Any])


@dataclass
class _State:
    config_path: Path | None = None

    def config(self, overrides: dict[str, Any] | None = None) -> AmploopConfig:
        return load_config(self.config_path, overrides=overrides)


state = _State()


def print_json(obj: Any) -> None:
    sys.stdout.write(json.dumps(obj, indent=2, default=str) + "\n")


def command(func: F) -> F:
    """Turn an AmploopError into one readable line and the error class's exit code."""

    @functools.wraps(func)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return func(*args, **kwargs)
        except AmploopError as exc:
            if kwargs.get("as_json"):
                print_json(exc.to_dict())
            err.print(f"[bold red]error:[/] {escape(exc.message)}", highlight=False, markup=True)
            raise typer.Exit(exc.exit_code) from None

    return wrapper  # type: ignore[return-value]


def _version(value: bool) -> None:
    if value:
        out.print(f"amploop {__version__}", highlight=False)
        raise typer.Exit()


@app.callback()
def _main(  # the global options: --config, --version
    config: Annotated[Path | None, typer.Option("--config", help="Path to amploop.yaml.")] = None,
    version: Annotated[
        bool, typer.Option("--version", callback=_version, is_eager=True, help="Print the version and exit.")
    ] = False,
) -> None:
    state.config_path = config


def write_atomically(path: Path, data: bytes) -> None:
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_bytes(data)
    os.replace(tmp, path)
