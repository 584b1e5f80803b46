"""Degenerate and hostile data: each is a one-line error or a finding, never a traceback or a silent model.

A one-class target, missing labels, ±inf and float32-overflowing numbers, all-missing columns,
nested Parquet columns, object arrays in .npz, --target on NumPy files, the place of a bad
UTF-8 byte, floats stored as text that look like card numbers, --against data of another
schema, and --output into a folder that does not exist.
"""

import gzip
import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from amploop.data import Dataset, open_dataset
from amploop.data.quality import check_quality
from amploop.errors import ConfigError, DataError, QualityError, SchemaError
from amploop.registry import Store
from amploop.workspace import Workspace

AMPLOOP = str(Path(sys.executable).with_name("amploop"))


def run(home: Path, *args: str) -> subprocess.CompletedProcess:
    env = {k: v for k, v in os.environ.items() if not k.startswith("AMPLOOP_")}
    env.update({"AMPLOOP_HOME": str(home), "COLUMNS": "200"})
    return subprocess.run([AMPLOOP, *args], capture_output=True, text=True, env=env, cwd=home.parent, timeout=300)


def strict_json(text: str) -> dict:
    """Exactly one JSON object, with no NaN or Infinity (which JSON does not have)."""

    def refuse(constant: str) -> None:
        raise ValueError(f"not JSON: {constant}")

    return json.loads(text, parse_constant=refuse)


def noisy_table(n: int = 300, seed: int = 0) -> pd.DataFrame:
    """Two features and a label they predict only in part: no leakage finding, no label noise block."""
    rng = np.random.default_rng(seed)
    x1, x2 = rng.normal(size=n), rng.normal(size=n)
    return pd.DataFrame({"x1": x1, "x2": x2, "y": (x1 + x2 + rng.normal(0, 1, n) > 0).astype(int)})


def blocking(report, check):
    return [f for f in report.findings if f.check == check and f.severity == "block"]


# -- 1. a target with one class ------------------------------------------------------------------


def test_single_class_target_blocks():
    table = noisy_table()
    table["y"] = 1
    report = check_quality(Dataset.from_table("one", table, target="y"))
    [finding] = blocking(report, "single_class")
    assert finding.columns == ["y"] and finding.count == 300
    assert "single class ('1')" in finding.message and "cannot learn" in finding.message
    assert report.findings[0] is finding  # blocking findings come first: train quotes the first


def test_constant_regression_target_blocks():
    table = noisy_table()
    table["y"] = 2.5
    ds = Dataset.from_table("flat", table, target="y", task="regression")
    [finding] = blocking(check_quality(ds, label_issues=False), "constant_target")
    assert "same value (2.5)" in finding.message


def test_two_classes_do_not_block():
    report = check_quality(Dataset.from_table("two", noisy_table(), target="y"))
    assert report.blocking == []


def test_one_class_at_the_command_line_show_check_and_train(tmp_path):
    table = noisy_table()
    table["y"] = 1
    path = tmp_path / "onecls.csv"
    table.to_csv(path, index=False)
    home = tmp_path / "h"
    shown = run(home, "data", "show", str(path), "--target", "y", "--json")
    assert shown.returncode == 0, shown.stderr
    assert strict_json(shown.stdout)["class_balance"] == {"1": 300}
    checked = run(home, "data", "check", str(path), "--target", "y", "--json")
    assert checked.returncode == QualityError.exit_code, checked.stderr
    first = strict_json(checked.stdout)["findings"][0]
    assert (first["check"], first["severity"]) == ("single_class", "block")
    trained = run(home, "train", "--dataset", str(path), "--target", "y", "--epochs", "1")
    assert trained.returncode == QualityError.exit_code, trained.stderr
    assert "training refused" in trained.stderr and "single class" in trained.stderr
    assert "Traceback" not in trained.stderr and trained.stderr.strip().count("\n") == 0
    with Store.open(Workspace.from_env({"AMPLOOP_HOME": str(home)})) as store:
        assert store.list_model_versions() == []


# -- 2. missing labels ---------------------------------------------------------------------------


