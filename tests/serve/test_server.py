"""A real `amploop serve` process on 127.0.0.1: routes, validation, auth, feedback and the prediction log."""

from __future__ import annotations

import subprocess
import sys
from collections import Counter

import httpx
import numpy as np
import pandas as pd
import pytest

import amploop
from amploop import Store
from amploop.serve.auth import create_api_key
from tests.conftest import worker_env
from tests.serve.conftest import MODEL, ServerProcess, plants_records


@pytest.fixture(scope="module")
def server(plants_ws):
    with ServerProcess(plants_ws, f"{MODEL}@champion") as running:
        yield running


@pytest.fixture(scope="module")
def keys(plants_ws):
    with Store.open(plants_ws) as store:
        return {role: create_api_key(store, role=role, name=f"test {role}").token for role in ("reader", "operator")}


def test_predict_answers_what_load_model_answers_for_one_record_and_for_many(server, plants_ws):
    records = plants_records(25)
    many = httpx.post(f"{server.url}/v1/predict", json={"records": records}, timeout=10)
    one = httpx.post(f"{server.url}/v1/predict", json={"record": records[0]}, timeout=10)
    assert many.status_code == 200 and one.status_code == 200
    body = many.json()
    assert body["model_version"] == "plants:1" and len(body["request_id"]) == 32
    assert many.headers["x-request-id"] == body["request_id"]
    with Store.open(plants_ws) as store:
        expected = amploop.load_model("plants@champion", store=store).predict_outputs(pd.DataFrame(records))
    got = np.array([[p[c] for c in ("fern", "moss", "palm")] for p in body["probabilities"]])
    np.testing.assert_allclose(got, expected, atol=1e-6)
    assert body["predictions"] == [["fern", "moss", "palm"][i] for i in expected.argmax(1)]
    np.testing.assert_allclose(body["confidence"], expected.max(1), atol=1e-6)
    assert one.json()["predictions"] == body["predictions"][:1]


def test_invalid_records_get_422_with_one_error_per_field(server):
    records = plants_records(3)
    records[0]["length"] = "long"
    del records[1]["soil"]
    records[2]["colour"] = "green"
    response = httpx.post(f"{server.url}/v1/predict", json={"records": records}, timeout=10)
    assert response.status_code == 422
    errors = {tuple(e["loc"]): e["type"] for e in response.json()["detail"]}
    assert errors == {
        ("records", 0, "length"): "float_type",
        ("records", 1, "soil"): "missing",
        ("records", 2, "colour"): "extra_forbidden",
    }
    neither = httpx.post(f"{server.url}/v1/predict", json={"rows": records}, timeout=10)
    assert neither.status_code == 422
    not_json = httpx.post(f"{server.url}/v1/predict", content=b"{nope", timeout=10)
    assert not_json.status_code == 422


def test_size_limits_answer_413(server):
    too_many = httpx.post(f"{server.url}/v1/predict", json={"records": plants_records(1001)}, timeout=30)
    assert too_many.status_code == 413 and "max_rows_per_request" in too_many.json()["message"]
    huge = b'{"records": [' + b",".join([b'{"length": 1.0}'] * 80_000) + b"]}"  # ~1.2 MB
    too_big = httpx.post(f"{server.url}/v1/predict", content=huge, timeout=30)
    assert too_big.status_code == 413 and "max_request_bytes" in too_big.json()["message"]


def test_feedback_needs_an_operator_key_and_is_stored_once_per_row(server, plants_ws, keys):
    answer = httpx.post(f"{server.url}/v1/predict", json={"records": plants_records(2)}, timeout=10).json()
    request_id = answer["request_id"]
    url = f"{server.url}/v1/feedback"
    assert httpx.post(url, json={"request_id": request_id, "label": "fern"}, timeout=10).status_code == 401
    reader = {"Authorization": f"Bearer {keys['reader']}"}
    operator = {"X-API-Key": keys["operator"]}
    assert httpx.post(url, json={"request_id": request_id, "label": "fern"}, headers=reader).status_code == 403
    wrong = {"Authorization": f"Bearer {keys['operator'][:-2]}xx"}
    assert httpx.post(url, json={"request_id": request_id, "label": "fern"}, headers=wrong).status_code == 401
    # the log is written off the request path: the request id is known within a moment
    for _ in range(50):
        done = httpx.post(url, json={"request_id": request_id, "labels": ["fern", "moss"]}, headers=operator)
        if done.status_code != 404:
            break
        import time

        time.sleep(0.1)
    assert done.status_code == 201 and done.json() == {"request_id": request_id, "recorded": 2}
    again = httpx.post(url, json={"request_id": request_id, "row": 1, "label": "palm"}, headers=operator)
    assert again.status_code == 409
    unknown = httpx.post(url, json={"request_id": "f" * 32, "label": "fern"}, headers=operator)
    assert unknown.status_code == 404
    with Store.open(plants_ws) as store:
        stored = store.feedback([request_id])
    operator_id = keys["operator"].split("_")[1]
    assert [(f.row, f.label, f.actor) for f in stored] == [
        (0, "fern", f"key:{operator_id}"),
        (1, "moss", f"key:{operator_id}"),
    ]


