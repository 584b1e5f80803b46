import gzip

import numpy as np
import pandas as pd
import pytest

from amploop.data import from_numpy, open_dataset
from amploop.errors import DataError, DatasetNotFound, SchemaError


def test_csv_roundtrip_with_missing_values(tmp_path):
    path = tmp_path / "people.csv"
    path.write_text("age,city,score\n31,Paris,0.5\n,Lyon,0.25\n45,,1\n")
    ds = open_dataset(path, target="score")
    assert ds.n_rows == 3 and ds.name == "people" and ds.source == str(path.resolve())
    assert ds.table["age"].isna().tolist() == [False, True, False]
    assert ds.schema["city"].kind == "categorical" and ds.schema["city"].nullable
    assert ds.task == "regression"


def test_gzipped_csv_and_tsv(tmp_path):
    gz = tmp_path / "d.csv.gz"
    gz.write_bytes(gzip.compress(b"a,b\n1,x\n2,y\n"))
    assert open_dataset(gz).n_rows == 2
    tsv = tmp_path / "d.tsv"
    tsv.write_text("a\tb\n1\tx\n")
    assert open_dataset(tsv).schema.names == ["a", "b"]


def test_malformed_csv_names_the_line(tmp_path):
    path = tmp_path / "bad.csv"
    path.write_text("a,b,c\n1,2,3\n4,5,6\n7,8,9,10\n")
    with pytest.raises(DataError, match=r"bad\.csv line 4: expected 3 fields, saw 4") as info:
        open_dataset(path)
    assert info.value.details["line"] == 4


@pytest.mark.parametrize(
    ("content", "message"),
    [
        (b"", "is empty"),
        (b"a,b\n", "has a header but no rows"),
        (b"a,\n1,2\n", "empty column name"),
        (b"a,b\n\xff\xfe,1\n", "not UTF-8"),
    ],
)
def test_other_unreadable_csvs(tmp_path, content, message):
    path = tmp_path / "x.csv"
    path.write_bytes(content)
    with pytest.raises(DataError, match=message):
        open_dataset(path)


def test_parquet(tmp_path):
    path = tmp_path / "t.parquet"
    pd.DataFrame({"x": [1.0, 2.0], "y": ["a", "b"]}).to_parquet(path)
    ds = open_dataset(path, target="y")
    assert ds.n_rows == 2 and ds.task == "classification"
    bad = tmp_path / "not.parquet"
    bad.write_text("hello")
    with pytest.raises(DataError, match="not a readable Parquet file"):
        open_dataset(bad)


def test_numpy_npz_images_and_refused_object_arrays(tmp_path):
    path = tmp_path / "digits.npz"
    rng = np.random.default_rng(0)
    np.savez(path, X=rng.integers(0, 255, (6, 8, 8), dtype=np.uint8), y=np.arange(6) % 2)
    ds = open_dataset(path)
    assert ds.arrays["image"].shape == (6, 8, 8) and ds.target == "target"
    pickled = tmp_path / "obj.npy"
    np.save(pickled, np.array([{"a": 1}], dtype=object), allow_pickle=True)
    with pytest.raises(DataError, match="refused"):
        open_dataset(pickled)


def test_unknown_suffix_and_missing_file(tmp_path):
    path = tmp_path / "data.xlsx"
    path.write_text("x")
    with pytest.raises(DataError, match="unknown file type; amploop reads .csv"):
        open_dataset(path)
    with pytest.raises(DatasetNotFound, match="neither a file nor a built-in dataset; did you mean mnist5k"):
        open_dataset("mnist")


def test_missing_target_names_the_columns(tmp_path):
    path = tmp_path / "t.csv"
    path.write_text("a,b\n1,2\n")
    with pytest.raises(SchemaError, match="target column 'label' is not in the data; columns: a, b"):
        open_dataset(path, target="label")


def test_from_numpy_checks_shapes():
    with pytest.raises(DataError, match="3 feature rows but 2 labels"):
        from_numpy(np.zeros((3, 2)), np.zeros(2))
    with pytest.raises(DataError, match="must be 2-D"):
        from_numpy(np.zeros(3))
