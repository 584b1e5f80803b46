"""Dataset fingerprints: a content hash that names exactly the rows a model learned from.

The table is first brought to a canonical form, so that the same values hash alike however
they were read: every number becomes float64 (``-0.0`` as ``0.0``, one NaN), every string,
category or object becomes text, booleans stay booleans, timestamps become UTC nanoseconds.
Each array column (images) contributes one BLAKE2b digest per row. Each row then gets a 64-bit
hash (pandas' ``hash_pandas_object``, a keyed SipHash over the canonical cells, stable across
runs and machines), and the fingerprint is the SHA-256 of the column header and those row
hashes, in row order (``order_sensitive=True``) or sorted (the same rows in any order give the
same fingerprint).

Examples
--------
>>> import pandas as pd
>>> a = pd.DataFrame({"x": [1, 2, 3], "c": ["a", "b", "c"]})
>>> fingerprint(a) == fingerprint(a.astype({"x": "float64"}))
True
>>> fingerprint(a) == fingerprint(a.iloc[::-1])
False
>>> fingerprint(a, order_sensitive=False) == fingerprint(a.iloc[::-1], order_sensitive=False)
True
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping

import numpy as np
import pandas as pd

__all__ = ["fingerprint", "row_hashes"]


def _canonical(table: pd.DataFrame) -> tuple[pd.DataFrame, list[list[str]]]:
    columns: dict[str, pd.Series] = {}
    header: list[list[str]] = []
    for position, name in enumerate(table.columns):
        values = table.iloc[:, position]
        if pd.api.types.is_bool_dtype(values) and not values.isna().any():
            canonical, kind = values.astype(bool), "bool"
        elif pd.api.types.is_numeric_dtype(values) and not pd.api.types.is_bool_dtype(values):
            floats = values.astype("float64").to_numpy(copy=True)
            floats[floats == 0] = 0.0  # -0.0 and 0.0 are the same value
            canonical, kind = pd.Series(floats), "number"
        elif pd.api.types.is_datetime64_any_dtype(values):
            stamps = pd.to_datetime(values, utc=True)
            ns = stamps.astype("int64").where(stamps.notna(), other=np.iinfo(np.int64).min)
            canonical, kind = pd.Series(ns.to_numpy()), "datetime"
        else:
            text = values.astype(object).where(values.notna(), None)
            canonical = pd.Series([None if v is None else str(v) for v in text], dtype=object)
            kind = "text"
        columns[f"c{position}"] = canonical.reset_index(drop=True)
        header.append([str(name), kind])
    return pd.DataFrame(columns, index=pd.RangeIndex(len(table))), header


def row_hashes(table: pd.DataFrame, arrays: Mapping[str, np.ndarray] | None = None) -> np.ndarray:
    """One uint64 per row over the canonical cells and array rows (see the module docstring)."""
    return _hash_rows(table, arrays)[0]


def _hash_rows(table: pd.DataFrame, arrays: Mapping[str, np.ndarray] | None) -> tuple[np.ndarray, list[list[str]]]:
    canonical, header = _canonical(table)
    for name, array in sorted((arrays or {}).items()):
        array = np.asarray(array)
        rows = np.ascontiguousarray(array).reshape(len(table), -1)
        digests = b"".join(hashlib.blake2b(row.tobytes(), digest_size=8).digest() for row in rows)
        canonical[f"array:{name}"] = np.frombuffer(digests, dtype="<u8")
        header.append([name, f"array:{array.dtype}:{list(array.shape[1:])}"])
    if canonical.shape[1] == 0:
        return np.zeros(len(table), dtype="<u8"), header
    hashed = pd.util.hash_pandas_object(canonical, index=False, categorize=False)
    return hashed.to_numpy().astype("<u8"), header


def fingerprint(
    table: pd.DataFrame,
    arrays: Mapping[str, np.ndarray] | None = None,
    *,
    order_sensitive: bool = True,
) -> str:
    """The SHA-256 hex digest naming this table's content (see the module docstring)."""
    hashes, header = _hash_rows(table, arrays)
    if not order_sensitive:
        hashes = np.sort(hashes)
    digest = hashlib.sha256()
    digest.update(json.dumps({"columns": header, "rows": len(table)}, sort_keys=True).encode())
    digest.update(hashes.tobytes())
    return digest.hexdigest()
