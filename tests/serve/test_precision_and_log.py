"""A reduced precision is served only when it agrees with fp32; the prediction log counts what it drops."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from amploop.errors import ConfigError
from amploop.serve.models import PARITY_ROWS, load_served_model
from amploop.serve.predlog import PredictionLogWriter


def test_int8_is_checked_against_fp32_on_the_holdout_and_refused_below_the_threshold(adult_store):
    served = load_served_model(adult_store, "adult", 1, precision="int8", min_agreement=0.98)
    assert (served.precision, served.runtime) == ("int8", "onnx")
    parity = served.parity
    assert parity.rows == PARITY_ROWS and 0.98 <= parity.agreement < 1.0  # int8 changes a few answers
    with pytest.raises(
        ConfigError, match=r"adult:1 at int8 on onnx agrees with fp32 on 9\d\.\d\d% of 2000 holdout rows"
    ):
        load_served_model(adult_store, "adult", 1, precision="int8", min_agreement=1.0)


def test_fp16_on_a_cpu_is_refused_with_the_reason(adult_store):
    with pytest.raises(ConfigError, match="fp16"):
        load_served_model(adult_store, "adult", 1, precision="fp16")


def _entry(i: int) -> dict:
    return {
        "request_id": f"{i:032x}",
        "model_name": "adult",
        "version": 1,
        "role": "served",
        "at": datetime.now(UTC),
        "n_rows": 1,
        "features": [{"age": 30 + i}],
        "outputs": {"predictions": ["<=50K"]},
        "latency_ms": 1.5,
        "replica": "test:1",
    }


def test_a_full_log_buffer_counts_each_dropped_entry_and_writes_the_rest(adult_store):
    dropped = []
    writer = PredictionLogWriter(adult_store, max_buffer=3, flush_every_s=0.05, on_drop=dropped.append)
    before = adult_store.count_predictions("adult")
    accepted = [writer.add(_entry(i)) for i in range(5)]  # the writer thread is not running yet
    assert accepted == [True, True, True, False, False] and writer.dropped == 2 and dropped == [1, 1]
    writer.start().close()
    assert writer.written == 3 and writer.pending == 0
    assert adult_store.count_predictions("adult") - before == 3
    logged = adult_store.prediction_log("adult")[-3:]
    assert [r.features for r in logged] == [[{"age": 30}], [{"age": 31}], [{"age": 32}]]
