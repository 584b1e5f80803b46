"""`amploop predict`: score a CSV or Parquet file in bounded-memory chunks."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from typing import TYPE_CHECKING, Annotated

import typer

from amploop.cli._common import JsonFlag, app, command, err, out, print_json, state

if TYPE_CHECKING:
    from amploop.serve.predict import PredictFileResult
    from amploop.serve.predict import Progress as ProgressCallback


@app.command("predict")
@command
def predict_command(
    model: Annotated[str, typer.Argument(help="NAME, NAME:VERSION or NAME@ALIAS.")],
    file: Annotated[str, typer.Argument(help="The rows to score: .csv, .csv.gz, .tsv, .parquet or .pq.")],
    output: Annotated[str, typer.Option("--output", "-o", help="Where the scores go: .csv or .parquet.")],
    precision: Annotated[
        str | None, typer.Option(help="fp32, bf16, fp16, int8 or auto (default: serve.precision, fp32).")
    ] = None,
    runtime: Annotated[str | None, typer.Option(help="torch or onnx (default: serve.runtime, torch).")] = None,
    chunk_rows: Annotated[
        int, typer.Option(min=1, help="Rows read and scored at a time; bounds the memory used.")
    ] = 50_000,
    keep: Annotated[
        list[str] | None, typer.Option("--keep", help="An input column to copy into the output (repeatable).")
    ] = None,
    as_json: JsonFlag = False,
) -> None:
    """Score every row of FILE with a model version and write the scores, in input order, to --output."""
    from amploop.serve.predict import predict_file

    serve = state.config().serve
    with _progress_bar(enabled=not as_json and err.is_terminal) as progress:
        result = predict_file(
            model,
            file,
            output,
            precision=precision or serve.precision,
            runtime=runtime or serve.runtime,
            chunk_rows=chunk_rows,
            keep_columns=keep or [],
            progress=progress,
        )
    if as_json:
        print_json(result.to_dict())
    else:
        out.print(_summary(result), highlight=False)


def _summary(result: PredictFileResult) -> str:
    return (
        f"scored {result.rows:,} rows with {result.model_version} ({result.precision}, {result.runtime}) in "
        f"{result.seconds:.1f} s, {result.rows_per_second:,.0f} rows/s: {result.output}"
    )


@contextlib.contextmanager
def _progress_bar(*, enabled: bool) -> Iterator[ProgressCallback | None]:
    """A rich bar on stderr that vanishes when done; rows of total for Parquet, a running count for CSV."""
    if not enabled:
        yield None
        return
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

    columns = (TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn())
    with Progress(*columns, console=err, transient=True) as bar:
        task = bar.add_task("scoring rows", total=None)
        yield lambda done, total: bar.update(task, completed=done, total=total)
