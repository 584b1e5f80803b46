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

import gzip
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
from amploop.errors import DataError, DatasetNotFound, SchemaError, close_matches

__all__ = ["csv_error", "from_numpy", "open_dataset", "read_csv", "read_numpy", "read_parquet"]

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
        close, hint = close_matches(text, builtin_names())
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
    except (pd.errors.ParserError, pd.errors.EmptyDataError, UnicodeDecodeError, OSError) as exc:
        raise csv_error(path, exc, sep) from None
    if table.empty:
        raise DataError(f"{path} has a header but no rows")
    unnamed = [c for c in table.columns if str(c).startswith("Unnamed: ")]
    if unnamed:
        raise DataError(f"{path}: the header has {len(unnamed)} empty column name(s); name every column")
    return Dataset.from_table(path.stem.removesuffix(".csv"), table, target=target, source=str(path.resolve()))


def csv_error(path: Path, exc: Exception, sep: str = ",") -> DataError:
    """The one-line :class:`DataError` for a CSV file pandas could not read: the file, and the line when known."""
    if isinstance(exc, pd.errors.EmptyDataError):
        return DataError(f"{path} is empty; a CSV file needs a header line and rows")
    if isinstance(exc, UnicodeDecodeError):
        # pandas decodes in chunks, so its offset is within a chunk: find the real place ourselves
        line, offset = _first_invalid_utf8(path)
        return DataError(
            f"{path} line {line}: not UTF-8 text (byte offset {offset}); save the file as UTF-8",
            line=line,
            byte_offset=offset,
        )
    if isinstance(exc, OSError):
        return DataError(f"{path}: cannot read ({exc.strerror or exc})")
    found = _PANDAS_LINE.search(str(exc))
    if found:
        expected, line, saw = found.groups()
        return DataError(
            f"{path} line {line}: expected {expected} fields, saw {saw}; fix that line or "
            f"quote the fields that contain '{sep}'",
            line=int(line),
        )
    return DataError(f"{path}: not valid CSV ({str(exc).strip().splitlines()[-1]})")


def _first_invalid_utf8(path: Path, chunk_bytes: int = 1 << 20) -> tuple[int, int]:
    """The 1-based line and 0-based byte offset (in the decompressed text) of the first byte that is not UTF-8."""
    opener = gzip.open if path.name.lower().endswith(".gz") else open
    offset, line, pending = 0, 1, b""
    with opener(path, "rb") as stream:
        while True:
            chunk = stream.read(chunk_bytes)
            data = pending + chunk
            try:
                data.decode("utf-8")
            except UnicodeDecodeError as exc:
                # a character cut by the chunk boundary is not an error yet: carry it to the next chunk
                if chunk and exc.reason == "unexpected end of data":
                    good = exc.start
                    pending = data[good:]
                    line += data.count(b"\n", 0, good)
                    offset += good
                    continue
                return line + data.count(b"\n", 0, exc.start), offset + exc.start
            if not chunk:
                return line, offset  # pandas saw an error that plain decoding does not: point at the end
            line += data.count(b"\n")
            offset += len(data)
            pending = b""


def read_parquet(path: str | Path, *, target: str | None = None) -> Dataset:
    """Read a Parquet file of flat columns; list, struct and map columns are refused."""
    path = Path(path)
    try:
        schema = pq.read_schema(path)
        nested = [(f.name, str(f.type)) for f in schema if pa.types.is_nested(f.type)]
        if nested:
            shown = ", ".join(f"'{name}' ({kind})" for name, kind in nested[:5])
            one = len(nested) == 1
            raise SchemaError(
                f"{path}: column{'' if one else 's'} {shown} hold{'s' if one else ''} nested values (lists, "
                f"structs or maps); amploop reads flat columns: flatten {'it' if one else 'them'} into one "
                f"column per field or element, or drop {'it' if one else 'them'}",
                columns=[name for name, _ in nested],
            )
        table = pq.read_table(path).to_pandas()
    except (pa.ArrowInvalid, pa.ArrowNotImplementedError, OSError) as exc:
        raise DataError(f"{path}: not a readable Parquet file ({exc})") from None
    if table.empty:
        raise DataError(f"{path} has no rows")
    return Dataset.from_table(path.stem, table, target=target, source=str(path.resolve()))


def read_numpy(path: str | Path, *, target: str | None = None) -> Dataset:
    """Read ``.npz`` with arrays ``X`` (features or images) and optionally ``y``, or a 2-D ``.npy``.

    Feature columns are named ``x0 .. xN-1``. With ``y``, ``target`` names the label column
    (default ``target``); without ``y``, ``target`` picks one of the feature columns as the label.
    """
    path = Path(path)
    source = str(path.resolve())
    try:
        loaded = np.load(path, allow_pickle=False)
    except ValueError as exc:
        raise _numpy_refusal(path, exc) from None
    except (OSError, zipfile.BadZipFile) as exc:
        raise DataError(f"{path}: not a NumPy file ({exc})") from None
    if isinstance(loaded, np.ndarray):
        features, labels = loaded, None
    else:
        with loaded:
            if "X" not in loaded.files:
                raise DataError(f"{path}: an .npz file needs an array named 'X' (has: {', '.join(loaded.files)})")
            try:  # an .npz member is only read (and an object array refused) on access
                features = loaded["X"]
                labels = loaded["y"] if "y" in loaded.files else None
            except ValueError as exc:
                raise _numpy_refusal(path, exc) from None
            except (OSError, zipfile.BadZipFile) as exc:
                raise DataError(f"{path}: not a NumPy file ({exc})") from None
    if labels is not None:
        return from_numpy(features, labels, name=path.stem, source=source, target_name=target or "target")
    dataset = from_numpy(features, None, name=path.stem, source=source)
    if target is None:
        return dataset
    if dataset.arrays:
        raise DataError(
            f"{path}: --target {target!r} names a column, but the file holds images without labels; "
            "save the images as X and the labels as y in an .npz file"
        )
    return Dataset.from_table(dataset.name, dataset.table, target=target, source=source)


def _numpy_refusal(path: Path, exc: ValueError) -> DataError:
    """NumPy's own message advises loading pickles unsafely; amploop never does, so it says so instead."""
    text = str(exc)
    if "pickle" in text.lower() or "object" in text.lower():
        return DataError(
            f"{path}: refused: it holds Python objects (pickled data), which amploop never loads; "
            "save plain numeric arrays"
        )
    first = (text.strip().splitlines() or ["unreadable"])[0][:160]
    return DataError(f"{path}: not a readable NumPy file ({first}); save plain numeric arrays with numpy.save(z)")


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
