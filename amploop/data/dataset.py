"""Dataset: a table, its schema and fingerprint, plus array columns (images) and named splits.

Examples
--------
>>> import pandas as pd
>>> ds = Dataset.from_table("toy", pd.DataFrame({"x": [0.5, 1.5, 2.5, 3.5], "y": ["a", "b", "a", "b"]}),
...                         target="y")
>>> ds.n_rows, ds.task, ds.feature_names
(4, 'classification', ['x'])
>>> ds.take([0, 2], name="toy[even]").table["x"].tolist()
[0.5, 2.5]
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from functools import cached_property
from typing import Any, Literal

import numpy as np
import pandas as pd

from amploop.data.fingerprint import fingerprint
from amploop.data.schema import Schema, infer_schema
from amploop.errors import DataError, SchemaError

__all__ = ["ColumnSummary", "Dataset", "DatasetSummary"]

Task = Literal["classification", "regression"]
MAX_CLASSES_FOR_INTEGER_TARGET = 20  # integer targets with more distinct values are regression


@dataclass(frozen=True, eq=False)
class Dataset:
    """Rows to learn from or to score, with everything needed to trace them.

    ``table`` holds the tabular columns (the target among them); ``arrays`` holds array-valued
    columns with one entry per row, such as images of shape ``(n, 28, 28)``; ``splits`` maps a
    split name (``train``, ``test``) to row positions. Treat the table as read-only: the
    fingerprint is computed once.
    """

    name: str
    table: pd.DataFrame
    schema: Schema
    target: str | None = None
    task: Task | None = None
    source: str = ""
    arrays: Mapping[str, np.ndarray] = field(default_factory=dict)
    splits: Mapping[str, np.ndarray] = field(default_factory=dict)
    parents: tuple[str, ...] = ()  # fingerprints of the datasets this one was derived from
    transformation: str | None = None  # how it was derived from its parents, or cleaned at load
    unlabelled_rows_dropped: int = 0  # rows of the source left out at load because their target was missing

    def __post_init__(self) -> None:
        n = len(self.table)
        for name, array in self.arrays.items():
            if len(array) != n:
                raise DataError(f"array column '{name}' has {len(array)} rows, the table {n}")
        if self.target is not None and self.target not in self.table.columns:
            raise SchemaError(
                f"target column '{self.target}' is not in the data; columns: {', '.join(map(str, self.table.columns))}"
            )
        expected = [str(c) for c in self.table.columns] + list(self.arrays)
        if self.schema.names != expected:
            raise SchemaError("the schema's columns differ from the data's; infer the schema again")
        for split, positions in self.splits.items():
            positions = np.asarray(positions)
            if positions.size and (positions.min() < 0 or positions.max() >= n):
                raise DataError(f"split '{split}' points outside the {n} rows")

    @classmethod
    def from_table(
        cls,
        name: str,
        table: pd.DataFrame,
        *,
        target: str | None = None,
        task: Task | None = None,
        arrays: Mapping[str, np.ndarray] | None = None,
        categorical: Iterable[str] = (),
        source: str = "",
        splits: Mapping[str, np.ndarray] | None = None,
    ) -> Dataset:
        """Build a dataset, inferring its schema and, when not given, its task from the target.

        Rows whose target is missing cannot be learned from or scored against: they are left
        out, and their count is kept in ``unlabelled_rows_dropped`` and the ``transformation``
        (reported in the summary and as a quality finding, never lost silently).
        A target with no values at all is refused.
        """
        table = table.reset_index(drop=True)
        table.columns = [str(c) for c in table.columns]
        if target is not None and target not in table.columns:
            raise SchemaError(f"target column '{target}' is not in the data; columns: {', '.join(table.columns)}")
        dropped, transformation = 0, None
        if target is not None and len(table):
            unlabelled = table[target].isna().to_numpy()
            dropped = int(unlabelled.sum())
            if dropped == len(table):
                raise DataError(
                    f"the target column '{target}' is missing in all {dropped} rows; fill in the labels "
                    "or choose another --target"
                )
            if dropped:
                keep = np.flatnonzero(~unlabelled)
                table = table.iloc[keep].reset_index(drop=True)
                arrays = {k: np.asarray(v)[keep] for k, v in (arrays or {}).items()}
                splits = {k: _renumber(np.asarray(v), keep, len(unlabelled)) for k, v in (splits or {}).items()}
                transformation = f"dropped {dropped} rows without a label ('{target}' missing)"
        forced = set(categorical)
        if target is not None and task is None:
            task = _infer_task(table[target])
        if target is not None and task == "classification":
            forced.add(target)
        schema = infer_schema(table, arrays, categorical=sorted(forced))
        return cls(
            name=name,
            table=table,
            schema=schema,
            target=target,
            task=task,
            source=source,
            arrays=dict(arrays or {}),
            splits=dict(splits or {}),
            transformation=transformation,
            unlabelled_rows_dropped=dropped,
        )

    # -- shape ---------------------------------------------------------------------------------

    @property
    def n_rows(self) -> int:
        return len(self.table)

    @property
    def n_columns(self) -> int:
        return len(self.schema.columns)

    @property
    def feature_names(self) -> list[str]:
        return [c for c in self.schema.names if c != self.target]

    @property
    def labels(self) -> pd.Series:
        if self.target is None:
            raise DataError(f"dataset '{self.name}' has no target column; pass --target")
        return self.table[self.target]

    # -- identity ------------------------------------------------------------------------------

    @cached_property
    def fingerprint(self) -> str:
        """Order-sensitive content hash: changes when any cell or the row order changes."""
        return fingerprint(self.table, self.arrays)

    @cached_property
    def content_fingerprint(self) -> str:
        """Order-insensitive content hash: the same rows in any order hash alike."""
        return fingerprint(self.table, self.arrays, order_sensitive=False)

    # -- derived datasets ----------------------------------------------------------------------

    def take(
        self,
        positions: Sequence[int] | np.ndarray,
        *,
        name: str | None = None,
        transformation: str | None = None,
    ) -> Dataset:
        """The rows at ``positions`` as a new dataset that records this one as its parent."""
        positions = np.asarray(positions, dtype=np.int64)
        return Dataset(
            name=name or f"{self.name}[subset]",
            table=self.table.iloc[positions].reset_index(drop=True),
            schema=self.schema,
            target=self.target,
            task=self.task,
            source=self.source,
            arrays={k: v[positions] for k, v in self.arrays.items()},
            parents=(self.fingerprint,),
            transformation=transformation or f"take {len(positions)} of {self.n_rows} rows",
        )

    def split(self, name: str) -> Dataset:
        """One of the dataset's named splits, e.g. ``adult.split("train")``."""
        if name not in self.splits:
            have = ", ".join(self.splits) or "none"
            raise DataError(f"dataset '{self.name}' has no split '{name}' (it has: {have})")
        return self.take(self.splits[name], name=f"{self.name}[{name}]", transformation=f"split '{name}'")

    # -- description ---------------------------------------------------------------------------

    def summary(self) -> DatasetSummary:
        columns = [_summarise(self, c.name) for c in self.schema.columns]
        balance: dict[str, int] = {}
        if self.target is not None and self.task == "classification":
            counts = self.labels.astype(str).value_counts()
            balance = {str(k): int(v) for k, v in sorted(counts.items())}
        return DatasetSummary(
            name=self.name,
            source=self.source,
            rows=self.n_rows,
            columns=self.n_columns,
            target=self.target,
            task=self.task,
            fingerprint=self.fingerprint,
            splits={k: int(len(v)) for k, v in self.splits.items()},
            class_balance=balance,
            column_summaries=columns,
            unlabelled_rows_dropped=self.unlabelled_rows_dropped,
        )


