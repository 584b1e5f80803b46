import numpy as np
import pandas as pd
import pytest

from amploop.data import Schema, infer_schema, load_builtin
from amploop.errors import SchemaError


def _table():
    return pd.DataFrame(
        {
            "age": [25, 38, 51, 44],
            "income": [1.5, None, 3.0, 2.0],
            "sex": ["F", "M", "F", "F"],
            "note": [f"free text number {i}" for i in range(4)],
            "flag": [True, False, True, True],
        }
    )


def test_inference_of_kinds_nullability_ranges_and_categories():
    schema = infer_schema(_table(), max_categories=3)
    kinds = {c.name: (c.kind, c.nullable) for c in schema.columns}
    assert kinds == {
        "age": ("numeric", False),
        "income": ("numeric", True),
        "sex": ("categorical", False),
        "note": ("text", False),
        "flag": ("categorical", False),
    }
    assert (schema["age"].minimum, schema["age"].maximum) == (25.0, 51.0)
    assert schema["sex"].categories == ("F", "M")
    assert schema["flag"].categories == (False, True)


def test_forced_categorical_and_image_columns():
    images = np.zeros((4, 3, 5, 5), dtype=np.uint8)
    schema = infer_schema(_table(), {"pixels": images}, categorical=["age"])
    assert schema["age"].kind == "categorical" and schema["age"].categories == (25, 38, 44, 51)
    assert schema["pixels"].kind == "image" and schema["pixels"].shape == (3, 5, 5)
    with pytest.raises(SchemaError, match="categorical columns not in the data: nope"):
        infer_schema(_table(), categorical=["nope"])


def test_roundtrip_through_dict():
    schema = load_builtin("adult").schema
    assert Schema.from_dict(schema.to_dict()) == schema


def test_validation_names_missing_columns():
    schema = infer_schema(_table())
    with pytest.raises(SchemaError, match="missing columns: sex, flag") as info:
        schema.validate(_table().drop(columns=["sex", "flag"]))
    assert info.value.details["missing_columns"] == ["sex", "flag"]


def test_validation_names_column_and_row_of_a_bad_value():
    schema = infer_schema(_table())
    bad = _table().astype({"age": object})
    bad.loc[2, "age"] = "fifty"
    with pytest.raises(SchemaError, match=r"^column 'age' row 2: 'fifty' is not a number$"):
        schema.validate(bad)


def test_validation_reports_missing_values_where_training_had_none():
    schema = infer_schema(_table())
    bad = _table()
    bad.loc[[1, 3], "sex"] = None
    with pytest.raises(SchemaError, match=r"column 'sex' row 1, 3: missing value"):
        schema.validate(bad)
    ok = _table()
    ok.loc[0, "income"] = None  # nullable column
    schema.validate(ok)


def test_unseen_categories_and_out_of_range_numbers_are_not_schema_errors():
    schema = infer_schema(_table())
    drifted = _table()
    drifted.loc[0, "sex"] = "X"
    drifted.loc[0, "age"] = 130
    schema.validate(drifted)


def test_validation_checks_image_shape():
    schema = infer_schema(_table(), {"img": np.zeros((4, 5, 5))})
    with pytest.raises(SchemaError, match=r"column 'img': each row must be an array of shape \(5, 5\), got \(6, 6\)"):
        schema.validate(_table(), {"img": np.zeros((4, 6, 6))})


def test_adult_test_split_validates_against_the_train_schema():
    adult = load_builtin("adult")
    train, test = adult.split("train"), adult.split("test")
    infer_schema(train.table).validate(test.table)


def test_duplicate_column_names_are_refused():
    from amploop.data import ColumnSchema

    with pytest.raises(SchemaError, match="duplicate column names: a"):
        Schema((ColumnSchema("a", "numeric", "float64"), ColumnSchema("a", "numeric", "float64")))
