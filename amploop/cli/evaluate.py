"""`amploop evaluate`."""

from __future__ import annotations

from typing import Annotated, Any

import typer
from rich.markup import escape

from amploop.cli._common import JsonFlag, app, command, err, out, print_json, state
from amploop.config import AmploopConfig
from amploop.errors import GateFailed
from amploop.registry import Store

# -- evaluate ----------------------------------------------------------------------------------


def run_evaluation(cfg: AmploopConfig, reference: str, *, data: str | None = None) -> Any:
    from amploop.registry.evaluations import evaluate_version

    e = cfg.evaluate
    with Store.open() as store:
        return evaluate_version(
            store,
            reference,
            data=data,
            slice_columns=cfg.data.slice_columns,
            gate=[r.model_dump() for r in e.gate] if e.gate is not None else None,
            min_slice_size=e.min_slice_size,
            bootstrap_samples=e.bootstrap_samples,
            confidence_level=e.confidence_level,
            parity_precisions=tuple(e.parity_precisions),
            robustness=e.robustness,
        )


@app.command("evaluate")
@command
def evaluate_command(
    model: Annotated[str, typer.Argument(help="NAME, NAME:VERSION or NAME@ALIAS.")],
    data: Annotated[str | None, typer.Option(help="Evaluate on this data instead of the version's test rows.")] = None,
    gate: Annotated[bool, typer.Option("--gate", help="Exit non-zero when the release gate fails.")] = False,
    as_json: JsonFlag = False,
) -> None:
    """Evaluate a model version: metrics, calibration, slices, robustness, parity, and the gate verdict."""
    outcome = run_evaluation(state.config(), model, data=data)
    if as_json:
        print_json(outcome.to_dict())
    else:
        render_evaluation(outcome)
    if gate and not outcome.report.passed:
        failed = [r["metric"] for r in outcome.report.verdict["rules"] if r["outcome"] == "fail"]
        err.print(f"[bold red]gate failed:[/] {', '.join(failed)}", highlight=False)
        raise typer.Exit(GateFailed.exit_code)


def render_evaluation(outcome: Any) -> None:
    report = outcome.report
    verdict = report.verdict
    colour = "green" if verdict["passed"] else "red"
    out.print(
        f"[bold]{escape(report.model['name'])}:{report.model['version']}[/] on {escape(report.dataset['name'])} "
        f"({report.dataset['rows']:,} rows): [bold {colour}]{verdict['verdict'].upper()}[/]",
        highlight=False,
        markup=True,
    )
    for rule in verdict["rules"]:
        out.print(f"  {rule['outcome']:>7}  {rule['reason']}", highlight=False)
    m = report.metrics
    if report.task == "classification":
        out.print(
            f"accuracy {m['accuracy']:.4f}, ROC AUC {m['roc_auc']:.4f}, log loss {m['log_loss']:.4f}", highlight=False
        )
        c = report.calibration
        out.print(
            f"ECE {c['ece_before']:.4f} before, {c['ece_after']:.4f} after temperature scaling "
            f"(T = {c['temperature']:.3f})",
            highlight=False,
        )
    worst = report.slices.get("worst")
    if worst:
        out.print(
            f"worst slice {worst['column']} = {worst['value']}: {worst['metric']:.4f} "
            f"({report.slices['worst_gap']:.4f} below overall)",
            highlight=False,
        )
    for found in report.slices.get("discovered", [])[:3]:
        out.print(
            f"found: {' and '.join(found['conditions'])} ({found['size']} rows) error rate "
            f"{found['error_rate']:.3f} vs {found['overall_error_rate']:.3f}",
            highlight=False,
        )
    out.print(f"report: {outcome.stored.html_uri}", highlight=False)