@dataclass(frozen=True)
class ColumnSummary:
    name: str
    kind: str
    dtype: str
    missing: int
    distinct: int | None
    minimum: float | None = None
    maximum: float | None = None
    mean: float | None = None
    top: list[tuple[str, int]] | None = None  # most frequent categories with counts
    shape: list[int] | None = None

    def to_dict(self) -> dict[str, Any]:
        out = {k: _json_number(v) for k, v in self.__dict__.items() if v is not None}
        if self.top is not None:
            out["top"] = [{"value": v, "count": c} for v, c in self.top]
        return out


@dataclass(frozen=True)
class DatasetSummary:
    name: str
    source: str
    rows: int
    columns: int
    target: str | None
    task: str | None
    fingerprint: str
    splits: dict[str, int]
    class_balance: dict[str, int]
    column_summaries: list[ColumnSummary]
    unlabelled_rows_dropped: int = 0  # rows left out at load because their target was missing

    def to_dict(self) -> dict[str, Any]:
        out = {k: v for k, v in self.__dict__.items() if k != "column_summaries"}
        out["column_summaries"] = [c.to_dict() for c in self.column_summaries]
        return out


def _json_number(value: Any) -> Any:
    """Infinite and NaN floats as text ("inf", "-inf", "nan"): JSON has no numbers for them."""
    if isinstance(value, float) and not np.isfinite(value):
        return str(value)
    return value


def _renumber(positions: np.ndarray, keep: np.ndarray, n_before: int) -> np.ndarray:
    """Split positions into a table of ``n_before`` rows, mapped onto the rows ``keep`` retains."""
    new_index = np.full(n_before, -1, dtype=np.int64)
    new_index[keep] = np.arange(len(keep))
    mapped = new_index[positions.astype(np.int64)]
    return mapped[mapped >= 0]


def _summarise(ds: Dataset, name: str) -> ColumnSummary:
    column = ds.schema[name]
    if column.kind == "image":
        array = np.asarray(ds.arrays[name])
        return ColumnSummary(
            name,
            "image",
            column.dtype,
            missing=0,
            distinct=None,
            minimum=column.minimum,
            maximum=column.maximum,
            mean=round(float(array.mean()), 4) if array.size else None,
            shape=list(column.shape or ()),
        )
    values = ds.table[name]
    missing = int(values.isna().sum())
    distinct = int(values.nunique())
    if column.kind == "numeric":
        present = values.dropna()
        with np.errstate(over="ignore", invalid="ignore"):  # ±inf and 1e308 are reported by check_quality
            mean = round(float(present.astype(float).mean()), 4) if len(present) else None
        return ColumnSummary(name, "numeric", column.dtype, missing, distinct, column.minimum, column.maximum, mean)
    top = [(str(k), int(v)) for k, v in values.astype(str)[values.notna()].value_counts().head(5).items()]
    return ColumnSummary(name, column.kind, column.dtype, missing, distinct, top=top)


def _infer_task(target: pd.Series) -> Task:
    if pd.api.types.is_bool_dtype(target) or not pd.api.types.is_numeric_dtype(target):
        return "classification"
    present = target.dropna()
    integral = bool(np.all(np.mod(present.to_numpy(dtype=float), 1) == 0))
    if integral and present.nunique() <= MAX_CLASSES_FOR_INTEGER_TARGET:
        return "classification"
    return "regression"
