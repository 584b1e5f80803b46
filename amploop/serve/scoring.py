"""What a served model answers for a table of rows, the same for a file and for an HTTP request.

:func:`score` runs a :class:`~amploop.models.runtime.Predictor` once over a table and returns
:class:`Scores`: each row's prediction, its calibrated class probabilities and the calibrated
confidence (the largest of them), with the version that answered. :func:`records_to_rows`
turns JSON records into validated :class:`Rows` (column lists and image arrays), with per-field errors.

Examples
--------
>>> from amploop.data import Schema
>>> schema = Schema.from_dict({"columns": [
...     {"name": "age", "kind": "numeric", "dtype": "int64"},
...     {"name": "sex", "kind": "categorical", "dtype": "object", "categories": ["F", "M"]}]})
>>> rows = records_to_rows(schema, [{"age": 30, "sex": "F"}], target="income")
>>> rows.columns, rows.arrays, rows.n
({'age': [30.0], 'sex': ['F']}, {}, 1)
>>> records_to_rows(schema, [{"age": "old", "sex": "F", "x": 1}], target="income")
Traceback (most recent call last):
...
amploop.serve.scoring.RecordErrors: 2 problem(s) in the records: records.0.x: not a column of the model; ...
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd

from amploop.errors import SchemaError

if TYPE_CHECKING:
    from amploop.data import Schema
    from amploop.models.runtime import Predictor

__all__ = [
    "RecordErrors",
    "Rows",
    "Scores",
    "record_json_schema",
    "records_to_rows",
    "score",
    "score_rows",
    "table_to_records",
]

_MAX_ERRORS = 50  # per-field errors listed in one answer


class RecordErrors(SchemaError):
    """Records that do not fit the model's schema; ``details["errors"]`` lists each field's problem.

    Each error is ``{"loc": ["records", row, field], "msg": ..., "type": ...}``, the shape FastAPI
    uses for its own validation errors, so a client handles both the same way.
    """

    def __init__(self, errors: list[dict[str, Any]]) -> None:
        shown = "; ".join(f"{'.'.join(map(str, e['loc']))}: {e['msg']}" for e in errors[:2])
        more = "; ..." if len(errors) > 2 else ""
        super().__init__(f"{len(errors)} problem(s) in the records: {shown}{more}", errors=errors[:_MAX_ERRORS])


@dataclass(frozen=True)
class Scores:
    """A model's answer for n rows. ``probabilities`` and ``confidence`` are None for regression."""

    version: str  # NAME:VERSION that answered
    predictions: list[Any]
    probabilities: np.ndarray | None  # (n, classes), temperature-scaled
    classes: list[str] | None
    confidence: np.ndarray | None  # (n,) the largest calibrated probability of each row

    def __len__(self) -> int:
        return len(self.predictions)

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready lists: predictions, probabilities (per class name), confidence, model version."""
        out: dict[str, Any] = {"model_version": self.version, "predictions": _plain(self.predictions)}
        if self.probabilities is not None and self.classes is not None:
            out["probabilities"] = [dict(zip(self.classes, map(float, row), strict=True)) for row in self.probabilities]
        if self.confidence is not None:
            out["confidence"] = [float(c) for c in self.confidence]
        return out

    def frame(self) -> pd.DataFrame:
        """One row per input row: prediction, ``probability_<class>`` columns, confidence, model_version."""
        columns: dict[str, Any] = {"prediction": self.predictions}
        if self.probabilities is not None and self.classes is not None:
            for j, name in enumerate(self.classes):
                columns[f"probability_{name}"] = self.probabilities[:, j]
        if self.confidence is not None:
            columns["confidence"] = self.confidence
        columns["model_version"] = [self.version] * len(self.predictions)
        return pd.DataFrame(columns)


def score(
    predictor: Predictor, table: pd.DataFrame, arrays: dict[str, np.ndarray] | None = None, *, validate: bool = True
) -> Scores:
    """The predictor's answer for every row of ``table`` (and ``arrays``), in one batched pass."""
    return _scores(predictor, predictor.predict_outputs(table, arrays, validate=validate))


def score_rows(predictor: Predictor, rows: Rows) -> Scores:
    """:func:`score` for validated :class:`Rows`, encoded straight from their column lists (no table built)."""
    batch = predictor.encoder_.transform_columns(rows.columns, rows.arrays, rows.n)
    return _scores(predictor, predictor.outputs_for_batch(batch))


def _scores(predictor: Predictor, outputs: np.ndarray) -> Scores:
    version = predictor.reference or "unregistered"
    bundle = predictor.bundle
    if bundle.task != "classification":
        return Scores(version, [float(v) for v in outputs], None, None, None)
    classes = list(bundle.classes) if bundle.classes is not None else [str(i) for i in range(outputs.shape[1])]
    best = outputs.argmax(axis=1) if len(outputs) else np.zeros(0, dtype=np.int64)
    return Scores(version, [classes[i] for i in best], outputs, classes, outputs.max(axis=1) if len(outputs) else best)


@dataclass(frozen=True)
class Rows:
    """Validated records as plain column lists and image arrays: cheap to make per request and to join.

    A server validates each request into :class:`Rows` and encodes one batch from the joined
    lists (:func:`score_rows`): a DataFrame per request or per batch costs more than the model.
    """

    columns: dict[str, list[Any]]
    arrays: dict[str, np.ndarray]
    n: int

    @staticmethod
    def join(parts: list[Rows]) -> Rows:
        if len(parts) == 1:
            return parts[0]
        first = parts[0]
        columns = {name: [v for part in parts for v in part.columns[name]] for name in first.columns}
        arrays = {name: np.concatenate([part.arrays[name] for part in parts]) for name in first.arrays}
        return Rows(columns, arrays, sum(part.n for part in parts))


