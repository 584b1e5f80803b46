"""``amploop drift REFERENCE CURRENT``: do two files hold rows from the same distribution?

Both files (CSV or Parquet) are read in chunks, so memory is bounded by the chunk size and
the columns, never by the rows: the reference's first chunk sets each column's kind and bin
edges, then every chunk of both files is counted into a profile
(:mod:`amploop.monitor.profile`) and the two profiles are compared column by column
(:mod:`amploop.monitor.univariate`). The target column, when named, is compared on its own
(target drift) and left out of the feature drift.

Before any counting, the current file must have every column of the reference with the same
kind: a missing column is named (with close matches), a column that holds numbers in one file
and text in the other is refused with both types.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from contextlib import closing
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pandas as pd

from amploop.errors import DataError, SchemaError, close_matches
from amploop.monitor.profile import Profile
from amploop.monitor.univariate import ColumnDrift, UnivariateReport, compare_profiles

__all__ = ["FileDriftReport", "drift_files", "read_chunks"]

CHUNK_ROWS = 250_000  # rows read at a time: memory follows this, not the file's length
PEEK_ROWS = 1000  # rows of the current file read first, to check its columns before any counting
SUFFIXES = (".csv", ".csv.gz", ".tsv", ".parquet", ".pq")


@dataclass(frozen=True)
class FileDriftReport:
    reference: str
    current: str
    target: str | None
    kinds: dict[str, str]  # column -> numeric, categorical or text
    features: UnivariateReport
    target_drift: ColumnDrift | None
    only_in_current: list[str]  # columns the reference does not have (not compared)
    seconds: float

    @property
    def drifted(self) -> bool:
        return self.features.dataset_drift or bool(self.target_drift and self.target_drift.drifted)

    @property
    def summary(self) -> str:
        target = ""
        if self.target_drift is not None:
            moved = "drifted" if self.target_drift.drifted else "did not drift"
            target = f"; target '{self.target}' {moved}"
        return f"{self.features.summary}{target}"

    def to_dict(self) -> dict[str, Any]:
        return {
            "reference": self.reference,
            "current": self.current,
            "target": self.target,
            "drifted": self.drifted,
            "summary": self.summary,
            "kinds": self.kinds,
            "features": self.features.to_dict(),
            "target_drift": self.target_drift.to_dict() if self.target_drift else None,
            "only_in_current": self.only_in_current,
            "seconds": self.seconds,
        }


def read_chunks(path: str | Path, *, chunk_rows: int = CHUNK_ROWS) -> Iterator[pd.DataFrame]:
    """A CSV or Parquet file as tables of at most ``chunk_rows`` rows; DataError when unreadable or empty."""
    from amploop.data.sources import csv_error

    path = Path(path)
    name = path.name.lower()
    if not path.is_file():
        raise DataError(f"{path}: no such file; give a CSV or Parquet file")
    if not name.endswith(SUFFIXES):
        raise DataError(f"{path}: unknown file type; amploop drift reads {', '.join(SUFFIXES)}")
    rows = 0
    if name.endswith((".parquet", ".pq")):
        import pyarrow as pa
        import pyarrow.parquet as pq

        try:
            # without pre-buffering, pyarrow's memory stays at about one chunk instead of growing with the file
            for batch in pq.ParquetFile(path, pre_buffer=False).iter_batches(batch_size=chunk_rows):
                rows += batch.num_rows
                yield batch.to_pandas(split_blocks=True, self_destruct=True)
                del batch
        except (pa.ArrowInvalid, pa.ArrowNotImplementedError, OSError) as exc:
            raise DataError(f"{path}: not a readable Parquet file ({exc})") from None
    else:
        sep = "\t" if name.endswith(".tsv") else ","
        try:
            for chunk in pd.read_csv(path, sep=sep, chunksize=chunk_rows, skipinitialspace=True):
                rows += len(chunk)
                yield chunk
        except (pd.errors.ParserError, pd.errors.EmptyDataError, UnicodeDecodeError, OSError) as exc:
            raise csv_error(path, exc, sep) from None
    if rows == 0:
        raise DataError(f"{path} has no rows")


def _kinds(table: pd.DataFrame, target: str | None) -> dict[str, str]:
    from amploop.data.schema import infer_schema

    schema = infer_schema(table, categorical=[target] if target else [])
    return {c.name: c.kind for c in schema.columns}


def _check_current(
    reference_kinds: dict[str, str], current: pd.DataFrame, reference_path: Path, current_path: Path
) -> list[str]:
    missing = [c for c in reference_kinds if c not in current.columns]
    if missing:
        _, hint = close_matches(missing[0], [str(c) for c in current.columns if c not in reference_kinds])
        raise SchemaError(
            f"{current_path} has no column{'s' if len(missing) > 1 else ''} {', '.join(map(repr, missing[:5]))} "
            f"that {reference_path.name} has; {hint}both files need the same columns",
            columns=missing,
        )
    for name, kind in reference_kinds.items():
        numeric_now = pd.api.types.is_numeric_dtype(current[name]) or current[name].isna().all()
        if kind == "numeric" and not numeric_now:
            bad = current[name][pd.to_numeric(current[name], errors="coerce").isna() & current[name].notna()]
            example = f" (e.g. {bad.iloc[0]!r})" if len(bad) else ""
            raise SchemaError(
                f"column '{name}' holds numbers in {reference_path.name} but text in {current_path.name}{example}; "
                "both files need the same type per column",
                columns=[name],
            )
    return [str(c) for c in current.columns if c not in reference_kinds]


def _without(profile: Profile, target: str | None) -> Profile:
    columns = {n: c for n, c in profile.columns.items() if n != target}
    skipped = {n: why for n, why in profile.skipped.items() if n != target}
    return Profile(columns, n_rows=profile.n_rows, skipped=skipped)


def _only(profile: Profile, target: str) -> Profile:
    return Profile({target: profile.columns[target]}, n_rows=profile.n_rows)


def drift_files(
    reference: str | Path,
    current: str | Path,
    *,
    target: str | None = None,
    method: str = "auto",
    correction: str = "bh",
    alpha: float = 0.05,
    drift_share: float = 0.5,
    chunk_rows: int = CHUNK_ROWS,
) -> FileDriftReport:
    """Compare the rows of ``current`` with those of ``reference``, column by column, in bounded memory."""
    started = time.perf_counter()
    reference_path, current_path = Path(reference), Path(current)
    reference_chunks = read_chunks(reference_path, chunk_rows=chunk_rows)
    first = next(reference_chunks)
    if target is not None and target not in first.columns:
        _, hint = close_matches(target, [str(c) for c in first.columns])
        raise SchemaError(f"{reference_path} has no target column '{target}'; {hint}name one of its columns")
    kinds = _kinds(first, target)
    with closing(read_chunks(current_path, chunk_rows=PEEK_ROWS)) as peek:  # refuse a wrong file before counting
        only_in_current = _check_current(kinds, next(peek), reference_path, current_path)
    reference_profile = Profile.from_table(first, kinds)  # the target too: one pass over the rows
    del first  # every chunk is let go once counted: memory follows the chunk, not the file
    for chunk in reference_chunks:
        reference_profile.add(chunk)
    current_profile = reference_profile.empty()
    for chunk in read_chunks(current_path, chunk_rows=chunk_rows):
        _check_current(kinds, chunk, reference_path, current_path)
        current_profile.add(chunk)
    options = {"method": method, "correction": correction, "alpha": alpha, "drift_share": drift_share}
    features = compare_profiles(_without(reference_profile, target), _without(current_profile, target), **options)
    target_drift = None
    if target is not None and target in reference_profile.columns:
        target_drift = compare_profiles(
            _only(reference_profile, target), _only(current_profile, target), **options
        ).columns[0]
    return FileDriftReport(
        reference=str(reference_path),
        current=str(current_path),
        target=target,
        kinds=kinds,
        features=features,
        target_drift=target_drift,
        only_in_current=only_in_current,
        seconds=round(time.perf_counter() - started, 3),
    )
