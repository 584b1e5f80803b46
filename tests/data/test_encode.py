import numpy as np
import pandas as pd
import pytest

from amploop.data import FeatureEncoder, LabelEncoder, load_builtin
from amploop.errors import SchemaError


def test_standardises_numerics_with_training_statistics():
    train = pd.DataFrame({"x": [1.0, 3.0, 5.0, 7.0]})  # mean 4, population std sqrt(5)
    enc = FeatureEncoder().fit(train)
    out = enc.transform(pd.DataFrame({"x": [4.0, 4.0 + 5**0.5, None]}))
    assert out.numeric[:, 0].tolist() == pytest.approx([0.0, 1.0, 0.0])


def test_categories_get_indices_and_unknowns_share_bucket_zero():
    train = pd.DataFrame({"c": ["b", "a", "b", None]})
    enc = FeatureEncoder().fit(train)
    assert enc.categories_ == {"c": ["a", "b"]} and enc.cardinalities_ == [3]
    out = enc.transform(pd.DataFrame({"c": ["a", "b", "zzz", None]}))
    assert out.categorical[:, 0].tolist() == [1, 2, 0, 0]


def test_constant_column_does_not_divide_by_zero():
    enc = FeatureEncoder().fit(pd.DataFrame({"k": [2.0, 2.0]}))
    assert enc.transform(pd.DataFrame({"k": [2.0, 3.0]})).numeric[:, 0].tolist() == [0.0, 1.0]


def test_json_roundtrip_gives_identical_outputs_on_adult():
    adult = load_builtin("adult")
    train, test = adult.split("train"), adult.split("test")
    enc = FeatureEncoder(exclude=["income"]).fit(train.table, schema=train.schema)
    again = FeatureEncoder.from_json(enc.to_json())
    a, b = enc.transform(test.table), again.transform(test.table)
    assert np.array_equal(a.numeric, b.numeric) and np.array_equal(a.categorical, b.categorical)
    assert a.numeric.shape == (16281, 6) and a.categorical.shape == (16281, 8)
    # training columns are standardised: mean 0, std 1
    fitted = enc.transform(train.table).numeric
    assert np.allclose(fitted.mean(axis=0), 0, atol=1e-5) and np.allclose(fitted.std(axis=0), 1, atol=1e-4)


def test_images_are_scaled_and_given_a_channel():
    mnist = load_builtin("mnist5k")
    enc = FeatureEncoder(exclude=["label"]).fit(mnist.table, mnist.arrays, schema=mnist.schema)
    out = enc.transform(mnist.table, mnist.arrays)
    assert out.images["image"].shape == (5000, 1, 28, 28)
    assert out.images["image"].max() == 1.0 and out.images["image"].dtype == np.float32
    with pytest.raises(SchemaError, match=r"images must have shape \[1, 28, 28\]"):
        enc.transform(mnist.table, {"image": np.zeros((5000, 14, 14), np.uint8)})


def test_missing_column_is_a_schema_error():
    enc = FeatureEncoder().fit(pd.DataFrame({"a": [1.0], "b": ["x"]}))
    with pytest.raises(SchemaError, match="missing columns: b"):
        enc.transform(pd.DataFrame({"a": [1.0]}))


def test_label_encoder_roundtrip_and_unknown_labels():
    enc = LabelEncoder().fit(pd.Series([2, 0, 1, 2]))
    assert enc.classes_ == ["0", "1", "2"]
    assert enc.transform(pd.Series([1, 2])).tolist() == [1, 2]
    assert enc.inverse_transform(np.array([2, 0])) == ["2", "0"]
    assert LabelEncoder.from_dict(enc.to_dict()).classes_ == enc.classes_
    with pytest.raises(SchemaError, match="labels not seen in training: 7"):
        enc.transform(pd.Series([7]))