def test_rows_without_label_are_dropped_and_counted():
    table = noisy_table(100).astype({"y": float})
    table.loc[[3, 10, 57], "y"] = np.nan
    ds = Dataset.from_table("some", table, target="y")
    assert ds.n_rows == 97 and ds.unlabelled_rows_dropped == 3
    assert ds.transformation == "dropped 3 rows without a label ('y' missing)"
    assert not ds.labels.isna().any() and ds.task == "classification"
    assert ds.summary().to_dict()["unlabelled_rows_dropped"] == 3
    [finding] = [f for f in check_quality(ds, label_issues=False).findings if f.check == "unlabelled_rows"]
    assert finding.severity == "warn" and finding.count == 3
    assert finding.message.startswith("3 rows have no label ('y' missing) and were dropped")


def test_dropping_unlabelled_rows_keeps_splits_and_arrays_aligned():
    table = pd.DataFrame({"y": [0.0, np.nan, 1.0, np.nan, 0.0, 1.0]})
    images = np.arange(6 * 4, dtype=np.float32).reshape(6, 2, 2)
    splits = {"train": np.array([0, 1, 2, 3]), "test": np.array([4, 5])}
    ds = Dataset.from_table("img", table, target="y", arrays={"image": images}, splits=splits)
    assert ds.n_rows == 4
    assert ds.arrays["image"][:, 0, 0].tolist() == [0.0, 8.0, 16.0, 20.0]  # rows 0, 2, 4, 5
    assert ds.splits["train"].tolist() == [0, 1] and ds.splits["test"].tolist() == [2, 3]


def test_a_target_without_any_value_is_refused():
    table = pd.DataFrame({"x": [1.0, 2.0], "y": [np.nan, np.nan]})
    with pytest.raises(DataError, match="target column 'y' is missing in all 2 rows"):
        Dataset.from_table("none", table, target="y")


def test_missing_labels_at_the_command_line(tmp_path):
    table = noisy_table().astype({"y": float})
    table.loc[:9, "y"] = np.nan
    path = tmp_path / "nan_target.csv"
    table.to_csv(path, index=False)
    home = tmp_path / "h"
    shown = run(home, "data", "show", str(path), "--target", "y", "--json")
    assert shown.returncode == 0, shown.stderr
    summary = strict_json(shown.stdout)
    assert (summary["rows"], summary["unlabelled_rows_dropped"]) == (290, 10)
    checked = run(home, "data", "check", str(path), "--target", "y", "--no-label-issues", "--json")
    assert checked.returncode == 0, checked.stderr
    findings = strict_json(checked.stdout)["findings"]
    assert [(f["check"], f["count"]) for f in findings if f["severity"] == "warn"] == [("unlabelled_rows", 10)]
    empty = tmp_path / "no_labels.csv"
    empty.write_text("x,y\n1,\n2,\n")
    for command in ("show", "check"):
        refused = run(home, "data", command, str(empty), "--target", "y", "--json")
        assert refused.returncode == DataError.exit_code
        assert strict_json(refused.stdout)["error"] == "DataError"
        assert "missing in all 2 rows" in refused.stderr and refused.stderr.strip().count("\n") == 0


# -- 3. infinite and overflowing numbers ---------------------------------------------------------


def test_infinite_and_float32_overflowing_values_block_naming_column_and_count():
    table = noisy_table()
    table.loc[[0, 1], "x1"] = np.inf
    table.loc[2, "x1"] = -np.inf
    table.loc[3, "x1"] = 1e308  # finite in float64, inf in float32
    table.loc[4, "x1"] = -4e38
    table.loc[5, "x2"] = 3e38  # under the float32 maximum: fine
    report = check_quality(Dataset.from_table("inf", table, target="y"))
    [finding] = blocking(report, "non_finite_values")
    assert finding.columns == ["x1"] and finding.count == 5 and finding.rows == [0, 1, 2, 3, 4]
    assert finding.message.startswith("column 'x1' has 3 infinite values and 2 values beyond the float32 range")
    assert (finding.details["infinite"], finding.details["overflowing"]) == (3, 2)
    outliers = [f for f in report.findings if f.check == "outliers"]
    assert all(not set(f.rows) & {0, 1, 2, 3, 4} for f in outliers)  # reported once, as blocking


def test_infinite_values_in_float_images_block():
    rng = np.random.default_rng(0)
    images = rng.random((60, 8, 8)).astype(np.float32)
    images[7, 0, 0] = np.inf
    from amploop.data import from_numpy

    ds = from_numpy(images, np.arange(60) % 2)
    [finding] = blocking(check_quality(ds), "non_finite_values")
    assert finding.columns == ["image"] and finding.rows == [7] and finding.count == 1


