"""Profiles: what a set of rows looks like, column by column, in a form that adds up.

A reference profile is computed once from a model version's training and validation rows and
stored; each window of traffic gets a profile with the *same* bin edges and categories, so a
window is compared with the reference without reading the reference rows again, and window
profiles from several server replicas merge by adding their counts.

- numeric columns: a fixed-edge histogram. The edges are the reference's percentiles (100
  bins) with its smallest and largest value, or, when the reference holds at most 100
  distinct values, the values themselves, so each value has its own bin and the binned
  statistics are the exact ones. Bin ``j`` holds values in ``(edges[j-1], edges[j]]``; the
  first and last bins are open, and the last holds only values above anything the reference had. Beside the counts:
  missing values, the sum and sum of squares (mean and standard deviation), the smallest
  and largest value.
- categorical columns: counts of the reference's categories (its 200 most frequent), one
  count for every other value, and the missing values.
- image columns: the histogram of each image's mean intensity, as a numeric column.
- text columns (free text, identifiers) are not profiled: their values rarely repeat.

A quantile sketch (KLL) would keep quantiles to a known error for any data, but two windows
compared with one reference only need their counts on the reference's edges: a histogram on
fixed edges is exact for that, merges by addition, and costs one ``searchsorted`` per value.

Examples
--------
>>> import numpy as np, pandas as pd
>>> rng = np.random.default_rng(0)
>>> table = pd.DataFrame({"age": rng.normal(40, 10, 1000), "city": rng.choice(["a", "b"], 1000)})
>>> reference = Profile.from_table(table, {"age": "numeric", "city": "categorical"})
>>> reference.n_rows, len(reference.columns["age"].counts), reference.columns["city"].categories
(1000, 102, ['b', 'a'])
>>> first, second = reference.empty().add(table[:400]), reference.empty().add(table[400:])
>>> first.merge(second).columns["age"].counts.tolist() == reference.columns["age"].counts.tolist()
True
"""

from __future__ import annotations

import io
import json
import os
from collections.abc import Iterable, Mapping
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd

from amploop.errors import DataError, UsageError

__all__ = ["ColumnProfile", "Profile", "PROFILED_KINDS"]

BINS = 100  # percentile bins per numeric column
MAX_CATEGORIES = 200  # reference categories kept by name; the rest count as one
EDGE_SAMPLE_ROWS = 100_000  # percentiles of a larger reference come from a seeded sample of this many values
PARALLEL_ROWS = 50_000  # from this many rows, columns are counted on several threads
OTHER = "(other)"  # a value the reference's kept categories do not hold
PROFILED_KINDS = ("numeric", "categorical", "image")


