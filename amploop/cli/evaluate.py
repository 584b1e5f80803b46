"""`amploop evaluate`."""

from __future__ import annotations

from typing import TYPE_CHECKING, Annotated

import typer
from rich.markup import escape

from amploop.cli._common import JsonFlag, app, command, err, out, print_json, state
from amploop.errors import GateFailed

if TYPE_CHECKING:
    from amploop.evaluate.evaluation import EvaluationReport
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


def _with_interval(report: EvaluationReport, name: str) -> str:
    value = report.metrics.get(name)
    if not isinstance(value, float) or value != value:
        return "n/a"
    interval = report.intervals.get(name)
    return f"{value:.4f}" + (f" [{interval[0]:.4f}, {interval[1]:.4f}]" if interval else "")


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
    level = f"{100 * report.confidence_level:g}%"
    baselines = report.baselines
    if report.task == "classification":
        line = f"accuracy {_with_interval(report, 'accuracy')}"
        if baselines.skewed and baselines.class_shares:
            shares = ", ".join(f"{name} {100 * share:.0f}%" for name, share in baselines.class_shares.items())
            line += f", balanced accuracy {_with_interval(report, 'balanced_accuracy')} (skewed classes: {shares})"
        out.print(f"{line} ({level} intervals)", highlight=False)
        out.print(
            f"ROC AUC {_with_interval(report, 'roc_auc')}, log loss {_with_interval(report, 'log_loss')}",
            highlight=False,
        )
        c = report.calibration
        out.print(
            f"ECE {c.ece_before:.4f} before, {c.ece_after:.4f} after temperature scaling (T = {c.temperature:.3f})",
            highlight=False,
        )
        if c.decision is not None:
            out.print(f"temperature: {c.decision.reason}", highlight=False)
    else:
        out.print(
            f"RMSE {_with_interval(report, 'rmse')}, MAE {_with_interval(report, 'mae')}, "
            f"R² {_with_interval(report, 'r2')} ({level} intervals)",
            highlight=False,
        )
    trivial = ", ".join(f"{b.name.replace('_', ' ')} {b.metrics[baselines.metric]:.4f}" for b in baselines.baselines)
    margin = f"; margin {baselines.margin:.4f}" if baselines.margin is not None else f"; {baselines.note}"
    out.print(
        f"trivial baselines ({baselines.metric.replace('_', ' ')}, from the {baselines.source}): {trivial}{margin}",
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
    if report.holdout is not None:
        out.print(f"against its test result: {report.holdout.summary}", highlight=False)
    if report.shift is not None:
        out.print(f"shift: {report.shift.summary}", highlight=False)
        for column in report.shift.columns:
            if column.differs:
                out.print(
                    f"  {column.column}: {column.test} effect {column.effect:.3f}, p = {column.p_value:.2g}"
                    + (f"; {column.note}" if column.note else ""),
                    highlight=False,
                )
    out.print(f"report: {outcome.stored.html_uri}", highlight=False)
