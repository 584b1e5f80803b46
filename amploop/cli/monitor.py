"""`amploop monitor` (a served model's windows of traffic) and `amploop drift` (two files)."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

from amploop.cli._common import JsonFlag, app, command, err, out, print_json, state
from amploop.errors import GateFailed

if TYPE_CHECKING:
    from amploop.monitor.files import FileDriftReport
    from amploop.monitor.windows import MonitorResult


@app.command("monitor")
@command
def monitor_command(
    name: Annotated[str, typer.Argument(help="The model whose prediction log to watch.")],
    version: Annotated[int | None, typer.Option(min=1, help="The served version (default: the champion).")] = None,
    window: Annotated[
        int | None, typer.Option(min=1, help="Rows per window (default: monitor.window_size, 1000).")
    ] = None,
    every: Annotated[
        float | None, typer.Option("--every-s", min=0.001, help="Windows by time: seconds of arrivals each.")
    ] = None,
    html: Annotated[Path | None, typer.Option(help="Write the last window's report as an HTML page here.")] = None,
    as_json: JsonFlag = False,
) -> None:
    """Compare each new full window of NAME's prediction log with its training rows; store reports and alerts."""
    from amploop.monitor.alerts import wait_for_deliveries
    from amploop.monitor.windows import monitor_model

    config = state.config().monitor
    result = monitor_model(name, version=version, window=window, every_s=every, config=config)
    wait_for_deliveries(config.webhook_timeout_s * 3)
    if html is not None and result.windows:
        _write_html(html, result.windows[-1].to_dict())
    if as_json:
        print_json(result.to_dict())
    else:
        print_monitor(result)


@app.command("drift")
@command
def drift_command(
    reference: Annotated[Path, typer.Argument(help="The reference rows: .csv, .tsv or .parquet.")],
    current: Annotated[Path, typer.Argument(help="The rows to compare with them, with the same columns.")],
    target: Annotated[str | None, typer.Option(help="The label column: compared on its own (target drift).")] = None,
    method: Annotated[
        str, typer.Option(help="auto, ks, chi_square, psi, wasserstein or jensen_shannon, for every column.")
    ] = "auto",
    correction: Annotated[str, typer.Option(help="bh, bonferroni or none, over the tested columns.")] = "bh",
    alpha: Annotated[float, typer.Option(min=1e-9, max=0.5, help="Significance level of the tests.")] = 0.05,
    html: Annotated[Path | None, typer.Option(help="Write an HTML report with a chart per column here.")] = None,
    fail_on_drift: Annotated[
        bool, typer.Option("--fail-on-drift", help="Exit with code 9 (a gate said no) when the data drifted.")
    ] = False,
    as_json: JsonFlag = False,
) -> None:
    """Do the rows of CURRENT look like those of REFERENCE? A test or distance per column."""
    from amploop.monitor.files import drift_files

    report = drift_files(reference, current, target=target, method=method, correction=correction, alpha=alpha)
    if html is not None:
        _write_html(html, report.to_dict())
    if as_json:
        print_json(report.to_dict())
    else:
        _print_file_drift(report)
        if html is not None:
            out.print(f"report: {html}", highlight=False)
    if fail_on_drift and report.drifted:
        err.print(f"[bold red]drift:[/] {report.summary}", markup=True, highlight=False)
        raise typer.Exit(GateFailed.exit_code)


def _write_html(path: Path, report: dict) -> None:
    from amploop.monitor.report import render_drift_html
    from amploop.registry.artifacts import write_file_atomically

    write_file_atomically(path, render_drift_html(report).encode("utf-8"))


def _print_file_drift(report: FileDriftReport) -> None:
    from rich.table import Table

    table = Table(title=report.summary, title_justify="left")
    for header in ("column", "kind", "method", "statistic", "p-value", "drifted", "what moved"):
        table.add_column(header)
    rows = list(report.features.columns) + ([report.target_drift] if report.target_drift else [])
    for c in rows:
        p = "" if c.adjusted_p_value is None else f"{c.adjusted_p_value:.3g}"
        table.add_row(c.column, c.kind, c.method, f"{c.statistic:.4f}", p, "yes" if c.drifted else "no", c.note)
    out.print(table)


def print_monitor(result: MonitorResult, *, alerts: bool = True, row_offset: int = 0) -> None:
    """One line per window; each alert's message under it (``alerts``), else a shorter line with the alerts' kinds.

    Rows count from the version's first logged row, plus ``row_offset``.
    """
    if not result.windows:
        out.print(f"{result.model}: no full window yet ({result.pending_rows} rows waiting)", highlight=False)
        return
    for w in result.windows:
        est, real, features = w.estimated, w.realized, w.features
        first, last = w.window["first_row"] + row_offset, w.window["last_row"] + row_offset
        drifted = f"{len(features['drifted'])} of {len(features['columns'])} inputs drifted"
        words = [f"rows {first:,}–{last:,}", features["summary"] if alerts else drifted]
        if est:
            words.append(f"accuracy estimated {est['accuracy']:.3f}")
        if real:
            words.append(f"measured {real['accuracy']:.3f} on {real['n']} labels")
        flag = "ALERT" if w.alerts else "ok"
        if w.alerts and not alerts:
            words.append(", ".join(sorted({a["kind"] for a in w.alerts})))
        out.print(f"[{flag}] " + "; ".join(words), highlight=False)
        for alert in w.alerts if alerts else []:
            out.print(f"    {alert['severity']}: {alert['message']}", highlight=False)
    if result.pending_rows:
        out.print(f"{result.pending_rows} rows wait for the next window", highlight=False)
