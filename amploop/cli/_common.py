"""Shared parts of the command line: the typer apps, the consoles, ``--json``, and error handling."""

from __future__ import annotations

import functools
import json
import os
import sys
import traceback
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Any, TypeVar

import typer
import typer.core
from rich.console import Console
from rich.markup import escape
from typer.exceptions import Abort, TyperException

from amploop import __version__
from amploop.config import AmploopConfig, load_config
from amploop.errors import AmploopError, UsageError

DEBUG_ENV = "AMPLOOP_DEBUG"  # set to 1 to see the traceback of an internal error


class AmploopGroup(typer.core.TyperGroup):
    """The root command: every way out of it is one line on stderr and a known exit code.

    Click prints usage errors as several lines and lets unexpected exceptions escape as
    tracebacks; here both become one ``error:`` line (and, under ``--json``, one JSON object on
    stdout): usage errors exit 2, unexpected errors are reported as an internal error (exit 1)
    with a pointer to report them.
    """

    def main(  # type: ignore[override]
        self,
        args: Sequence[str] | None = None,
        prog_name: str | None = None,
        complete_var: str | None = None,
        standalone_mode: bool = True,
        **extra: Any,
    ) -> Any:
        argv = list(sys.argv[1:] if args is None else args)
        as_json = "--json" in argv
        try:
            result = super().main(argv, prog_name, complete_var, standalone_mode=False, **extra)
            code = result if isinstance(result, int) else 0
        except TyperException as exc:  # the parser's: bad option, missing argument, value of the wrong type
            ctx = getattr(exc, "ctx", None)
            if type(exc).__name__ == "NoArgsIsHelpError" and not as_json:
                code = 2  # a bare group: the parser has printed its help, which is the answer
            else:
                command = " ".join(ctx.command_path.split()[1:]) if ctx is not None else ""
                hint = f"see `amploop {command} --help`" if command else "see `amploop --help`"
                message = exc.format_message().strip().rstrip(".") or "a command is missing"
                code = report_error(UsageError(f"{message}; {hint}"), as_json)
        except Abort:
            err.print("error: interrupted", highlight=False)
            code = 130
        except AmploopError as exc:  # raised outside a command (the global options)
            code = report_error(exc, as_json)
        except Exception as exc:  # a bug: say so in one line, keep the traceback for AMPLOOP_DEBUG=1
            code = report_internal_error(exc, as_json)
        if standalone_mode:
            sys.exit(code)
        return code


app = typer.Typer(
    cls=AmploopGroup,
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


def speaks() -> bool:
    """Whether this process may print: always, except ranks other than 0 under torchrun."""
    return os.environ.get("RANK", "0") == "0" or "LOCAL_RANK" not in os.environ


def report_error(exc: AmploopError, as_json: bool) -> int:
    """One line on stderr (and the error object on stdout under --json); the error's exit code."""
    return report_error_object(exc.to_dict(), exc.exit_code, as_json)


def report_internal_error(exc: BaseException, as_json: bool) -> int:
    """An exception amploop did not expect: a bug. One line, a pointer to report it, exit 1."""
    detail = " ".join(f"{type(exc).__name__}: {exc}".split())[:300]
    message = (
        f"internal error ({detail}); this is a bug in amploop {__version__}: please report it to the amploop "
        f"issue tracker with the command you ran and the traceback that {DEBUG_ENV}=1 prints"
    )
    if os.environ.get(DEBUG_ENV) and speaks():
        traceback.print_exception(exc, file=sys.stderr)
    error = {"error": "InternalError", "message": message, "details": {"exception": type(exc).__name__}}
    return report_error_object(error, 1, as_json)


def report_error_object(error: dict[str, Any], exit_code: int, as_json: bool) -> int:
    """Print an error object (``AmploopError.to_dict()`` form) the one way errors are printed.

    A torchrun worker started by ``amploop train --nproc-per-node`` hands it to the launcher,
    which prints it once for the whole job; under a torchrun the user started, rank 0 prints.
    """
    if os.environ.get("AMPLOOP_ERROR_DIR"):  # a worker of amploop's own launcher (torch is loaded already)
        from amploop.train.distributed import record_worker_error

        if record_worker_error(error, exit_code):
            return exit_code
    if not speaks():
        return exit_code
    if as_json:
        print_json(error)
    message = " ".join(str(error.get("message", "")).split())  # one line, whatever the message holds
    err.print(f"[bold red]error:[/] {escape(message)}", highlight=False, markup=True)
    return exit_code


def command(func: F) -> F:
    """Turn an AmploopError into one readable line and the error class's exit code."""

    @functools.wraps(func)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        as_json = bool(kwargs.get("as_json"))
        try:
            return func(*args, **kwargs)
        except AmploopError as exc:
            raise typer.Exit(report_error(exc, as_json)) from None
        except (typer.Exit, TyperException, Abort, KeyboardInterrupt):
            raise
        except Exception as exc:
            raise typer.Exit(report_internal_error(exc, as_json)) from None

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
