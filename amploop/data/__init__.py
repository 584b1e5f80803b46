"""Data: reading, built-in datasets, schemas, fingerprints and feature encoding."""

from amploop.data.builtin import BuiltinInfo, builtin_info, builtin_names, load_builtin
from amploop.data.dataset import ColumnSummary, Dataset, DatasetSummary
from amploop.data.encode import EncodedBatch, FeatureEncoder, LabelEncoder
from amploop.data.fingerprint import fingerprint, row_hashes
from amploop.data.schema import ColumnSchema, Schema, infer_schema
from amploop.data.sources import from_numpy, open_dataset, read_csv, read_numpy, read_parquet

__all__ = [
    "BuiltinInfo",
    "ColumnSchema",
    "ColumnSummary",
    "Dataset",
    "DatasetSummary",
    "EncodedBatch",
    "FeatureEncoder",
    "LabelEncoder",
    "Schema",
    "builtin_info",
    "builtin_names",
    "fingerprint",
    "from_numpy",
    "infer_schema",
    "load_builtin",
    "open_dataset",
    "read_csv",
    "read_numpy",
    "read_parquet",
    "row_hashes",
]
