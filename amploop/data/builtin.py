"""The real datasets that ship inside amploop: ``adult``, ``mnist5k`` and ``rainfall``.

Each comes with a datasheet (the sections of Gebru et al., "Datasheets for Datasets", 2021),
its licence and attribution, in ``files/<name>.yaml``; nothing is downloaded at run time.

Examples
--------
>>> builtin_names()
['adult', 'mnist5k', 'rainfall']
>>> adult = load_builtin("adult")
>>> adult.n_rows, len(adult.splits["train"]), len(adult.splits["test"]), adult.target
(48842, 32561, 16281, 'income')
"""

from __future__ import annotations

from dataclasses import dataclass, field
from functools import cache
from importlib import resources
from typing import Any

import numpy as np
import pandas as pd
import yaml

from amploop.data.dataset import Dataset
from amploop.errors import DatasetNotFound, close_matches

__all__ = ["BuiltinInfo", "builtin_info", "builtin_names", "load_builtin"]

_FILES = resources.files("amploop.data") / "files"

ADULT_COLUMNS = [
    "age",
    "workclass",
    "fnlwgt",
    "education",
    "education_num",
    "marital_status",
    "occupation",
    "relationship",
    "race",
    "sex",
    "capital_gain",
    "capital_loss",
    "hours_per_week",
    "native_country",
    "income",
]
RAINFALL_COLUMNS = [
    "temperature",
    "dew_point",
    "sea_level_pressure",
    "visibility",
    "average_wind_speed",
    "max_sustained_wind_speed",
    "minimum_temperature",
    "maximum_temperature",
    "rain",
]


@dataclass(frozen=True)
class BuiltinInfo:
    """What the datasheet file says about a built-in dataset."""

    name: str
    title: str
    task: str
    target: str
    rows: int
    summary: str
    licence: str
    attribution: str
    citation: str
    files: list[dict[str, str]] = field(default_factory=list)
    slice_columns: list[str] = field(default_factory=list)  # the groups evaluation reports by default
    datasheet: dict[str, str] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return dict(self.__dict__)


def builtin_names() -> list[str]:
    return sorted(p.name.removesuffix(".yaml") for p in _FILES.iterdir() if p.name.endswith(".yaml"))


def _unknown(name: str) -> DatasetNotFound:
    names = builtin_names()
    close, hint = close_matches(name, names)
    return DatasetNotFound(
        f"no built-in dataset '{name}'; {hint}built-in datasets: {', '.join(names)}",
        close_matches=close,
    )


@cache
def builtin_info(name: str) -> BuiltinInfo:
    if name not in builtin_names():
        raise _unknown(name)
    data = yaml.safe_load((_FILES / f"{name}.yaml").read_text(encoding="utf-8"))
    return BuiltinInfo(**data)


def load_builtin(name: str) -> Dataset:
    """Load a built-in dataset by name (a fresh copy each call; parsing is cached)."""
    info = builtin_info(name)
    table, arrays, splits = _PARSED[name]()
    categorical = [c for c in table.columns if c == info.target]
    return Dataset.from_table(
        name,
        table.copy(),
        target=info.target,
        task=info.task,  # type: ignore[arg-type]
        arrays={k: v.copy() for k, v in arrays.items()},
        categorical=categorical,
        source=f"builtin:{name}",
        splits=splits,
    )


Parsed = tuple[pd.DataFrame, dict[str, np.ndarray], dict[str, np.ndarray]]


@cache
def _parse_adult() -> Parsed:
    def read(file: str, skiprows: int) -> pd.DataFrame:
        with (_FILES / file).open("rb") as fh:
            return pd.read_csv(
                fh,
                compression="gzip",
                header=None,
                names=ADULT_COLUMNS,
                skipinitialspace=True,
                na_values=["?"],
                skiprows=skiprows,
            )

    train, test = read("adult.data.gz", 0), read("adult.test.gz", 1)  # test line 1 is a comment
    test["income"] = test["income"].str.rstrip(".")
    table = pd.concat([train, test], ignore_index=True)
    for column in table.columns:
        if table[column].dtype == object or pd.api.types.is_string_dtype(table[column]):
            table[column] = table[column].astype(object)
    splits = {"train": np.arange(len(train)), "test": np.arange(len(train), len(table))}
    return table, {}, splits


@cache
def _parse_mnist5k() -> Parsed:
    with (_FILES / "mnist5k.csv.gz").open("rb") as fh:
        raw = pd.read_csv(fh, compression="gzip", header=None, dtype=np.uint8).to_numpy()
    images = np.ascontiguousarray(raw[:, :-1].reshape(-1, 28, 28))
    table = pd.DataFrame({"label": raw[:, -1].astype(np.int64)})
    return table, {"image": images}, {}


@cache
def _parse_rainfall() -> Parsed:
    with (_FILES / "rainfall.csv.gz").open("rb") as fh:
        table = pd.read_csv(fh, compression="gzip", header=0, usecols=range(1, 10))
    table.columns = RAINFALL_COLUMNS
    table["rain"] = table["rain"].astype(np.int64)
    return table, {}, {}


_PARSED = {"adult": _parse_adult, "mnist5k": _parse_mnist5k, "rainfall": _parse_rainfall}
