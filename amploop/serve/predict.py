"""Batch scoring of a file: ``amploop predict NAME@ALIAS rows.csv --output scores.parquet``.

:func:`predict_file` reads a CSV or Parquet file in chunks of ``chunk_rows`` rows, scores each
chunk with :func:`~amploop.serve.scoring.score` through the same
:func:`~amploop.registry.loading.load_model` path the Python API uses, and appends the answers to
the output in input order, so memory stays bounded by the chunk size whatever the file's size.

The output is written to a hidden temporary file beside it and renamed only when every row is
scored: after any failure (a bad value in the last chunk, Ctrl-C) the temporary file is removed,
nothing exists at the output path, and a file that was already there is left as it was.

Examples
--------
>>> predict_file("adult@champion", "rows.json", "scores.csv")
Traceback (most recent call last):
...
amploop.errors.UsageError: rows.json: amploop predict reads .csv, .csv.gz, .tsv, .parquet, .pq files
"""

from __future__ import annotations

import os
import sys
import time
import uuid
from collections.abc import Callable, Iterator, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pandas as pd
import pyarrow as pa
import pyarrow.csv as pa_csv
import pyarrow.parquet as pq

from amploop.data.sources import csv_error
from amploop.errors import DataError, SchemaError, UsageError, close_matches
from amploop.serve.scoring import score

if TYPE_CHECKING:
    from amploop.data import Schema
    from amploop.models.runtime import Predictor
    from amploop.registry.store import Store

__all__ = ["INPUT_SUFFIXES", "OUTPUT_SUFFIXES", "PredictFileResult", "predict_file"]

INPUT_SUFFIXES = (".csv", ".csv.gz", ".tsv", ".parquet", ".pq")
OUTPUT_SUFFIXES = (".csv", ".parquet", ".pq")
_TEXT_DTYPES = ("object", "str", "string", "category")  # how pandas names a column of strings
Progress = Callable[[int, int | None], None]  # (rows done, total rows or None when unknown)