def records_to_rows(schema: Schema, records: list[dict[str, Any]], *, target: str | None = None) -> Rows:
    """JSON records → :class:`Rows` in the schema's column order, or :class:`RecordErrors`.

    Every problem is listed, not only the first: a missing field, an unknown field, a value of
    the wrong type, a missing value where the column had none, an image of the wrong shape.
    Unseen categories and numbers outside the training range are accepted: they are drift,
    which monitoring reports. The ``target`` column may be present and is ignored; text columns
    (IDs, free text), which the model does not read, may be left out.
    """
    errors: list[dict[str, Any]] = []
    features = [c for c in schema.columns if c.name != target]
    known = {c.name for c in schema.columns}
    columns: dict[str, list[Any]] = {c.name: [] for c in features if c.kind != "image"}
    images: dict[str, list[Any]] = {c.name: [] for c in features if c.kind == "image"}
    for row, record in enumerate(records):
        if not isinstance(record, dict):
            errors.append(_error(row, None, "each record must be a JSON object", "type_error"))
            continue
        for name in sorted(set(record) - known):
            errors.append(_error(row, name, "not a column of the model; remove it", "extra_forbidden"))
        for column in features:
            if column.name not in record:
                if column.kind == "text":  # IDs and free text: the model does not read them, so optional
                    columns[column.name].append(None)
                else:
                    errors.append(_error(row, column.name, "field required", "missing"))
                continue
            value = record[column.name]
            if column.kind == "image":
                images[column.name].append(_image(value, column, row, errors))
            else:
                columns[column.name].append(_value(value, column, row, errors))
    if errors:
        raise RecordErrors(errors)
    arrays = {
        name: np.stack(values) if values else np.zeros((0, *(schema[name].shape or ())))
        for name, values in images.items()
    }
    return Rows(columns, arrays, len(records))


def table_to_records(table: pd.DataFrame) -> list[dict[str, Any]]:
    """A table's rows as JSON-ready records: missing values (NaN, NaT, None) become ``None`` (JSON null).

    >>> table_to_records(pd.DataFrame({"age": [30.0, float("nan")], "sex": ["F", None]}))
    [{'age': 30.0, 'sex': 'F'}, {'age': None, 'sex': None}]
    """
    plain = table.astype(object).where(table.notna(), None)
    return [
        {k: v.item() if isinstance(v, np.generic) else v for k, v in row.items()} for row in plain.to_dict("records")
    ]


def record_json_schema(schema: Schema, *, target: str | None = None) -> dict[str, Any]:
    """The JSON Schema of one record: what :func:`records_to_rows` accepts, for the OpenAPI document."""
    properties: dict[str, Any] = {}
    for column in schema.columns:
        if column.name == target:
            continue
        if column.kind == "numeric":
            kinds: list[dict[str, Any]] = [{"type": "number"}]
        elif column.kind == "image":
            item: dict[str, Any] = {"type": "number"}
            for size in reversed(column.shape or ()):
                item = {"type": "array", "items": item, "minItems": size, "maxItems": size}
            kinds = [item]
        else:
            kinds = [{"type": "string"}, {"type": "number"}, {"type": "boolean"}]
        if column.nullable:
            kinds.append({"type": "null"})
        properties[column.name] = kinds[0] if len(kinds) == 1 else {"anyOf": kinds}
    return {
        "type": "object",
        "properties": properties,
        "required": [c.name for c in schema.columns if c.name in properties and c.kind != "text"],
        "additionalProperties": False,
    }


def _error(row: int, field: str | None, message: str, kind: str) -> dict[str, Any]:
    loc: list[Any] = ["records", row] + ([field] if field is not None else [])
    return {"loc": loc, "msg": message, "type": kind}


def _value(value: Any, column: Any, row: int, errors: list[dict[str, Any]]) -> Any:
    if value is None:
        if not column.nullable and column.kind != "text":
            errors.append(_error(row, column.name, "missing value, but the column had none in training", "missing"))
        return None
    if column.kind == "numeric":
        if isinstance(value, bool) or not isinstance(value, int | float):
            errors.append(_error(row, column.name, f"not a number: {value!r}", "float_type"))
            return None
        try:
            number = float(value)  # an integer beyond float's range overflows here
        except OverflowError:
            number = math.inf
        if not math.isfinite(number):
            errors.append(_error(row, column.name, "not a finite number", "finite_number"))
        return number
    if not isinstance(value, str | int | float | bool):
        errors.append(
            _error(row, column.name, f"a category is a string or a number, got {type(value).__name__}", "type_error")
        )
        return None
    return value


def _image(value: Any, column: Any, row: int, errors: list[dict[str, Any]]) -> np.ndarray:
    shape = tuple(column.shape or ())
    try:
        array = np.asarray(value, dtype=np.float64)
    except (TypeError, ValueError, OverflowError):
        errors.append(
            _error(row, column.name, f"an image is nested lists of numbers of shape {list(shape)}", "type_error")
        )
        return np.zeros(shape)
    if array.shape != shape:
        errors.append(
            _error(row, column.name, f"image of shape {list(array.shape)}, the model takes {list(shape)}", "shape")
        )
        return np.zeros(shape)
    if not np.isfinite(array).all():
        errors.append(_error(row, column.name, "the image holds values that are not finite numbers", "finite_number"))
    return array


def _plain(values: list[Any]) -> list[Any]:
    return [v.item() if isinstance(v, np.generic) else v for v in values]