def test_infinite_values_at_the_command_line(tmp_path):
    table = noisy_table()
    table.loc[:2, "x2"] = np.inf
    path = tmp_path / "inf.csv"
    table.to_csv(path, index=False)
    home = tmp_path / "h"
    shown = run(home, "data", "show", str(path), "--target", "y", "--json")
    assert shown.returncode == 0, shown.stderr
    column = next(c for c in strict_json(shown.stdout)["column_summaries"] if c["name"] == "x2")
    assert column["maximum"] == "inf"
    checked = run(home, "data", "check", str(path), "--target", "y", "--json")
    assert checked.returncode == QualityError.exit_code
    first = strict_json(checked.stdout)["findings"][0]
    assert first["message"].startswith("column 'x2' has 3 infinite values")
    assert checked.stderr.startswith("error: 1 blocking finding:")  # one line saying why; no overflow warnings
    assert checked.stderr.count("\n") == 1


# -- 4. all-missing columns ----------------------------------------------------------------------


def test_an_all_missing_column_blocks_once():
    table = noisy_table()
    table["empty"] = np.nan
    table["empty_text"] = pd.Series([None] * len(table), dtype=object)
    report = check_quality(Dataset.from_table("e", table, target="y"))
    assert sorted(f.columns[0] for f in blocking(report, "empty_column")) == ["empty", "empty_text"]
    assert not [f for f in report.findings if f.check in ("missing_values", "constant_column")]


def test_all_missing_column_at_the_command_line(tmp_path):
    table = noisy_table()
    table["empty"] = np.nan
    path = tmp_path / "allnan.csv"
    table.to_csv(path, index=False)
    home = tmp_path / "h"
    shown = run(home, "data", "show", str(path), "--target", "y", "--json")
    assert shown.returncode == 0 and strict_json(shown.stdout)["rows"] == 300
    checked = run(home, "data", "check", str(path), "--target", "y", "--json")
    assert checked.returncode == QualityError.exit_code, checked.stderr
    first = strict_json(checked.stdout)["findings"][0]
    assert first["check"] == "empty_column" and first["columns"] == ["empty"]
    assert checked.stderr.startswith("error: 1 blocking finding:") and checked.stderr.count("\n") == 1


# -- 5. nested Parquet ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("column", "kind"),
    [
        (pa.array([[1, 2], [3]]), "list"),
        (pa.array([{"a": 1}, {"a": 2}]), "struct"),
        (pa.array([[("k", 1)], [("k", 2)]], type=pa.map_(pa.string(), pa.int64())), "map"),
    ],
)
def test_nested_parquet_columns_are_refused_by_name(tmp_path, column, kind):
    path = tmp_path / "nested.parquet"
    pq.write_table(pa.table({"x": [1.0, 2.0], "deep": column, "y": [0, 1]}), path)
    with pytest.raises(SchemaError, match=rf"column 'deep' \({kind}.*flatten it") as info:
        open_dataset(path, target="y")
    assert info.value.details["columns"] == ["deep"]


def test_nested_parquet_at_the_command_line(tmp_path):
    path = tmp_path / "nested.parquet"
    pq.write_table(pa.table({"x": [1.0, 2.0], "tags": [["a"], ["b", "c"]]}), path)
    for command in ("show", "check"):
        result = run(tmp_path / "h", "data", command, str(path), "--json")
        assert result.returncode == SchemaError.exit_code, result.stderr
        assert strict_json(result.stdout)["details"]["columns"] == ["tags"]


# -- 6. object arrays in .npz --------------------------------------------------------------------


def test_object_array_in_npz_is_a_data_error(tmp_path):
    path = tmp_path / "obj.npz"
    np.savez(path, X=np.array([[1, "a"], [2, "b"]], dtype=object), y=np.array([0, 1]))
    with pytest.raises(DataError, match="obj.npz: refused: .*never loads; save plain numeric arrays"):
        open_dataset(path)
    result = run(tmp_path / "h", "data", "show", str(path))
    assert result.returncode == DataError.exit_code and "refused" in result.stderr
    assert "internal error" not in result.stderr
    assert "allow_pickle" not in result.stderr  # numpy's advice to load it unsafely is not passed on


