"""Schemas: what columns a dataset has, of which kind, and checking new data against them.

Kinds: ``numeric``, ``categorical``, ``text`` (free text or high-cardinality strings) and
``image`` (a fixed-shape array per row, kept in ``Dataset.arrays``). The schema a model was
trained on is the schema its serving requests are validated against.

Examples
--------
>>> import pandas as pd
>>> table = pd.DataFrame({"age": [25, 38, None], "sex": ["Male", "Female", "Female"]})
>>> schema = infer_schema(table)
>>> [(c.name, c.kind, c.nullable) for c in schema.columns]
[('age', 'numeric', True), ('sex', 'categorical', False)]
>>> schema.validate(pd.DataFrame({"age": ["x"], "sex": ["Male"]}))
Traceback (most recent call last):
...
amploop.errors.SchemaError: column 'age' row 0: 'x' is not a number
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any, Literal

import numpy as np
import pandas as pd

from amploop.errors import SchemaError

__all__ = ["ColumnSchema", "Schema", "infer_schema"]

Kind = Literal["numeric", "categorical", "text", "image"]
KINDS: tuple[str, ...] = ("numeric", "categorical", "text", "image")
MAX_CATEGORIES = 100  # more distinct strings than this and a column is treated as text
_MAX_PROBLEMS_SHOWN = 5


@dataclass(frozen=True)
class ColumnSchema:
    """One column: its kind, storage type, whether it may be missing, and its observed domain."""

    name: str
    kind: Kind
    dtype: str
    nullable: bool = False
    minimum: float | None = None  # numeric and image columns
    maximum: float | None = None
    categories: tuple[Any, ...] | None = None  # categorical columns, sorted
    shape: tuple[int, ...] | None = None  # image columns: the shape of one row's array

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {
            "name": self.name,
            "kind": self.kind,
            "dtype": self.dtype,
            "nullable": self.nullable,
        }
        if self.minimum is not None:
            out["minimum"], out["maximum"] = self.minimum, self.maximum
        if self.categories is not None:
            out["categories"] = list(self.categories)
        if self.shape is not None:
            out["shape"] = list(self.shape)
        return out

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> ColumnSchema:
        if data.get("kind") not in KINDS:
            raise SchemaError(
                f"column {data.get('name')!r}: unknown kind {data.get('kind')!r}; valid kinds: {', '.join(KINDS)}"
            )
        return cls(
            name=str(data["name"]),
            kind=data["kind"],
            dtype=str(data["dtype"]),
            nullable=bool(data.get("nullable", False)),
            minimum=data.get("minimum"),
            maximum=data.get("maximum"),
            categories=tuple(data["categories"]) if data.get("categories") is not None else None,
            shape=tuple(data["shape"]) if data.get("shape") is not None else None,
        )


@dataclass(frozen=True)
class Schema:
    """An ordered set of column schemas."""

    columns: tuple[ColumnSchema, ...] = field(default_factory=tuple)

    def __post_init__(self) -> None:
        names = [c.name for c in self.columns]
        if len(set(names)) != len(names):
            dupes = sorted({n for n in names if names.count(n) > 1})
            raise SchemaError(f"duplicate column names: {', '.join(dupes)}; rename them")

    @property
    def names(self) -> list[str]:
        return [c.name for c in self.columns]

    def __getitem__(self, name: str) -> ColumnSchema:
        for column in self.columns:
            if column.name == name:
                return column
        raise KeyError(name)

    def __contains__(self, name: object) -> bool:
        return any(c.name == name for c in self.columns)

    def without(self, *names: str) -> Schema:
        return Schema(tuple(c for c in self.columns if c.name not in names))

    def to_dict(self) -> dict[str, Any]:
        return {"columns": [c.to_dict() for c in self.columns]}

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Schema:
        return cls(tuple(ColumnSchema.from_dict(c) for c in data.get("columns", [])))

    def validate(
        self,
        table: pd.DataFrame,
        arrays: Mapping[str, np.ndarray] | None = None,
        *,
        ignore: Iterable[str] = (),
    ) -> None:
        """Raise :class:`SchemaError` naming the columns and rows that do not fit this schema.

        Missing columns, values of the wrong type, missing values in a column that had none,
        and images of the wrong shape are errors. Unseen categories and numbers outside the
        observed range are not: they are drift, which the monitor reports.
        """
        arrays = arrays or {}
        skip = set(ignore)
        problems: list[str] = []
        tabular = [c for c in self.columns if c.kind != "image" and c.name not in skip]
        missing = [c.name for c in tabular if c.name not in table.columns]
        missing += [c.name for c in self.columns if c.kind == "image" and c.name not in skip and c.name not in arrays]
        if missing:
            raise SchemaError(
                f"missing columns: {', '.join(missing)}; the data needs every column of the schema",
                missing_columns=missing,
            )
        for column in tabular:
            problems.extend(_column_problems(column, table[column.name]))
        for column in self.columns:
            if column.kind == "image" and column.name not in skip:
                array = np.asarray(arrays[column.name])
                if column.shape is not None and tuple(array.shape[1:]) != tuple(column.shape):
                    problems.append(
                        f"column '{column.name}': each row must be an array of shape "
                        f"{tuple(column.shape)}, got {tuple(array.shape[1:])}"
                    )
                elif array.shape[0] != len(table):
                    problems.append(f"column '{column.name}': {array.shape[0]} rows, the table has {len(table)}")
        if problems:
            more = f" (and {len(problems) - 1} more)" if len(problems) > 1 else ""
            raise SchemaError(problems[0] + more, problems=problems[:50])


def _column_problems(column: ColumnSchema, values: pd.Series) -> list[str]:
    problems: list[str] = []
    null = values.isna().to_numpy()
    numbers = pd.api.types.is_numeric_dtype(values) or pd.api.types.is_bool_dtype(values)
    if column.kind == "numeric" and not numbers:
        converted = pd.to_numeric(values, errors="coerce")
        bad = np.flatnonzero(converted.isna().to_numpy() & ~null)
        for pos in bad[:_MAX_PROBLEMS_SHOWN]:
            problems.append(f"column '{column.name}' row {values.index[pos]}: {values.iloc[pos]!r} is not a number")
    if not column.nullable and null.any():
        rows = [str(values.index[p]) for p in np.flatnonzero(null)[:_MAX_PROBLEMS_SHOWN]]
        problems.append(
            f"column '{column.name}' row {', '.join(rows)}: missing value, "
            "but the column had none when the schema was made"
        )
    return problems


def infer_schema(
    table: pd.DataFrame,
    arrays: Mapping[str, np.ndarray] | None = None,
    *,
    categorical: Iterable[str] = (),
    max_categories: int = MAX_CATEGORIES,
) -> Schema:
    """Infer each column's kind and domain; ``categorical`` forces those columns to categorical.

    Numbers are numeric, booleans and strings with at most ``max_categories`` distinct values
    are categorical, other strings are text, and every entry of ``arrays`` is an image column.
    """
    forced = set(categorical)
    unknown = forced - set(table.columns)
    if unknown:
        raise SchemaError(f"categorical columns not in the data: {', '.join(sorted(unknown))}")
    columns = [_infer_column(str(name), table[name], name in forced, max_categories) for name in table.columns]
    for name, array in (arrays or {}).items():
        array = np.asarray(array)
        if array.ndim < 2 or array.shape[0] != len(table):
            raise SchemaError(
                f"array column '{name}' must have one entry per row ({len(table)}), got shape {array.shape}"
            )
        columns.append(
            ColumnSchema(
                name=name,
                kind="image",
                dtype=str(array.dtype),
                nullable=False,
                minimum=float(array.min()) if array.size else None,
                maximum=float(array.max()) if array.size else None,
                shape=tuple(int(s) for s in array.shape[1:]),
            )
        )
    return Schema(tuple(columns))


def _infer_column(name: str, values: pd.Series, force_categorical: bool, max_categories: int) -> ColumnSchema:
    nullable = bool(values.isna().any())
    present = values.dropna()
    dtype = str(values.dtype)
    if pd.api.types.is_bool_dtype(values) or (force_categorical and not _is_text(present, max_categories)):
        return ColumnSchema(
            name, "categorical", dtype, nullable, categories=tuple(_sorted_categories(present.unique()))
        )
    if pd.api.types.is_numeric_dtype(values):
        minimum = float(present.min()) if len(present) else None
        maximum = float(present.max()) if len(present) else None
        return ColumnSchema(name, "numeric", dtype, nullable, minimum=minimum, maximum=maximum)
    if _is_text(present, max_categories):
        return ColumnSchema(name, "text", dtype, nullable)
    return ColumnSchema(name, "categorical", dtype, nullable, categories=tuple(_sorted_categories(present.unique())))


def _is_text(present: pd.Series, max_categories: int) -> bool:
    return present.nunique() > max_categories


def _sorted_categories(values: Iterable[Any]) -> list[Any]:
    plain = [v.item() if isinstance(v, np.generic) else v for v in values]
    try:
        return sorted(plain)
    except TypeError:  # mixed types: order by their text
        return sorted(plain, key=str)
