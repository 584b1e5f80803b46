import subprocess
import sys

import numpy as np
import pandas as pd
from hypothesis import given, settings
from hypothesis import strategies as st

from amploop.data import fingerprint, load_builtin

# Pinned: a change here means every stored lineage link would break. Change deliberately.
ADULT_FINGERPRINT = "53f1f53d15f5"
MNIST_FINGERPRINT = "f804838c7a8e"
RAINFALL_FINGERPRINT = "552805be2394"


def test_builtin_fingerprints_are_pinned():
    assert load_builtin("adult").fingerprint[:12] == ADULT_FINGERPRINT
    assert load_builtin("mnist5k").fingerprint[:12] == MNIST_FINGERPRINT
    assert load_builtin("rainfall").fingerprint[:12] == RAINFALL_FINGERPRINT


def test_stable_across_processes():
    code = "from amploop.data import load_builtin; print(load_builtin('adult').fingerprint)"
    runs = {
        subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout.strip()
        for _ in range(2)
    }
    assert runs == {load_builtin("adult").fingerprint}


def test_every_single_cell_change_changes_the_fingerprint():
    adult = load_builtin("adult")
    base = adult.fingerprint
    rng = np.random.default_rng(0)
    for _ in range(20):
        row, col = int(rng.integers(adult.n_rows)), int(rng.integers(adult.table.shape[1]))
        table = adult.table.copy()
        value = table.iat[row, col]
        table.iat[row, col] = (
            (value + 1) if isinstance(value, (int, float, np.number)) and value == value else "changed"
        )
        assert fingerprint(table) != base, (row, col)


def test_an_image_pixel_change_changes_the_fingerprint():
    mnist = load_builtin("mnist5k")
    images = mnist.arrays["image"].copy()
    images[4321, 14, 14] ^= 1
    assert fingerprint(mnist.table, {"image": images}) != mnist.fingerprint


def test_order_sensitive_and_insensitive_variants():
    rain = load_builtin("rainfall")
    shuffled = rain.take(np.random.default_rng(1).permutation(rain.n_rows))
    assert shuffled.fingerprint != rain.fingerprint
    assert shuffled.content_fingerprint == rain.content_fingerprint


def test_column_names_are_part_of_the_content():
    a = pd.DataFrame({"x": [1, 2]})
    assert fingerprint(a) != fingerprint(a.rename(columns={"x": "y"}))


@settings(max_examples=60, deadline=None)
@given(
    values=st.lists(
        st.one_of(st.integers(-(10**6), 10**6), st.floats(allow_nan=False, width=32)), min_size=2, max_size=30
    ),
    position=st.integers(0, 10**6),
    delta=st.integers(1, 1000),
)
def test_any_numeric_change_is_detected(values, position, delta):
    table = pd.DataFrame({"v": [float(v) for v in values]})
    changed = table.copy()
    i = position % len(values)
    changed.iat[i, 0] = table.iat[i, 0] + delta
    if changed.iat[i, 0] != table.iat[i, 0]:  # a float so large that +delta is the same float
        assert fingerprint(changed) != fingerprint(table)
    assert fingerprint(table.copy()) == fingerprint(table)