@dataclass(frozen=True)
class PredictFileResult:
    """What :func:`predict_file` did: which version scored how many rows of which file, how fast."""

    model_version: str  # NAME:VERSION that answered
    source: str  # the input file, absolute
    output: str  # the file written, absolute
    rows: int  # rows scored (the output's rows)
    chunks: int  # chunks read; each held in memory alone
    chunk_rows: int  # the most rows in one chunk
    columns: list[str]  # the output's columns: kept input columns, then the scores
    seconds: float  # wall time from opening the file to the rename (loading the model not included)
    rows_per_second: float
    peak_rss_bytes: int | None  # the process's peak resident memory so far (None where not measurable)
    precision: str  # inference precision the model ran in
    runtime: str  # what ran it: torch or onnx (int8 always runs on ONNX Runtime)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def predict_file(
    reference: str,
    source: str | Path,
    output: str | Path,
    *,
    store: Store | None = None,
    precision: str = "fp32",
    runtime: str = "torch",
    chunk_rows: int = 50_000,
    keep_columns: Sequence[str] = (),
    progress: Progress | None = None,
) -> PredictFileResult:
    """Score every row of ``source`` (CSV or Parquet) with ``reference`` and write ``output``.

    ``reference`` is ``NAME``, ``NAME:VERSION`` or ``NAME@ALIAS``; ``precision`` (``auto`` picks
    one for the CPU) and ``runtime`` go to :func:`~amploop.registry.loading.load_model`. The
    output (``.csv`` or ``.parquet``) has one row per input row, in input order: the
    ``keep_columns`` copied from the input (an ID, the label), then prediction,
    ``probability_<class>`` per class, confidence (calibrated) and model_version. The file's
    columns are checked against the model's schema before anything is written; a value that
    does not fit fails with the column and the file's row number (counted from 0, after the
    header). Columns the model does not read are allowed and skipped. ``progress`` is called
    after each chunk with the rows done and the total (None for CSV, which is not read twice to
    count its rows).
    """
    source, output = Path(source), Path(output)
    if chunk_rows < 1:
        raise UsageError(f"chunk_rows must be at least 1, got {chunk_rows}")
    source_kind = _kind(source, INPUT_SUFFIXES, "reads")
    output_kind = _kind(output, OUTPUT_SUFFIXES, "writes")
    _check_paths(source, output)

    from amploop.registry.loading import load_model

    if precision == "auto":  # batch scoring runs on the CPU, as load_model does by default
        from amploop.models.runtime import choose_inference_precision

        precision, _ = choose_inference_precision(precision, "cpu")
    predictor = load_model(reference, store=store, precision=precision, runtime=runtime)
    schema, version = predictor.schema_, predictor.reference or reference
    images = [c.name for c in schema.columns if c.kind == "image"]
    if images:
        raise UsageError(
            f"{version} reads images ({', '.join(images)}), which a {source_kind.upper()} file cannot hold; "
            "score images through the Python API: load_model(...).predict_outputs(table, arrays)"
        )
    started = time.perf_counter()  # the model is loaded: from here on, the cost of the rows
    needed = [c.name for c in schema.columns if c.name != predictor.bundle.target]
    keep = list(dict.fromkeys(keep_columns))
    if source_kind == "parquet":
        header, total = _parquet_header(source)
    else:
        header, total = _csv_header(source, _separator(source)), None
    _check_columns(source, version, header, needed, keep)
    wanted = [c for c in header if c in set(needed) | set(keep)]  # in file order; the rest is dropped at once
    chunks = (
        _parquet_chunks(source, wanted, chunk_rows)
        if source_kind == "parquet"
        else _csv_chunks(source, wanted, _text_columns(schema, needed, keep), chunk_rows)
    )
    partial = output.with_name(f".{output.name}.{uuid.uuid4().hex[:12]}.partial")
    try:
        rows, count, columns = _score_into(partial, output_kind, predictor, chunks, keep, total, progress, source)
        os.replace(partial, output)  # atomic on one filesystem: readers see the old file or the whole new one
    except BaseException as exc:  # Ctrl-C included: never leave a half-written file
        partial.unlink(missing_ok=True)
        if isinstance(exc, OSError):  # reading errors are DataErrors already: this one is the writing
            raise DataError(
                f"{output}: cannot write ({exc.strerror or exc}); check the folder's space and permissions"
            ) from None
        raise
    seconds = time.perf_counter() - started
    return PredictFileResult(
        model_version=version,
        source=str(source.resolve()),
        output=str(output.resolve()),
        rows=rows,
        chunks=count,
        chunk_rows=chunk_rows,
        columns=columns,
        seconds=round(seconds, 4),
        rows_per_second=round(rows / seconds, 1) if seconds > 0 else 0.0,
        peak_rss_bytes=_peak_rss_bytes(),
        precision=predictor.precision,
        runtime=predictor.runtime,
    )


def _score_into(
    partial: Path,
    output_kind: str,
    predictor: Predictor,
    chunks: Iterator[tuple[pd.DataFrame, pa.Table | None]],
    keep: list[str],
    total: int | None,
    progress: Progress | None,
    source: Path,
) -> tuple[int, int, list[str]]:
    """Score chunk after chunk into ``partial``; (rows, chunks, output columns)."""
    rows = count = 0
    schema: pa.Schema | None = None
    writer: pq.ParquetWriter | pa_csv.CSVWriter | None = None
    if progress is not None:
        progress(0, total)
    with open(partial, "xb") as handle:
        try:
            for frame, arrow in chunks:
                # file row numbers as the index: Schema.validate names rows by it
                frame.index = pd.RangeIndex(rows, rows + len(frame))
                _like_training(frame, predictor.schema_)
                try:
                    scores = score(predictor, frame).frame()
                except SchemaError as exc:
                    first = "the file's first" if arrow is not None else "the first after the header"
                    raise SchemaError(
                        f"{source}: {exc.message} (row 0 is {first}); fix the file and run again", **exc.details
                    ) from None
                kept = (
                    arrow.select(keep) if arrow is not None else pa.Table.from_pandas(frame[keep], preserve_index=False)
                )
                table = _join(kept, pa.Table.from_pandas(scores, preserve_index=False))
                if writer is None:
                    schema = table.schema
                    if output_kind == "csv":
                        writer = pa_csv.CSVWriter(handle, schema)
                    else:
                        writer = pq.ParquetWriter(handle, schema)
                else:
                    table = _conform(table, schema, source, rows)  # type: ignore[arg-type]
                writer.write_table(table)
                rows, count = rows + len(frame), count + 1
                if progress is not None:
                    progress(rows, total)
        finally:
            if writer is not None:
                writer.close()
    return rows, count, list(schema.names) if schema is not None else []


