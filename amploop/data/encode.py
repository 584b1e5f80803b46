"""Fitted feature encoding, saved as JSON beside every model.

:class:`FeatureEncoder` turns a table into the tensors a network takes:

- numeric columns are standardised with the training mean and standard deviation; a missing
  value becomes the mean (0 after scaling);
- categorical columns become integer indices ``1..K`` over the training categories; index 0 is
  the shared bucket for missing values and categories never seen in training;
- image columns are scaled to [0, 1] by the training maximum (255 for 8-bit images) and given
  a channel axis when they have none;
- text columns are not encoded (recorded in ``ignored_columns_``).

:class:`LabelEncoder` maps class labels to indices ``0..C-1`` and back.

Examples
--------
>>> import pandas as pd
>>> table = pd.DataFrame({"age": [20.0, 40.0, None], "sex": ["F", "M", "F"]})
>>> enc = FeatureEncoder().fit(table)
>>> batch = enc.transform(pd.DataFrame({"age": [30.0], "sex": ["X"]}))
>>> batch.numeric.round(3).tolist(), batch.categorical.tolist()
([[0.0]], [[0]])
>>> FeatureEncoder.from_json(enc.to_json()).categories_
{'sex': ['F', 'M']}
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd

from amploop.data.schema import Schema, infer_schema
from amploop.errors import SchemaError

__all__ = ["EncodedBatch", "FeatureEncoder", "LabelEncoder"]

ENCODER_FORMAT = 1
MAX_ABS_ENCODED = 1e6  # encoded values are clipped here: see FeatureEncoder.transform


@dataclass(frozen=True)
class EncodedBatch:
    """Model inputs: ``numeric`` (n, k) float32, ``categorical`` (n, m) int64, ``images`` float32."""

    numeric: np.ndarray
    categorical: np.ndarray
    images: dict[str, np.ndarray] = field(default_factory=dict)

    def __len__(self) -> int:
        return int(self.numeric.shape[0])


class FeatureEncoder:
    """Learn the encoding of a table's feature columns on training data; apply it anywhere."""

    def __init__(self, *, exclude: Iterable[str] = ()) -> None:
        self.exclude = tuple(exclude)

    def fit(
        self,
        table: pd.DataFrame,
        arrays: Mapping[str, np.ndarray] | None = None,
        *,
        schema: Schema | None = None,
    ) -> FeatureEncoder:
        schema = schema or infer_schema(table, arrays)
        skip = set(self.exclude)
        columns = [c for c in schema.columns if c.name not in skip]
        self.numeric_columns_ = [c.name for c in columns if c.kind == "numeric"]
        self.categorical_columns_ = [c.name for c in columns if c.kind == "categorical"]
        self.image_columns_ = [c.name for c in columns if c.kind == "image"]
        self.ignored_columns_ = [c.name for c in columns if c.kind == "text"]
        self.means_: dict[str, float] = {}
        self.scales_: dict[str, float] = {}
        for name in self.numeric_columns_:
            values = pd.to_numeric(table[name], errors="coerce").astype("float64")
            mean = float(values.mean()) if values.notna().any() else 0.0
            std = float(values.std(ddof=0)) if values.notna().sum() > 1 else 0.0
            self.means_[name] = mean
            self.scales_[name] = std if std > 0 else 1.0  # a constant column stays at 0
        self.categories_: dict[str, list[str]] = {
            name: sorted({str(v) for v in table[name].dropna().unique()}) for name in self.categorical_columns_
        }
        self.image_scales_: dict[str, float] = {}
        self.image_shapes_: dict[str, list[int]] = {}
        for name in self.image_columns_:
            array = np.asarray((arrays or {})[name])
            self.image_scales_[name] = 255.0 if array.dtype == np.uint8 else max(float(np.abs(array).max()), 1.0)
            self.image_shapes_[name] = list(_with_channel(array[:1]).shape[1:])
        self._index = {name: {c: i + 1 for i, c in enumerate(cats)} for name, cats in self.categories_.items()}
        return self

    @property
    def cardinalities_(self) -> list[int]:
        """Embedding table sizes per categorical column: its categories plus the unknown bucket."""
        return [len(self.categories_[name]) + 1 for name in self.categorical_columns_]

    def transform(self, table: pd.DataFrame, arrays: Mapping[str, np.ndarray] | None = None) -> EncodedBatch:
        missing = [c for c in self.numeric_columns_ + self.categorical_columns_ if c not in table.columns]
        missing += [c for c in self.image_columns_ if c not in (arrays or {})]
        if missing:
            raise SchemaError(
                f"missing columns: {', '.join(missing)}; the encoder was fitted with them",
                missing_columns=missing,
            )
        n = len(table) if len(table.columns) or not arrays else len(next(iter(arrays.values())))

        def numbers(name: str) -> np.ndarray:
            return pd.to_numeric(table[name], errors="coerce").to_numpy(dtype="float64", na_value=np.nan)

        def categories(name: str) -> Iterable[Any]:
            column = table[name]
            return column.astype(object).where(column.notna(), None)

        return self._encode(n, numbers, categories, arrays)

    def transform_columns(
        self, columns: Mapping[str, Sequence[Any]], arrays: Mapping[str, np.ndarray] | None, n: int
    ) -> EncodedBatch:
        """:meth:`transform` for plain column lists of JSON values (``None`` is missing), as a server holds them.

        The same encoding without building a DataFrame, which costs more than the encoding itself
        for the few dozen rows of a served batch. Numeric values must be numbers or ``None``.
        """
        missing = [c for c in self.numeric_columns_ + self.categorical_columns_ if c not in columns]
        missing += [c for c in self.image_columns_ if c not in (arrays or {})]
        if missing:
            raise SchemaError(f"missing columns: {', '.join(missing)}; the encoder was fitted with them")

        def numbers(name: str) -> np.ndarray:
            return np.array(columns[name], dtype=np.float64)  # None becomes NaN

        def categories(name: str) -> Iterable[Any]:
            return (None if v is None or v != v else v for v in columns[name])  # NaN is missing, as in pandas

        return self._encode(n, numbers, categories, arrays)

    def _encode(
        self,
        n: int,
        numbers: Callable[[str], np.ndarray],
        categories: Callable[[str], Iterable[Any]],
        arrays: Mapping[str, np.ndarray] | None,
    ) -> EncodedBatch:
        numeric = np.zeros((n, len(self.numeric_columns_)), dtype=np.float32)
        for j, name in enumerate(self.numeric_columns_):
            values = numbers(name)
            with np.errstate(over="ignore"):
                scaled = (values - self.means_[name]) / self.scales_[name]
            # No training row is more than sqrt(n) standard deviations from the mean, so this clip
            # changes no training data; it keeps an absurd request value (1e300) from becoming inf
            # in float32 and NaN in the model's answer.
            numeric[:, j] = np.clip(np.where(np.isnan(scaled), 0.0, scaled), -MAX_ABS_ENCODED, MAX_ABS_ENCODED)
        categorical = np.zeros((n, len(self.categorical_columns_)), dtype=np.int64)
        for j, name in enumerate(self.categorical_columns_):
            index = self._index[name]
            categorical[:, j] = [0 if v is None else index.get(str(v), 0) for v in categories(name)]
        images = {}
        for name in self.image_columns_:
            array = _with_channel(np.asarray(arrays[name]))  # type: ignore[index]
            if list(array.shape[1:]) != self.image_shapes_[name]:
                raise SchemaError(
                    f"column '{name}': images must have shape {self.image_shapes_[name]} "
                    f"(channels first), got {list(array.shape[1:])}"
                )
            with np.errstate(over="ignore", invalid="ignore"):
                scaled_images = array.astype(np.float32) / np.float32(self.image_scales_[name])
            if not np.isfinite(scaled_images).all():  # only a request can hold such values; as for numerics
                scaled_images = np.clip(np.nan_to_num(scaled_images, nan=0.0), -MAX_ABS_ENCODED, MAX_ABS_ENCODED)
            images[name] = scaled_images
        return EncodedBatch(numeric=numeric, categorical=categorical, images=images)

    def to_dict(self) -> dict[str, Any]:
        return {
            "format": ENCODER_FORMAT,
            "exclude": list(self.exclude),
            "numeric_columns": self.numeric_columns_,
            "means": self.means_,
            "scales": self.scales_,
            "categorical_columns": self.categorical_columns_,
            "categories": self.categories_,
            "image_columns": self.image_columns_,
            "image_scales": self.image_scales_,
            "image_shapes": self.image_shapes_,
            "ignored_columns": self.ignored_columns_,
        }

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), sort_keys=True)

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> FeatureEncoder:
        if data.get("format") != ENCODER_FORMAT:
            raise SchemaError(
                f"encoder format {data.get('format')!r} is not {ENCODER_FORMAT}; "
                "retrain the model with this amploop version"
            )
        enc = cls(exclude=data.get("exclude", ()))
        enc.numeric_columns_ = list(data["numeric_columns"])
        enc.means_ = {k: float(v) for k, v in data["means"].items()}
        enc.scales_ = {k: float(v) for k, v in data["scales"].items()}
        enc.categorical_columns_ = list(data["categorical_columns"])
        enc.categories_ = {k: list(v) for k, v in data["categories"].items()}
        enc.image_columns_ = list(data["image_columns"])
        enc.image_scales_ = {k: float(v) for k, v in data["image_scales"].items()}
        enc.image_shapes_ = {k: list(v) for k, v in data["image_shapes"].items()}
        enc.ignored_columns_ = list(data["ignored_columns"])
        enc._index = {n: {c: i + 1 for i, c in enumerate(cats)} for n, cats in enc.categories_.items()}
        return enc

    @classmethod
    def from_json(cls, text: str) -> FeatureEncoder:
        return cls.from_dict(json.loads(text))


