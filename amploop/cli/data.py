"""`amploop datasets` and `amploop data show|check|datasheet`."""

from __future__ import annotations

import os
import sys
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.markup import escape
from rich.table import Table

from amploop.cli._common import JsonFlag, app, command, data_app, err, out, print_json, state
from amploop.data import builtin_info, builtin_names, load_builtin, open_dataset
from amploop.data.dataset import Dataset, DatasetSummary
from amploop.data.quality import QualityReport, check_quality
from amploop.errors import ConfigError, QualityError
from amploop.registry import Store, dataset_record
from amploop.registry.artifacts import write_file_atomically

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
        print_json({"datasets": rows})
        return
    table = Table(title="Built-in datasets")
    for column in ("name", "rows", "columns", "target", "task", "licence"):
        table.add_column(column, justify="right" if column in ("rows", "columns") else "left")
    for row in rows:
        table.add_row(row["name"], f"{row['rows']:,}", str(row["columns"]), row["target"], row["task"], row["licence"])
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
        print_json(summary.to_dict())
        return
    render_summary(summary)


@data_app.command("check")
@command
def data_check(
    ref: Annotated[str, typer.Argument(help="A built-in dataset name or a data file.")],
    target: Annotated[str | None, typer.Option(help="The label column of a file.")] = None,
    against: Annotated[str | None, typer.Option(help="The training data, to check for leakage into it.")] = None,
    label_issues: Annotated[bool, typer.Option(help="Run confident learning for label issues.")] = True,
    as_json: JsonFlag = False,
) -> None:
    """Check data quality; exit non-zero when a finding blocks training."""
    cfg = state.config()
    dataset = open_dataset(ref, target=target)
    reference = _open_reference(against, target or dataset.target) if against else None
    slice_columns = cfg.data.slice_columns or (
        builtin_info(dataset.name).slice_columns if dataset.name in builtin_names() else []
    )
    report = check_quality(
        dataset, against=reference, slice_columns=slice_columns, label_issues=label_issues, progress=not as_json
    )
    if as_json:
        print_json(report.to_dict())
    else:
        render_quality(report)
    if report.blocking:  # the report is the answer; one line on stderr says why the exit code is not 0
        count = len(report.blocking)
        err.print(
            f"[bold red]error:[/] {count} blocking finding{'s' if count > 1 else ''}: training on this data is "
            'refused; fix it, or train with --allow-quality-issues --reason "..."',
            markup=True,
            highlight=False,
        )
        raise typer.Exit(QualityError.exit_code)


def _open_reference(ref: str, target: str | None) -> Dataset:
    """The ``--against`` data, with the same target when it has that column (leakage needs only features)."""
    reference = open_dataset(ref)
    if target is None or target == reference.target or target not in reference.table.columns:
        return reference  # a missing target column is left to check_quality's column comparison
    return Dataset.from_table(
        reference.name,
        reference.table,
        target=target,
        arrays=reference.arrays,
        source=reference.source,
        splits=reference.splits,
    )


def _check_output_path(output: Path) -> None:
    """Refuse an --output that cannot be written before any work is done, so nothing is half-written."""
    folder = output.parent
    if output.is_dir():
        raise ConfigError(f"--output {output}: is a folder; give a file name, e.g. {output / 'datasheet.md'}")
    if not folder.is_dir():
        raise ConfigError(
            f"--output {output}: the folder {folder} does not exist; create it or choose another path",
            folder=str(folder),
        )
    if not os.access(folder, os.W_OK):
        raise ConfigError(f"--output {output}: the folder {folder} is not writable; choose another path")


