"""Reading data: CSV, Parquet and NumPy files, in-memory arrays, and built-in datasets by name.

Every reader returns a :class:`~amploop.data.dataset.Dataset`. A file that cannot be read
raises :class:`DataError` saying which file and, for text files, which line is wrong. NumPy
files are read with ``allow_pickle=False``: an object array in a ``.npy`` file is refused.

Examples
--------
>>> import numpy as np
>>> ds = from_numpy(np.array([[0.1, 1.0], [0.2, 2.0], [0.3, 0.5]]), np.array([0, 1, 0]),
...                 feature_names=["a", "b"])
>>> ds.schema.names, ds.target, ds.task
(['a', 'b', 'target'], 'target', 'classification')
"""

from __future__ import annotations

import difflib
import re
import zipfile
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

from amploop.data.builtin import builtin_names, load_builtin
from amploop.data.dataset import Dataset
from amploop.errors import DataError, DatasetNotFound

__all__ = ["from_numpy", "open_dataset", "read_csv", "read_numpy", "read_parquet"]

SUFFIXES = (".csv", ".csv.gz", ".tsv", ".parquet", ".pq", ".npy", ".npz")
_PANDAS_LINE = re.compile(r"Expected (\d+) fields in line (\d+), saw (\d+)")


def open_dataset(ref: str | Path, *, target: str | None = None) -> Dataset:
    """A built-in dataset by name, or a file by path (its suffix picks the reader)."""
    text = str(ref)
    if text in builtin_names():
        dataset = load_builtin(text)
        if target is not None and target != dataset.target:
            raise DataError(f"built-in dataset '{text}' has target '{dataset.target}', not '{target}'")
        return dataset
    path = Path(text)
    if not path.exists():
        close = difflib.get_close_matches(text, builtin_names(), n=3)
        hint = f"did you mean {', '.join(close)}? " if close else ""
        raise DatasetNotFound(
            f"'{text}' is neither a file nor a built-in dataset; {hint}built-in datasets: {', '.join(builtin_names())}",
            close_matches=close,
        )
    name = path.name.lower()
    if name.endswith((".csv", ".csv.gz")):
        return read_csv(path, target=target)
    if name.endswith(".tsv"):
        return read_csv(path, target=target, sep="\t")
    if name.endswith((".parquet", ".pq")):
        return read_parquet(path, target=target)
    if name.endswith((".npy", ".npz")):
        return read_numpy(path, target=target)
    raise DataError(f"{path}: unknown file type; amploop reads {', '.join(SUFFIXES)}")


def read_csv(path: str | Path, *, target: str | None = None, sep: str = ",") -> Dataset:
    """Read a CSV file with a header line; empty cells and ``NA``/``NaN`` are missing values."""
    path = Path(path)
    try:
        table = pd.read_csv(path, sep=sep, skipinitialspace=True)
    except pd.errors.ParserError as exc:
        found = _PANDAS_LINE.search(str(exc))
        if found:
            expected, line, saw = found.groups()
            raise DataError(
                f"{path} line {line}: expected {expected} fields, saw {saw}; fix that line or "
                f"quote the fields that contain '{sep}'",
                line=int(line),
            ) from None
        raise DataError(f"{path}: not valid CSV ({str(exc).strip().splitlines()[-1]})") from None
    except pd.errors.EmptyDataError:
        raise DataError(f"{path} is empty; a CSV file needs a header line and rows") from None
    except UnicodeDecodeError as exc:
        raise DataError(f"{path}: not UTF-8 text (byte {exc.start}); save the file as UTF-8") from None
    except OSError as exc:
        raise DataError(f"{path}: cannot read ({exc.strerror or exc})") from None
    if table.empty:
        raise DataError(f"{path} has a header but no rows")
    unnamed = [c for c in table.columns if str(c).startswith("Unnamed: ")]
    if unnamed:
        raise DataError(f"{path}: the header has {len(unnamed)} empty column name(s); name every column")
    return Dataset.from_table(path.stem.removesuffix(".csv"), table, target=target, source=str(path.resolve()))


def read_parquet(path: str | Path, *, target: str | None = None) -> Dataset:
    path = Path(path)
    try:
        table = pq.read_table(path).to_pandas()
    except (pa.ArrowInvalid, pa.ArrowNotImplementedError, OSError) as exc:
        raise DataError(f"{path}: not a readable Parquet file ({exc})") from None
    if table.empty:
        raise DataError(f"{path} has no rows")
    return Dataset.from_table(path.stem, table, target=target, source=str(path.resolve()))


def read_numpy(path: str | Path, *, target: str | None = None) -> Dataset:
    """Read ``.npz`` with arrays ``X`` (features or images) and optionally ``y``, or a 2-D ``.npy``."""
    path = Path(path)
    try:
        loaded = np.load(path, allow_pickle=False)
    except ValueError as exc:
        raise DataError(f"{path}: refused ({exc}); save plain numeric arrays") from None
    except (OSError, zipfile.BadZipFile) as exc:
        raise DataError(f"{path}: not a NumPy file ({exc})") from None
    if isinstance(loaded, np.ndarray):
        return from_numpy(loaded, None, name=path.stem, source=str(path.resolve()))
    with loaded:
        if "X" not in loaded.files:
            raise DataError(f"{path}: an .npz file needs an array named 'X' (has: {', '.join(loaded.files)})")
        features = loaded["X"]
        labels = loaded["y"] if "y" in loaded.files else None
    return from_numpy(features, labels, name=path.stem, source=str(path.resolve()), target_name=target or "target")


def from_numpy(
    features: np.ndarray,
    labels: np.ndarray | None = None,
    *,
    feature_names: Sequence[str] | None = None,
    target_name: str = "target",
    name: str = "array",
    source: str = "numpy",
) -> Dataset:
    """A dataset from arrays: 2-D ``features`` become columns, 3-D or more become images."""
    features = np.asarray(features)
    if features.dtype == object:
        raise DataError("object arrays are not accepted; pass numeric arrays")
    if features.ndim < 2:
        raise DataError(f"features must be 2-D (rows, columns) or image-shaped, got shape {features.shape}")
    if labels is not None and len(labels) != len(features):
        raise DataError(f"{len(features)} feature rows but {len(labels)} labels")
    arrays: dict[str, np.ndarray] = {}
    if features.ndim == 2:
        names = list(feature_names) if feature_names is not None else [f"x{i}" for i in range(features.shape[1])]
        if len(names) != features.shape[1]:
            raise DataError(f"{len(names)} feature names for {features.shape[1]} columns")
        table = pd.DataFrame(features, columns=names)
    else:
        table = pd.DataFrame(index=range(len(features)))
        arrays["image"] = features
    if labels is not None:
        if target_name in table.columns:
            raise DataError(f"a feature is already named '{target_name}'; pick another target name")
        table[target_name] = np.asarray(labels)
    return Dataset.from_table(
        name, table, target=target_name if labels is not None else None, arrays=arrays, source=source
    )
