"""`amploop ci`: data check → train → evaluate → gate in one command, answered with an exit code."""

from __future__ import annotations

from typing import TYPE_CHECKING, Annotated

import typer
from rich.markup import escape

from amploop.cli._common import JsonFlag, app, command, err, out, print_json, state

if TYPE_CHECKING:
    from amploop.loop.ci import CiStage


@app.command("ci")
@command
def ci_command(
    dataset: Annotated[
        str | None, typer.Option(help="Built-in dataset name or data file (default: data.source).")
    ] = None,
    promote_to: Annotated[
        str | None,
        typer.Option(
            "--promote", metavar="ALIAS", help="Point this alias (e.g. champion) at the version if it passes."
        ),
    ] = None,
    allow_quality_issues: Annotated[
        bool, typer.Option("--allow-quality-issues", help="Train despite blocking data findings (needs --reason).")
    ] = False,
    reason: Annotated[str | None, typer.Option(help="Why; recorded in the audit log.")] = None,
    as_json: JsonFlag = False,
) -> None:
    """Check the data, train and register a version, evaluate it against its gate: exit 0 passed, 9 gate failed."""
    from amploop.loop.ci import run_ci

    result = run_ci(
        state.config(),
        dataset=dataset,
        promote_to=promote_to,
        allow_quality_issues=allow_quality_issues,
        reason=reason,
        progress=not as_json,
        on_stage=None if as_json else _print_stage,
    )
    if as_json:
        print_json(result.to_dict())
    if not result.passed:  # the result is the answer; one line on stderr says why the exit code is not 0
        err.print(
            f"[bold red]gate failed:[/] {result.reference}: {escape('; '.join(result.failed_rules))}",
            markup=True,
            highlight=False,
        )
    raise typer.Exit(result.exit_code)


def _print_stage(stage: CiStage) -> None:
    mark = "[ok]  " if stage.ok else "[FAIL]"
    out.print(f"{mark} {stage.stage:<8} {stage.seconds:6.1f} s  {stage.summary}", highlight=False)