def _join(kept: pa.Table, scores: pa.Table) -> pa.Table:
    """Kept input columns, then the scores, without pandas' index metadata."""
    arrays = list(kept.columns) + list(scores.columns)
    return pa.Table.from_arrays(arrays, names=kept.column_names + scores.column_names)


def _conform(table: pa.Table, schema: pa.Schema, source: Path, first_row: int) -> pa.Table:
    """A chunk in the types of the first chunk (a CSV column of integers turns float where a cell is empty)."""
    if table.schema.equals(schema):
        return table
    try:
        return table.cast(schema)
    except (pa.ArrowInvalid, pa.ArrowNotImplementedError) as exc:
        changed = [f.name for f, g in zip(table.schema, schema, strict=True) if f.type != g.type]
        raise DataError(
            f"{source}: column(s) {', '.join(changed)} change type from row {first_row} on ({exc}); "
            "give each column one type throughout the file",
            columns=changed,
        ) from None


def _like_training(frame: pd.DataFrame, schema: Schema) -> None:
    """Give numeric-coded categorical columns the dtype they had in training, in place.

    The encoder looks categories up by their text, so ``3.0`` misses the category ``3``; a chunk
    with one empty cell turns a column of integers into floats (and one without, back again).
    """
    for column in schema.columns:
        if column.kind != "categorical" or column.name not in frame.columns:
            continue
        values = frame[column.name]
        if column.dtype.startswith(("int", "uint")) and pd.api.types.is_float_dtype(values):
            present = values.dropna()
            if (present == present.round()).all():
                frame[column.name] = values.astype("Int64")
        elif column.dtype.startswith("float") and pd.api.types.is_integer_dtype(values):
            frame[column.name] = values.astype("float64")


def _kind(path: Path, suffixes: tuple[str, ...], verb: str) -> str:
    name = path.name.lower()
    if not name.endswith(suffixes):
        raise UsageError(f"{path}: amploop predict {verb} {', '.join(suffixes)} files")
    return "parquet" if name.endswith((".parquet", ".pq")) else "csv"


def _separator(path: Path) -> str:
    return "\t" if path.name.lower().endswith(".tsv") else ","


def _check_paths(source: Path, output: Path) -> None:
    if not source.is_file():
        raise DataError(f"{source}: no such file")
    if output.resolve() == source.resolve() or (output.exists() and os.path.samefile(output, source)):
        raise UsageError(f"{output}: the output would overwrite the file being scored; choose another --output")
    if not output.parent.is_dir():
        raise UsageError(f"{output}: the folder {output.parent} does not exist; create it first")
    if output.is_dir():
        raise UsageError(f"{output} is a folder; give a file name ending in {', '.join(OUTPUT_SUFFIXES)}")


def _check_columns(source: Path, version: str, header: list[str], needed: list[str], keep: list[str]) -> None:
    """Every column the model reads and every kept column is in the file, before anything is written."""
    missing = [name for name in needed if name not in header]
    if missing:
        hints = []
        for name in missing:
            close, _ = close_matches(name, [c for c in header if c not in needed])
            hints.append(f"'{name}'" + (f" (the file has {', '.join(map(repr, close))})" if close else ""))
        raise SchemaError(
            f"{source}: missing column(s) {', '.join(hints)} that {version} reads; it needs {', '.join(needed)}",
            missing_columns=missing,
        )
    absent = [name for name in keep if name not in header]
    if absent:
        close, hint = close_matches(absent[0], header)
        raise SchemaError(
            f"{source}: no column '{absent[0]}' to keep; {hint}the file has {', '.join(header)}",
            missing_columns=absent,
            close_matches=close,
        )
    taken = [
        name
        for name in keep
        if name in ("prediction", "confidence", "model_version") or name.startswith("probability_")
    ]
    if taken:
        raise UsageError(f"cannot keep column '{taken[0]}': the scores use that name; rename it in the file")