@dataclass
class ColumnProfile:
    """One column's counts: numeric (``edges`` and bin ``counts``) or categorical (``categories``)."""

    name: str
    kind: str  # numeric or categorical (an image column is profiled by its mean intensity, as numeric)
    counts: np.ndarray  # int64: one per bin (numeric: len(edges) + 1) or per category plus OTHER
    missing: int = 0
    edges: np.ndarray | None = None  # numeric: sorted cut points
    categories: list[str] | None = None  # categorical: the kept reference categories, as text
    sums: np.ndarray | None = None  # numeric: the sum of the values in each bin (each bin's mean, for distances)
    total: float = 0.0  # numeric: sum and sum of squares of the present values
    total_sq: float = 0.0
    low: float = float("inf")
    high: float = float("-inf")
    source_kind: str = ""  # the schema's kind (image columns are numeric here)
    _index: dict[str, int] = field(default_factory=dict, repr=False)
    _lookup: tuple[float, float, np.ndarray, np.ndarray] | None = field(default=None, repr=False)

    def __post_init__(self) -> None:
        if self.categories is not None:
            self._index = {c: i for i, c in enumerate(self.categories)}
        if self.kind == "numeric" and self.sums is None:
            self.sums = np.zeros(len(self.counts), np.float64)
        self.source_kind = self.source_kind or self.kind

    @property
    def n(self) -> int:
        """Present (not missing) values."""
        return int(self.counts.sum())

    @property
    def mean(self) -> float | None:
        return self.total / self.n if self.n else None

    @property
    def std(self) -> float | None:
        """The population standard deviation (numpy's default), which scales the Wasserstein distance."""
        n = self.n
        if n < 1:
            return None
        variance = max(self.total_sq - self.total * self.total / n, 0.0) / n
        return float(np.sqrt(variance))

    def empty(self) -> ColumnProfile:
        """A profile with the same edges or categories and no rows."""
        return ColumnProfile(
            self.name,
            self.kind,
            np.zeros_like(self.counts),
            edges=self.edges,
            categories=self.categories,
            source_kind=self.source_kind,
        )

    def add_values(self, values: Any) -> ColumnProfile:
        """Count more values (a pandas Series, numpy array or list) into this profile; returns self."""
        if self.kind == "numeric":
            numbers = _as_numbers(self.name, values)
            present = numbers[~np.isnan(numbers)]
            self.missing += int(len(numbers) - len(present))
            if len(present):
                assert self.edges is not None
                bins = self._bin_index(present)
                self.counts += np.bincount(bins, minlength=len(self.counts))
                self.sums += np.bincount(bins, weights=present, minlength=len(self.counts))  # type: ignore[operator]
                self.total += float(present.sum())
                self.total_sq += float(np.dot(present, present))
                self.low, self.high = min(self.low, float(present.min())), max(self.high, float(present.max()))
            return self
        series = pd.Series(values, copy=False)
        self.missing += int(series.isna().sum())
        counts = series.value_counts(dropna=True)
        return self.add_counts({str(value): int(count) for value, count in counts.items() if count})

    def _bin_index(self, values: np.ndarray) -> np.ndarray:
        """``searchsorted(edges, values)``, twice as fast: a uniform grid guesses the bin, the edges check it.

        One binary search per value was most of the time to profile a million rows; the grid's
        guess is right except in the few grid cells an edge cuts, and those values are searched.
        """
        edges = self.edges
        assert edges is not None
        if len(edges) < 16 or not edges[-1] > edges[0]:
            return np.searchsorted(edges, values)
        if self._lookup is None:
            cells = 64 * len(edges)
            scale = cells / (edges[-1] - edges[0])
            table = np.searchsorted(edges, edges[0] + np.arange(cells + 1) / scale)
            self._lookup = (float(edges[0]), scale, table, np.concatenate([[-np.inf], edges, [np.inf]]))
        low, scale, table, padded = self._lookup
        guess = table[np.clip((values - low) * scale, 0, len(table) - 1).astype(np.intp)]
        wrong = np.flatnonzero((padded[guess] >= values) | (values > padded[guess + 1]))
        guess[wrong] = np.searchsorted(edges, values[wrong])
        return guess

    def add_counts(self, counts: Mapping[str, int]) -> ColumnProfile:
        """Count categorical values given as ``{value as text: count}``; returns self."""
        other = len(self.counts) - 1
        for value, count in counts.items():
            self.counts[self._index.get(value, other)] += int(count)
        return self

    def merge(self, other: ColumnProfile) -> ColumnProfile:
        """The profile of both sets of rows; both must come from the same reference."""
        same = (
            self.kind == other.kind
            and len(self.counts) == len(other.counts)
            and (self.edges is None or np.array_equal(self.edges, other.edges))  # type: ignore[arg-type]
            and self.categories == other.categories
        )
        if not same:
            raise UsageError(f"column '{self.name}': profiles with other edges or categories cannot merge")
        merged = self.empty()
        merged.counts = self.counts + other.counts
        merged.missing = self.missing + other.missing
        if self.sums is not None and other.sums is not None:
            merged.sums = self.sums + other.sums
        merged.total, merged.total_sq = self.total + other.total, self.total_sq + other.total_sq
        merged.low, merged.high = min(self.low, other.low), max(self.high, other.high)
        return merged

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {
            "name": self.name,
            "kind": self.kind,
            "source_kind": self.source_kind,
            "counts": self.counts.tolist(),
            "missing": self.missing,
        }
        if self.kind == "numeric":
            out.update(
                edges=self.edges.tolist() if self.edges is not None else [],
                sums=self.sums.tolist() if self.sums is not None else [],
                total=self.total,
                total_sq=self.total_sq,
                low=self.low if np.isfinite(self.low) else None,
                high=self.high if np.isfinite(self.high) else None,
            )
        else:
            out["categories"] = self.categories
        return out

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> ColumnProfile:
        numeric = data["kind"] == "numeric"
        return cls(
            name=data["name"],
            kind=data["kind"],
            source_kind=data.get("source_kind", data["kind"]),
            counts=np.asarray(data["counts"], dtype=np.int64),
            missing=int(data["missing"]),
            edges=np.asarray(data["edges"], dtype=np.float64) if numeric else None,
            sums=np.asarray(data["sums"], dtype=np.float64) if numeric else None,
            categories=None if numeric else list(data["categories"]),
            total=float(data.get("total", 0.0)),
            total_sq=float(data.get("total_sq", 0.0)),
            low=float("inf") if data.get("low") is None else float(data["low"]),
            high=float("-inf") if data.get("high") is None else float(data["high"]),
        )