def test_health_ready_metrics_models_and_the_openapi_schema(server, keys):
    assert httpx.get(f"{server.url}/health").json() == {"status": "ok"}
    assert httpx.get(f"{server.url}/ready").json() == {"ready": True, "model_version": "plants:1"}
    httpx.post(f"{server.url}/v1/predict", json={"records": plants_records(5)}, timeout=10)
    metrics = httpx.get(f"{server.url}/metrics").text
    assert 'amploop_model_info{name="plants",precision="fp32",slot="primary",version="1"} 1.0' in metrics
    assert "amploop_batch_rows_bucket" in metrics and "amploop_queue_rows" in metrics
    assert 'amploop_http_requests_total{route="/v1/predict",status="200"}' in metrics
    models = httpx.get(f"{server.url}/v1/models").json()["models"]
    assert models[0]["serving"]["version"] == 1 and models[0]["reference"] == "plants@champion"
    schema = httpx.get(f"{server.url}/openapi.json").json()
    assert {"/v1/predict", "/v1/feedback", "/v1/models", "/health", "/ready", "/metrics"} <= set(schema["paths"])
    refresh = httpx.post(f"{server.url}/v1/admin/refresh", headers={"X-API-Key": keys["reader"]})
    assert refresh.status_code == 403
    refresh = httpx.post(f"{server.url}/v1/admin/refresh", headers={"X-API-Key": keys["operator"]})
    assert refresh.status_code == 200 and refresh.json()["swapped"] == []


def test_every_answered_request_is_one_row_in_the_prediction_log(plants_ws, tmp_path):
    with ServerProcess(plants_ws, f"{MODEL}:2") as server, Store.open(plants_ws) as store:
        before = store.count_predictions(MODEL, version=2)
        ids = []
        for n in (1, 7, 30):
            answer = httpx.post(f"{server.url}/v1/predict", json={"records": plants_records(n, seed=n)}, timeout=10)
            ids.append(answer.json()["request_id"])
        bad = httpx.post(f"{server.url}/v1/predict", json={"records": [{"length": 1}]}, timeout=10)
        assert bad.status_code == 422
    # the server has drained and flushed its log on SIGTERM
    assert server.process.returncode == 0, server.output
    with Store.open(plants_ws) as store:
        rows = store.prediction_log(MODEL, version=2)[before:]
    assert [r.request_id for r in rows] == ids
    assert [r.n_rows for r in rows] == [1, 7, 30]
    assert rows[2].features == plants_records(30, seed=30)
    assert len(rows[2].outputs["predictions"]) == 30 and rows[2].latency_ms > 0


def test_predict_can_require_a_key(plants_ws, keys):
    with ServerProcess(plants_ws, f"{MODEL}@champion", "--require-key", "--no-prediction-log") as server:
        record = {"record": plants_records(1)[0]}
        assert httpx.post(f"{server.url}/v1/predict", json=record).status_code == 401
        reader = {"Authorization": f"Bearer {keys['reader']}"}
        assert httpx.post(f"{server.url}/v1/predict", json=record, headers=reader).status_code == 200


def test_a_wrong_reference_stops_before_binding_a_port(plants_ws):
    done = subprocess.run(
        [sys.executable, "-m", "amploop", "serve", "plants@nowhere", "--port", "1"],
        env=worker_env(plants_ws),
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 8
    assert done.stderr.strip().splitlines() == [
        "error: model 'plants' has no alias 'nowhere'; `amploop models show plants` lists its aliases"
    ]


def test_shadow_scores_every_request_off_the_answer_and_the_canary_answers_its_share(plants_ws):
    with Store.open(plants_ws) as store:
        served_before = store.count_predictions(MODEL, version=2)
        shadow_before = store.count_predictions(MODEL, version=2, role="shadow")
    args = ("--shadow", f"{MODEL}:2", "--canary", f"{MODEL}:2", "--canary-percent", "50")
    with ServerProcess(plants_ws, f"{MODEL}:1", *args) as server:
        answers = [
            httpx.post(f"{server.url}/v1/predict", json={"records": plants_records(3, seed=i)}, timeout=10).json()
            for i in range(60)
        ]
        slots = {m["slot"]: m["serving"]["version"] for m in httpx.get(f"{server.url}/v1/models").json()["models"]}
    assert slots == {"primary": 1, "canary": 2, "shadow": 2}
    by_version = Counter(a["model_version"] for a in answers)
    assert set(by_version) == {"plants:1", "plants:2"}
    assert 10 <= by_version["plants:2"] <= 50  # half of 60, give or take 20 (a 5-sigma band)
    with Store.open(plants_ws) as store:
        served = store.count_predictions(MODEL, version=2) - served_before
        shadow = store.prediction_log(MODEL, version=2, role="shadow")[shadow_before:]
    assert served == by_version["plants:2"]
    assert len(shadow) == 60 and {r.request_id for r in shadow} == {a["request_id"] for a in answers}
    assert all(len(r.outputs["predictions"]) == 3 for r in shadow)