def _with_channel(array: np.ndarray) -> np.ndarray:
    """(n, H, W) images get a channel axis: (n, 1, H, W)."""
    return array[:, None] if array.ndim == 3 else array


class LabelEncoder:
    """Class labels to indices 0..C-1 (sorted by their text) and back.

    >>> enc = LabelEncoder().fit(pd.Series([">50K", "<=50K", ">50K"]))
    >>> enc.classes_, enc.transform(pd.Series(["<=50K", ">50K"])).tolist()
    (['<=50K', '>50K'], [0, 1])
    """

    def fit(self, labels: pd.Series) -> LabelEncoder:
        present = labels.dropna().unique()
        try:
            ordered = sorted(present)
        except TypeError:
            ordered = sorted(present, key=str)
        self.classes_ = [str(v) for v in ordered]
        self._index = {c: i for i, c in enumerate(self.classes_)}
        return self

    def transform(self, labels: pd.Series) -> np.ndarray:
        text = labels.astype(object).where(labels.notna(), None)
        unknown = sorted({str(v) for v in text if v is None or str(v) not in self._index})
        if unknown:
            raise SchemaError(f"labels not seen in training: {', '.join(unknown[:10])}", unknown_labels=unknown[:50])
        return np.array([self._index[str(v)] for v in text], dtype=np.int64)

    def inverse_transform(self, indices: np.ndarray) -> list[str]:
        return [self.classes_[int(i)] for i in indices]

    def to_dict(self) -> dict[str, Any]:
        return {"classes": self.classes_}

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> LabelEncoder:
        enc = cls()
        enc.classes_ = [str(c) for c in data["classes"]]
        enc._index = {c: i for i, c in enumerate(enc.classes_)}
        return enc
