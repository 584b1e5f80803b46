"""`amploop evaluate`."""

from __future__ import annotations

from typing import TYPE_CHECKING, Annotated

import typer
from rich.markup import escape

from amploop.cli._common import JsonFlag, app, command, err, out, print_json, state
from amploop.errors import GateFailed

if TYPE_CHECKING:
    from amploop.registry.evaluations import EvaluationOutcome

# -- evaluate ----------------------------------------------------------------------------------


@app.command("evaluate")
@command
def evaluate_command(
    model: Annotated[str, typer.Argument(help="NAME, NAME:VERSION or NAME@ALIAS.")],
    data: Annotated[str | None, typer.Option(help="Evaluate on this data instead of the version's test rows.")] = None,
    gate: Annotated[bool, typer.Option("--gate", help="Exit non-zero when the release gate fails.")] = False,
    as_json: JsonFlag = False,
) -> None:
    """Evaluate a model version: metrics, calibration, slices, robustness, parity, and the gate verdict."""
    from amploop.registry.evaluations import evaluate_version

    outcome = evaluate_version(model, state.config(), data=data)
    if as_json:
        print_json(outcome.to_dict())
    else:
        render_evaluation(outcome)
    if gate and not outcome.report.passed:
        failed = [r.metric for r in outcome.report.failed_rules()]
        err.print(f"[bold red]gate failed:[/] {', '.join(failed)}", highlight=False)
        raise typer.Exit(GateFailed.exit_code)


def render_evaluation(outcome: EvaluationOutcome) -> None:
    report = outcome.report
    verdict = report.verdict
    colour = "green" if verdict.passed else "red"
    out.print(
        f"[bold]{escape(report.model['name'])}:{report.model['version']}[/] on {escape(report.dataset['name'])} "
        f"({report.dataset['rows']:,} rows): [bold {colour}]{verdict.verdict.upper()}[/]",
        highlight=False,
        markup=True,
    )
    for rule in verdict.rules:
        out.print(f"  {rule.outcome:>7}  {rule.reason}", highlight=False)
    m = report.metrics
    if report.task == "classification":
        out.print(
            f"accuracy {m['accuracy']:.4f}, ROC AUC {m['roc_auc']:.4f}, log loss {m['log_loss']:.4f}", highlight=False
        )
        c = report.calibration
        out.print(
            f"ECE {c.ece_before:.4f} before, {c.ece_after:.4f} after temperature scaling (T = {c.temperature:.3f})",
            highlight=False,
        )
    worst = report.slices.worst
    if worst is not None:
        out.print(
            f"worst slice {worst.column} = {worst.value}: {worst.metric:.4f} "
            f"({report.slices.worst_gap:.4f} below overall)",
            highlight=False,
        )
    for found in report.slices.discovered[:3]:
        out.print(
            f"found: {' and '.join(found.conditions)} ({found.size} rows) error rate "
            f"{found.error_rate:.3f} vs {found.overall_error_rate:.3f}",
            highlight=False,
        )
    out.print(f"report: {outcome.stored.html_uri}", highlight=False)