def test_a_table_whose_every_value_is_infinite_blocks_without_crashing_the_screens():
    features = np.full((60, 2), np.inf)
    dataset = Dataset.from_table(
        "inf", pd.DataFrame({"a": features[:, 0], "b": features[:, 1], "y": [0, 1] * 30}), target="y"
    )
    report = check_quality(dataset, label_issues=True)
    assert [f.check for f in report.blocking] == ["non_finite_values", "non_finite_values"]


# -- 7. --target on NumPy files ------------------------------------------------------------------


def test_target_names_a_column_of_a_2d_npy(tmp_path):
    path = tmp_path / "m.npy"
    np.save(path, np.array([[0.1, 5.0, 0.0], [0.2, 6.0, 1.0], [0.3, 7.0, 0.0], [0.4, 8.0, 1.0]]))
    ds = open_dataset(path, target="x2")
    assert ds.target == "x2" and ds.feature_names == ["x0", "x1"] and ds.task == "classification"
    assert ds.labels.tolist() == [0.0, 1.0, 0.0, 1.0]
    assert open_dataset(path).target is None
    with pytest.raises(SchemaError, match="target column 'label' is not in the data; columns: x0, x1, x2"):
        open_dataset(path, target="label")


def test_target_in_npz_without_y_picks_a_column_and_with_y_names_the_label(tmp_path):
    features = np.arange(12.0).reshape(6, 2)
    plain = tmp_path / "plain.npz"
    np.savez(plain, X=features)
    assert open_dataset(plain, target="x1").feature_names == ["x0"]
    with pytest.raises(SchemaError, match="columns: x0, x1"):
        open_dataset(plain, target="y")
    labelled = tmp_path / "labelled.npz"
    np.savez(labelled, X=features, y=np.arange(6) % 2)
    ds = open_dataset(labelled, target="digit")
    assert ds.target == "digit" and ds.labels.tolist() == [0, 1, 0, 1, 0, 1]


def test_target_on_unlabelled_images_is_refused(tmp_path):
    path = tmp_path / "images.npy"
    np.save(path, np.zeros((4, 8, 8), dtype=np.uint8))
    with pytest.raises(DataError, match="holds images without labels"):
        open_dataset(path, target="x0")


def test_npy_target_at_the_command_line(tmp_path):
    path = tmp_path / "m.npy"
    np.save(path, np.array([[0.1, 0.0], [0.2, 1.0], [0.3, 0.0]]))
    shown = run(tmp_path / "h", "data", "show", str(path), "--target", "x1", "--json")
    assert shown.returncode == 0, shown.stderr
    assert strict_json(shown.stdout)["class_balance"] == {"0.0": 2, "1.0": 1}
    unknown = run(tmp_path / "h", "data", "show", str(path), "--target", "nope")
    assert unknown.returncode == SchemaError.exit_code and "columns: x0, x1" in unknown.stderr


# -- 8. where the bad UTF-8 byte is --------------------------------------------------------------


def test_utf8_error_names_the_real_line_and_byte_offset(tmp_path):
    head = "a,b\n" + "".join(f"{i},café\n" for i in range(200_000))  # several pandas chunks; é is 2 bytes
    path = tmp_path / "latin.csv"
    path.write_bytes(head.encode() + b"200000,caf\xe9\n")
    offset = len(head.encode()) + len("200000,caf")
    with pytest.raises(DataError, match=rf"latin\.csv line 200002: not UTF-8 text \(byte offset {offset}\)") as info:
        open_dataset(path)
    assert (info.value.details["line"], info.value.details["byte_offset"]) == (200_002, offset)
    gz = tmp_path / "latin.csv.gz"
    gz.write_bytes(gzip.compress(b"a,b\n1,x\n2,\xff\n"))
    with pytest.raises(DataError, match=r"line 3: not UTF-8 text \(byte offset 10\)"):
        open_dataset(gz)


def test_a_character_cut_by_the_read_boundary_is_not_an_error(tmp_path):
    # The bad byte is searched for in 1 MiB reads: put an é (c3 a9) across the first boundary.
    boundary = 1 << 20
    lines = 349_530
    head = ("ab\n" + "é\n" * lines).encode()  # é lines start at byte 3 + 3k; k = 349,524 puts c3 at boundary - 1
    assert head[boundary - 1 : boundary + 1] == "é".encode()  # the read boundary cuts this character
    path = tmp_path / "cut.csv"
    path.write_bytes(head + b"caf\xe9\n")
    with pytest.raises(DataError, match=r"cut\.csv line (\d+): not UTF-8 text") as info:
        open_dataset(path)
    # the real bad byte, after the header and every é line; not the cut é at the boundary
    assert (info.value.details["line"], info.value.details["byte_offset"]) == (lines + 2, len(head) + 3)