@data_app.command("datasheet")
@command
def data_datasheet(
    ref: Annotated[str, typer.Argument(help="A built-in dataset name or a data file.")],
    target: Annotated[str | None, typer.Option(help="The label column of a file.")] = None,
    fmt: Annotated[str, typer.Option("--format", help="markdown or html.")] = "markdown",
    output: Annotated[Path | None, typer.Option(help="Write here instead of stdout.")] = None,
    as_json: JsonFlag = False,
) -> None:
    """Render a dataset's datasheet from stored facts and the datasheet text in amploop.yaml."""
    from amploop.registry.cards import render_datasheet

    if fmt not in ("markdown", "html"):
        raise ConfigError(f"--format {fmt!r}: use markdown or html")
    if output is not None:
        _check_output_path(output)
    cfg = state.config()
    dataset = open_dataset(ref, target=target)
    sections: dict[str, Any] = {}
    if dataset.name in builtin_names():
        info = builtin_info(dataset.name)
        sections.update(info.datasheet, licence=info.licence, attribution=info.attribution, citation=info.citation)
    sections.update({k: v for k, v in cfg.data.datasheet.items() if v})
    quality = check_quality(dataset, label_issues=False)
    with Store.open() as store:
        record = store.record_dataset(dataset_record(dataset, datasheet=sections))
    text = render_datasheet(record, sections=sections, quality=quality.to_dict(), fmt=fmt)
    if output is not None:
        try:  # a temporary file beside it, then a rename: readers see the old file or the new one
            write_file_atomically(output, text.encode())
        except OSError as exc:
            raise ConfigError(f"--output {output}: cannot write ({exc.strerror or exc}); choose another path") from None
    if as_json:
        print_json(
            {
                "dataset": record.to_dict(),
                "format": fmt,
                "output": str(output) if output else None,
                "text": None if output else text,
            }
        )
    elif output is None:
        sys.stdout.write(text)
    else:
        out.print(f"datasheet written to {output}", highlight=False)


def render_quality(report: QualityReport, *, limit: int = 20, rows_shown: int = 10) -> None:
    counts = report.counts()
    out.print(
        f"{report.dataset['name']}: {report.dataset['rows']:,} rows, {counts['block']} blocking, "
        f"{counts['warn']} warnings, {counts['info']} notes ({report.seconds:.1f} s)",
        highlight=False,
    )
    for finding in report.findings[:limit]:
        out.print(f"  {finding.severity:>5}  {finding.check}: {finding.message}", highlight=False)
    if len(report.findings) > limit:
        out.print(f"  … and {len(report.findings) - limit} more findings; --json lists them all", highlight=False)
    for line in skipped_lines(report.skipped_checks):
        out.print(f"  {line}", highlight=False)
    if report.suspicious_rows:
        shown = report.suspicious_rows[:rows_shown]
        table = Table(
            title=f"Suspicious rows, most suspicious first ({len(shown)} of {len(report.suspicious_rows):,})",
            show_edge=False,
        )
        table.add_column("row (0-based)", justify="right")
        table.add_column("score", justify="right")
        table.add_column("why")
        for row in shown:
            table.add_row(str(row.row), f"{row.score:.2f}", ", ".join(row.reasons))
        out.print(table)
        out.print(
            f"  {len(report.label_issue_rows):,} rows with a label issue, {len(report.outlier_rows):,} with an "
            "outlier; row numbers count from 0, the first data row of a file being row 0",
            highlight=False,
        )


def skipped_lines(skipped: dict[str, str]) -> list[str]:
    """One line per reason: "no target column: skipped label issues, target leakage, class imbalance; …"."""
    by_reason: dict[str, list[str]] = {}
    for check, reason in skipped.items():
        by_reason.setdefault(reason, []).append(check.replace("_", " "))
    lines = []
    for reason, checks in by_reason.items():
        head, _, advice = reason.partition("; ")
        lines.append(f"{head}: skipped {', '.join(checks)}" + (f"; {advice}" if advice else ""))
    return lines


def render_summary(summary: DatasetSummary) -> None:
    splits = ", ".join(f"{k} {v:,}" for k, v in summary.splits.items())
    out.print(
        f"[bold]{escape(summary.name)}[/]  {summary.rows:,} rows × {summary.columns} columns"
        + (f"  (splits: {splits})" if splits else ""),
        highlight=False,
        markup=True,
    )
    out.print(f"source {summary.source}   fingerprint {summary.fingerprint[:16]}…", highlight=False)
    if summary.unlabelled_rows_dropped:
        out.print(
            f"{summary.unlabelled_rows_dropped:,} rows without a label ({summary.target} missing) were dropped",
            highlight=False,
        )
    if summary.target:
        balance = ", ".join(f"{k}: {v:,}" for k, v in summary.class_balance.items())
        out.print(
            f"target [bold]{escape(summary.target)}[/] ({summary.task})" + (f"  {balance}" if balance else ""),
            highlight=False,
            markup=True,
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
        table.add_row(c.name, c.kind, f"{c.missing:,}", "" if c.distinct is None else f"{c.distinct:,}", detail)
    out.print(table)
