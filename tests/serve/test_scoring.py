"""Served rows are encoded from column lists exactly as a table is: same numbers, same answers."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

import amploop
from amploop.data import FeatureEncoder, Schema
from amploop.data.schema import infer_schema
from amploop.serve.scoring import (
    RecordErrors,
    record_json_schema,
    records_to_rows,
    score,
    score_rows,
    table_to_records,
)


def test_column_lists_encode_exactly_like_the_table_they_came_from():
    table = pd.DataFrame(
        {
            "age": [20.0, None, 45.5, 1e300, -3.0],
            "colour": ["red", None, "blue", "never seen", "red"],
            "grade": [1, 2, 3, 2, 9],  # numbers used as categories
        }
    )
    fitted = table.iloc[:3]
    encoder = FeatureEncoder().fit(fitted, schema=infer_schema(fitted, categorical=["grade"]))
    expected = encoder.transform(table)
    records = table_to_records(table)
    got = encoder.transform_columns({k: [r[k] for r in records] for k in table.columns}, None, len(records))
    np.testing.assert_array_equal(got.numeric, expected.numeric)
    np.testing.assert_array_equal(got.categorical, expected.categorical)
    # an unseen value and a missing one share index 0
    assert got.categorical.T.tolist() == [[2, 0, 1, 0, 2], [1, 2, 3, 2, 0]]
    assert got.numeric[3, 0] == 1e6  # 1e300 is clipped, not inf


def test_served_rows_score_exactly_as_load_model_scores_the_table(adult_model):
    table = amploop.load_builtin("adult").table.drop(columns=["income"]).sample(300, random_state=1)
    assert table.isna().any().any()  # missing workclass and occupation are part of the test
    records = table_to_records(table)
    rows = records_to_rows(adult_model.schema_, records, target="income")
    served, direct = score_rows(adult_model, rows), score(adult_model, table)
    np.testing.assert_allclose(served.probabilities, direct.probabilities, rtol=0, atol=1e-6)
    assert served.predictions == direct.predictions and served.version == "adult:1"


def test_a_record_with_a_string_for_a_number_is_refused_with_its_place(adult_model):
    records = table_to_records(amploop.load_builtin("adult").table.drop(columns=["income"]).head(3))
    records[2]["age"] = "forty"
    with pytest.raises(RecordErrors) as caught:
        records_to_rows(adult_model.schema_, records, target="income")
    assert caught.value.details["errors"] == [
        {"loc": ["records", 2, "age"], "msg": "not a number: 'forty'", "type": "float_type"}
    ]


def test_text_columns_the_model_does_not_read_may_be_left_out_of_a_request():
    schema = Schema.from_dict(
        {
            "columns": [
                {"name": "customer_id", "kind": "text", "dtype": "object"},
                {"name": "age", "kind": "numeric", "dtype": "int64"},
            ]
        }
    )
    rows = records_to_rows(schema, [{"age": 30}, {"age": 40, "customer_id": "c-2"}])
    assert rows.columns == {"customer_id": [None, "c-2"], "age": [30.0, 40.0]}
    assert record_json_schema(schema)["required"] == ["age"]
    with pytest.raises(RecordErrors, match="records.0.age: field required"):
        records_to_rows(schema, [{"customer_id": "c-1"}])