# -- 9. payment cards, and floats that only look like them ---------------------------------------


def test_floats_stored_as_text_are_not_card_numbers_but_cards_are():
    table = noisy_table(200)
    table["amount"] = ["4111111111111111.0", "0.123456789012345", "4.111111111111111e+15", "n/a"] * 50
    report = check_quality(Dataset.from_table("f", table, target="y"), label_issues=False)
    assert [f for f in report.findings if f.check == "personal_data"] == []
    table["amount"] = ["4111111111111111", "4111-1111-1111-1111", "card 4111 1111 1111 1111.", "n/a"] * 50
    report = check_quality(Dataset.from_table("f", table, target="y"), label_issues=False)
    [card] = [f for f in report.findings if f.check == "personal_data"]
    assert card.severity == "block" and card.count == 150 and card.columns == ["amount"]


# -- 10. --against data of another schema --------------------------------------------------------


def test_against_data_with_other_columns_is_a_schema_error():
    ours = Dataset.from_table("test", noisy_table(), target="y")
    other = noisy_table().rename(columns={"x2": "x3"})
    theirs = Dataset.from_table("train", other, target="y")
    with pytest.raises(
        SchemaError, match=r"test and train have different columns \(only in test: x2; only in train: x3\)"
    ):
        check_quality(ours, against=theirs)
    unlabelled = Dataset.from_table("new", noisy_table(seed=3).drop(columns="y"))
    assert check_quality(unlabelled, against=ours, label_issues=False).against["name"] == "test"  # no target: fine
    with pytest.raises(SchemaError, match="only in train: x3"):
        check_quality(unlabelled, against=theirs)


def test_against_with_other_columns_at_the_command_line(tmp_path):
    noisy_table().to_csv(tmp_path / "a.csv", index=False)
    noisy_table().rename(columns={"x2": "z"}).to_csv(tmp_path / "b.csv", index=False)
    noisy_table().drop(columns="y").to_csv(tmp_path / "c.csv", index=False)
    home = tmp_path / "h"
    for other, message in (("b.csv", "only in a: x2; only in b: z"), ("c.csv", None)):
        result = run(
            home, "data", "check", str(tmp_path / "a.csv"), "--target", "y", "--against", str(tmp_path / other)
        )
        if message is None:  # no label in the training file: leakage is still measured on the features
            assert result.returncode == QualityError.exit_code and "also appear in c" in result.stdout
        else:
            assert result.returncode == SchemaError.exit_code, result.stderr
            assert message in result.stderr and result.stderr.strip().count("\n") == 0


# -- 11. datasheet --output ----------------------------------------------------------------------


def test_datasheet_into_a_missing_folder_writes_nothing(tmp_path):
    data = tmp_path / "d.csv"
    noisy_table().to_csv(data, index=False)
    home = tmp_path / "h"
    target = tmp_path / "missing_folder" / "out.html"
    result = run(home, "data", "datasheet", str(data), "--output", str(target), "--json")
    assert result.returncode == ConfigError.exit_code
    body = strict_json(result.stdout)
    assert body["error"] == "ConfigError" and "does not exist; create it or choose another path" in body["message"]
    assert not target.parent.exists() and not home.exists()  # not even the store was opened
    folder = run(home, "data", "datasheet", str(data), "--output", str(tmp_path))
    assert folder.returncode == ConfigError.exit_code and "is a folder" in folder.stderr


def test_datasheet_replaces_an_existing_file_whole(tmp_path):
    data = tmp_path / "d.csv"
    noisy_table().to_csv(data, index=False)
    out = tmp_path / "sheets" / "d.md"
    out.parent.mkdir()
    out.write_text("old text")
    result = run(tmp_path / "h", "data", "datasheet", str(data), "--output", str(out))
    assert result.returncode == 0, result.stderr
    assert out.read_text().startswith("# ") and "old text" not in out.read_text()
    assert sorted(p.name for p in out.parent.iterdir()) == ["d.md"]  # no temporary file left