def _text_columns(schema: Schema, needed: list[str], keep: list[str]) -> list[str]:
    """Columns read as text, not guessed per chunk: string columns of the model, and kept columns.

    A chunk that happens to hold only ``001``, ``002`` would otherwise read them as numbers, and
    a kept ID is copied as the file spells it.
    """
    model = {c.name: c for c in schema.columns}
    text = [name for name in needed if model[name].kind != "numeric" and model[name].dtype in _TEXT_DTYPES]
    return text + [name for name in keep if name not in model]


def _csv_header(path: Path, sep: str) -> list[str]:
    try:
        return [str(c) for c in pd.read_csv(path, sep=sep, nrows=0, skipinitialspace=True).columns]
    except (pd.errors.ParserError, pd.errors.EmptyDataError, UnicodeDecodeError, OSError) as exc:
        raise csv_error(path, exc, sep) from None


def _csv_chunks(
    path: Path, columns: list[str], text_columns: list[str], chunk_rows: int
) -> Iterator[tuple[pd.DataFrame, None]]:
    """The file's rows, ``chunk_rows`` at a time (a header-only file gives one empty chunk).

    pandas rather than pyarrow's faster streaming reader: it parses exactly as
    :func:`amploop.data.read_csv` does for training (type inference, ``skipinitialspace``), and
    it reads chunks of rows, where pyarrow fixes each column's type from its first block and
    fails a later block without saying which row is wrong.
    """
    sep = _separator(path)
    dtype = dict.fromkeys(text_columns, "str")
    try:
        # every column is parsed, not only ``usecols``: with usecols pandas drops the extra fields of
        # a ragged line (an unquoted comma) silently, shifting its values into the wrong columns
        with pd.read_csv(path, sep=sep, dtype=dtype, skipinitialspace=True, chunksize=chunk_rows) as reader:
            for frame in reader:
                yield frame[columns], None
    except (pd.errors.ParserError, pd.errors.EmptyDataError, UnicodeDecodeError, OSError) as exc:
        raise csv_error(path, exc, sep) from None


def _parquet_header(path: Path) -> tuple[list[str], int]:
    try:
        metadata = pq.read_metadata(path)
    except (pa.ArrowInvalid, OSError) as exc:
        raise DataError(f"{path}: not a readable Parquet file ({exc})") from None
    return list(metadata.schema.to_arrow_schema().names), metadata.num_rows


def _parquet_chunks(path: Path, columns: list[str], chunk_rows: int) -> Iterator[tuple[pd.DataFrame, pa.Table]]:
    """Row batches of only the columns used; each also as Arrow, so kept columns keep their exact types."""
    try:
        parquet = pq.ParquetFile(path)
        nested = [f.name for f in parquet.schema_arrow if f.name in columns and pa.types.is_nested(f.type)]
        if nested:
            raise SchemaError(
                f"{path}: column(s) {', '.join(nested)} hold nested values (lists, structs or maps); "
                "amploop reads flat columns: flatten them into one column per field",
                columns=nested,
            )
        empty = True
        for batch in parquet.iter_batches(batch_size=chunk_rows, columns=columns):
            empty = False
            table = pa.Table.from_batches([batch])
            yield table.to_pandas(), table
        if empty:  # no rows: one empty chunk, so the output still gets its header
            table = parquet.schema_arrow.empty_table().select(columns)
            yield table.to_pandas(), table
    except (pa.ArrowInvalid, pa.ArrowNotImplementedError, OSError) as exc:
        raise DataError(f"{path}: not a readable Parquet file ({exc})") from None


def _peak_rss_bytes() -> int | None:
    """The process's peak resident memory: VmHWM on Linux, else getrusage's maxrss.

    getrusage also counts the parent's memory at fork (Linux keeps it across exec), so a
    command started from a large Python process would report that process's size.
    """
    status = Path("/proc/self/status")
    if status.exists():
        for line in status.read_text(encoding="ascii").splitlines():
            if line.startswith("VmHWM:"):
                return 1024 * int(line.split()[1])
    try:
        import resource
    except ImportError:  # Windows
        return None
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return int(peak if sys.platform == "darwin" else peak * 1024)  # bytes on macOS, kilobytes elsewhere
