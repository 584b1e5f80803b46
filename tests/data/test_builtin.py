import numpy as np
import pytest

from amploop.data import builtin_info, builtin_names, load_builtin
from amploop.errors import DatasetNotFound

GEBRU_SECTIONS = {
    "motivation",
    "composition",
    "collection",
    "preprocessing",
    "uses",
    "distribution",
    "maintenance",
}


def test_three_builtin_datasets_with_their_row_counts():
    assert builtin_names() == ["adult", "mnist5k", "rainfall"]
    assert {n: load_builtin(n).n_rows for n in builtin_names()} == {
        "adult": 48842,
        "mnist5k": 5000,
        "rainfall": 18159,
    }


@pytest.mark.parametrize("name", ["adult", "mnist5k", "rainfall"])
def test_each_has_a_full_datasheet_licence_and_attribution(name):
    info = builtin_info(name)
    assert set(info.datasheet) == GEBRU_SECTIONS
    assert all(len(text) > 40 for text in info.datasheet.values())
    assert info.licence and info.attribution and info.citation
    assert info.rows == load_builtin(name).n_rows
    assert all(len(f["sha256_of_original"]) == 64 for f in info.files)


def test_adult_keeps_the_original_split_and_cleans_labels_and_missing_values():
    adult = load_builtin("adult")
    assert len(adult.splits["train"]) == 32561 and len(adult.splits["test"]) == 16281
    assert sorted(adult.labels.unique()) == ["<=50K", ">50K"]  # the test file's "." is gone
    assert adult.table.columns.tolist()[:3] == ["age", "workclass", "fnlwgt"]
    # '?' means missing: counts from the UCI files (train + test)
    assert adult.table["workclass"].isna().sum() == 1836 + 963
    assert adult.table["occupation"].isna().sum() == 1843 + 966
    assert adult.table["native_country"].isna().sum() == 583 + 274
    assert adult.schema["sex"].categories == ("Female", "Male")
    first = adult.table.iloc[0]
    assert (first["age"], first["workclass"], first["income"]) == (39, "State-gov", "<=50K")
    positive = (adult.labels == ">50K").mean()
    assert 0.23 < positive < 0.25


def test_adult_split_is_a_derived_dataset():
    adult = load_builtin("adult")
    test = adult.split("test")
    assert test.n_rows == 16281
    assert test.parents == (adult.fingerprint,)
    assert test.table.iloc[0]["age"] == 25  # first row of adult.test


def test_mnist5k_is_500_images_of_each_digit():
    mnist = load_builtin("mnist5k")
    images = mnist.arrays["image"]
    assert images.shape == (5000, 28, 28) and images.dtype == np.uint8
    assert images.max() == 255 and images.min() == 0
    assert np.bincount(mnist.labels.to_numpy()).tolist() == [500] * 10
    assert mnist.schema["image"].kind == "image" and mnist.schema["image"].shape == (28, 28)


def test_rainfall_is_in_time_order_with_its_drift():
    rain = load_builtin("rainfall")
    assert rain.table.columns.tolist()[-1] == "rain"
    assert rain.table["temperature"].iloc[0] == pytest.approx(-1.4756842473305716)
    before, after = rain.labels.iloc[:12000].mean(), rain.labels.iloc[12000:].mean()
    assert before == pytest.approx(0.29375) and after > before + 0.05


def test_each_load_is_an_independent_copy():
    first = load_builtin("adult")
    first.table.loc[0, "age"] = 99
    assert load_builtin("adult").table.loc[0, "age"] == 39


def test_unknown_builtin_suggests_close_names():
    with pytest.raises(DatasetNotFound, match="did you mean adult") as info:
        load_builtin("adlt")
    assert info.value.details["close_matches"] == ["adult"]