def numeric_column(name: str, edges: np.ndarray, *, source_kind: str = "numeric") -> ColumnProfile:
    """An empty numeric column profile on ``edges``."""
    return ColumnProfile(name, "numeric", np.zeros(len(edges) + 1, np.int64), edges=edges, source_kind=source_kind)


def categorical_column(name: str, categories: list[str]) -> ColumnProfile:
    """An empty categorical column profile keeping ``categories`` by name (others count as one)."""
    return ColumnProfile(name, "categorical", np.zeros(len(categories) + 1, np.int64), categories=categories)


def _as_numbers(name: str, values: Any) -> np.ndarray:
    try:
        return np.asarray(pd.to_numeric(pd.Series(values, copy=False), errors="raise"), dtype=np.float64)
    except (TypeError, ValueError) as exc:
        raise DataError(f"column '{name}' should hold numbers ({exc}); check the column's type") from None


def numeric_edges(values: np.ndarray, *, bins: int = BINS, seed: int = 0) -> np.ndarray:
    """Cut points for a numeric column: each distinct value when there are at most ``bins``, else percentiles.

    >>> numeric_edges(np.array([3.0, 1.0, 2.0, 2.0])).tolist()
    [1.0, 2.0, 3.0]
    >>> len(numeric_edges(np.arange(10_000.0)))
    101
    """
    present = values[~np.isnan(values)]
    if len(present) > EDGE_SAMPLE_ROWS:  # drawn with replacement: a permutation of millions costs more than it adds
        present = present[np.random.default_rng(seed).integers(0, len(present), EDGE_SAMPLE_ROWS)]
    ordered = np.sort(present)
    distinct = ordered[np.concatenate([[True], ordered[1:] != ordered[:-1]])] if len(ordered) else ordered
    if len(distinct) <= bins:
        return distinct  # bin j holds exactly distinct[j]; the last bin what lies above them all
    # the (j/bins)-quantiles by linear interpolation, read off the sorted values (numpy's default method)
    position = np.linspace(0, 1, bins + 1)[1:-1] * (len(ordered) - 1)
    below = np.floor(position).astype(np.intp)
    above = np.minimum(below + 1, len(ordered) - 1)
    cut = ordered[below] + (ordered[above] - ordered[below]) * (position - below)
    return np.unique(np.r_[ordered[0], cut, ordered[-1]])  # the outer bins: below the smallest, above the largest


def reference_categories(values: pd.Series, known: Iterable[Any] = ()) -> list[str]:
    """The categories kept by name: the schema's known ones first, then the most frequent, up to 200."""
    present = values.dropna().astype(str).value_counts()
    kept = [str(v) for v in known][:MAX_CATEGORIES]
    for value in present.index:
        if len(kept) >= MAX_CATEGORIES:
            break
        if value not in kept and value != OTHER:
            kept.append(value)
    return kept


def image_means(images: np.ndarray) -> np.ndarray:
    """Each image's mean intensity: the one number per image that profiles compare."""
    images = np.asarray(images)
    return images.reshape(len(images), -1).astype(np.float64).mean(axis=1) if len(images) else np.zeros(0)


@dataclass
class Profile:
    """Column profiles of a set of rows, plus the model's outputs on them (``outputs``)."""

    columns: dict[str, ColumnProfile]
    n_rows: int = 0
    outputs: dict[str, ColumnProfile] = field(default_factory=dict)  # per-class probability, prediction, confidence
    skipped: dict[str, str] = field(default_factory=dict)  # column -> why it is not profiled
    meta: dict[str, Any] = field(default_factory=dict)  # e.g. the model version and calibration record

    @classmethod
    def from_table(
        cls,
        table: pd.DataFrame,
        kinds: Mapping[str, str],
        *,
        arrays: Mapping[str, np.ndarray] | None = None,
        categories: Mapping[str, Iterable[Any]] | None = None,
        bins: int = BINS,
        seed: int = 0,
    ) -> Profile:
        """The reference profile of ``table`` (and image ``arrays``); ``kinds`` maps each column to its kind."""
        columns: dict[str, ColumnProfile] = {}
        skipped: dict[str, str] = {}
        for name, kind in kinds.items():
            if kind in ("numeric", "image"):
                values = image_means((arrays or {})[name]) if kind == "image" else _as_numbers(name, table[name])
                columns[name] = numeric_column(name, numeric_edges(values, bins=bins, seed=seed), source_kind=kind)
            elif kind == "categorical":
                kept = reference_categories(table[name], (categories or {}).get(name, ()))
                columns[name] = categorical_column(name, kept)
            else:
                skipped[name] = f"{kind} column: values rarely repeat, so they are not compared"
        return cls(columns, skipped=skipped).add(table, arrays)

    def empty(self) -> Profile:
        """A profile of no rows with this one's edges and categories: the start of a window."""
        return Profile(
            {n: c.empty() for n, c in self.columns.items()},
            outputs={n: c.empty() for n, c in self.outputs.items()},
            skipped=dict(self.skipped),
            meta=dict(self.meta),
        )

    def add(self, table: pd.DataFrame, arrays: Mapping[str, np.ndarray] | None = None) -> Profile:
        """Count the rows of ``table`` (and image ``arrays``) in; returns self."""
        for name, column in self.columns.items():
            if column.source_kind == "image" and (arrays is None or name not in arrays):
                raise DataError(f"image column '{name}' is missing from the rows; send it with each row")
            if column.source_kind != "image" and name not in table.columns:
                raise DataError(f"column '{name}' is missing from the rows; every profiled column must be present")

        def count(column: ColumnProfile) -> None:
            name = column.name
            column.add_values(image_means(arrays[name]) if column.source_kind == "image" else table[name])  # type: ignore[index]

        if len(table) >= PARALLEL_ROWS and len(self.columns) > 1:
            with ThreadPoolExecutor(max_workers=min(4, os.cpu_count() or 1)) as pool:  # numpy releases the GIL
                list(pool.map(count, self.columns.values()))
        else:
            for column in self.columns.values():
                count(column)
        self.n_rows += len(table)
        return self

    def add_outputs(self, probabilities: np.ndarray, classes: list[str], *, reference: bool = False) -> Profile:
        """Count the model's outputs: per-class probability, predicted class and confidence; returns self.

        ``reference=True`` on a reference profile sets the edges from these outputs first.
        """
        probabilities = np.asarray(probabilities, dtype=np.float64)
        columns = {f"p({c})": probabilities[:, i] for i, c in enumerate(classes)}
        columns["confidence"] = probabilities.max(axis=1) if len(probabilities) else np.zeros(0)
        if reference:
            self.outputs = {name: numeric_column(name, numeric_edges(values)) for name, values in columns.items()}
            self.outputs["prediction"] = categorical_column("prediction", [str(c) for c in classes])
        if not self.outputs:
            raise UsageError("this profile has no output edges; profile the reference's outputs first")
        for name, values in columns.items():
            self.outputs[name].add_values(values)
        predicted = np.asarray(classes, dtype=object)[probabilities.argmax(axis=1)] if len(probabilities) else []
        self.outputs["prediction"].add_values(pd.Series(predicted, dtype=object))
        return self

    def merge(self, other: Profile) -> Profile:
        """The profile of both sets of rows (two replicas' windows, two halves of a file)."""
        if set(self.columns) != set(other.columns) or set(self.outputs) != set(other.outputs):
            raise UsageError("profiles of other columns cannot merge; both must start from the same reference")
        return Profile(
            {n: c.merge(other.columns[n]) for n, c in self.columns.items()},
            n_rows=self.n_rows + other.n_rows,
            outputs={n: c.merge(other.outputs[n]) for n, c in self.outputs.items()},
            skipped=dict(self.skipped),
            meta=dict(self.meta),
        )

    def to_dict(self) -> dict[str, Any]:
        return {
            "n_rows": self.n_rows,
            "columns": [c.to_dict() for c in self.columns.values()],
            "outputs": [c.to_dict() for c in self.outputs.values()],
            "skipped": self.skipped,
            "meta": self.meta,
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Profile:
        return cls(
            {c["name"]: ColumnProfile.from_dict(c) for c in data["columns"]},
            n_rows=int(data["n_rows"]),
            outputs={c["name"]: ColumnProfile.from_dict(c) for c in data.get("outputs", [])},
            skipped=dict(data.get("skipped", {})),
            meta=dict(data.get("meta", {})),
        )

    def to_bytes(self, samples: Mapping[str, np.ndarray] | None = None) -> bytes:
        """The profile as one ``.npz`` file: its JSON and any sample arrays (no pickles)."""
        buffer = io.BytesIO()
        arrays = {f"sample_{k}": np.ascontiguousarray(v) for k, v in (samples or {}).items()}
        np.savez_compressed(buffer, profile=np.array(json.dumps(self.to_dict())), **arrays)
        return buffer.getvalue()

    @classmethod
    def from_bytes(cls, data: bytes) -> tuple[Profile, dict[str, np.ndarray]]:
        """A profile and its sample arrays, read back from :meth:`to_bytes`."""
        with np.load(io.BytesIO(data), allow_pickle=False) as stored:
            profile = cls.from_dict(json.loads(str(stored["profile"])))
            samples = {k.removeprefix("sample_"): stored[k] for k in stored.files if k.startswith("sample_")}
        return profile, samples
