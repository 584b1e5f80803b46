"""`amploop monitor` over a real store: windows of the prediction log, stored reports, alerts and the webhook.

The log rows are what a server writes (the served model's real calibrated outputs, through
``Store.log_predictions``); the server path itself runs in the demo's test.
"""

from __future__ import annotations

import json
import threading
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from http.server import BaseHTTPRequestHandler, HTTPServer
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from amploop.config import MonitorConfig
from amploop.errors import NotFound
from amploop.monitor.alerts import wait_for_deliveries
from amploop.monitor.windows import monitor_model
from amploop.registry import Store
from amploop.registry.loading import load_model
from amploop.workspace import Workspace
from tests.serve.conftest import MODEL, plants_on, plants_table
from tests.test_cli import run


@pytest.fixture(scope="module", params=["sqlite", "postgresql"])
def ws(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Workspace]:
    with plants_on(request.param, tmp_path_factory.mktemp(f"monitor-{request.param}")) as workspace:
        yield workspace


def log_rows(
    store: Store,
    rows: pd.DataFrame,
    *,
    per_request: int = 10,
    start: datetime | None = None,
    version: int = 1,
    row_s: float = 1.0,
) -> list[str]:
    """Log ``rows`` as a server answering with ``version`` in requests of ``per_request`` rows does, a
    request every ``row_s`` seconds per row from ``start``; the request ids."""
    predictor = load_model(f"{MODEL}:{version}", store=store)
    features = rows.drop(columns=["kind"])
    probabilities = predictor.predict_outputs(features)
    classes = [str(c) for c in predictor.bundle.classes]
    start = start or datetime.now(UTC)
    entries, ids = [], []
    for i in range(0, len(rows), per_request):
        p = probabilities[i : i + per_request]
        request_id = uuid.uuid4().hex
        ids.append(request_id)
        entries.append(
            {
                "request_id": request_id,
                "model_name": MODEL,
                "version": version,
                "role": "served",
                "at": start + timedelta(seconds=i * row_s),
                "n_rows": len(p),
                "features": features.iloc[i : i + per_request].to_dict(orient="records"),
                "outputs": {
                    "predictions": [classes[j] for j in p.argmax(axis=1)],
                    "probabilities": [dict(zip(classes, map(float, row), strict=True)) for row in p],
                    "confidence": [float(c) for c in p.max(axis=1)],
                },
                "latency_ms": 1.0,
                "replica": "test:1",
            }
        )
    store.log_predictions(entries)
    return ids


def give_labels(store: Store, ids: list[str], labels: list[str], per_request: int = 10) -> None:
    for n, request_id in enumerate(ids):
        chunk = labels[n * per_request : (n + 1) * per_request]
        store.record_feedback(request_id, dict(enumerate(chunk)))


def clear_log(store: Store) -> None:
    from sqlalchemy import delete

    from amploop.registry.tables import AlertRow, DriftReportRow, FeedbackRow, PredictionRow

    with store.write() as session:
        for table in (AlertRow, DriftReportRow, FeedbackRow, PredictionRow):
            session.execute(delete(table))


def test_windows_find_planted_drift_continue_where_they_stopped_and_stay_quiet_without_it(ws: Workspace):
    with Store.open(ws) as store:
        clear_log(store)
        calm = plants_table(400, seed=11)
        log_rows(store, calm)
        first = monitor_model(MODEL, window=200, store=store)
        assert [w.window["n_rows"] for w in first.windows] == [200, 200] and first.pending_rows == 0
        assert [w.window["first_row"] for w in first.windows] == [0, 200]
        assert all(w.features["drifted"] == [] for w in first.windows), [w.features for w in first.windows]
        assert not any(a["kind"] == "feature_drift" for a in first.alerts)
        shifted = plants_table(250, seed=12).assign(length=lambda t: t["length"] + 3.0, soil="clay")
        log_rows(store, shifted)
        second = monitor_model(MODEL, window=200, store=store)
        assert len(second.windows) == 1 and second.pending_rows == 50  # a window is reported once it is full
        window = second.windows[0]
        assert window.window["first_row"] == 400 and set(window.features["drifted"]) >= {"length", "soil"}
        assert window.predictions["bbsd"]["drifted"]  # the outputs moved with the inputs
        assert window.estimated is not None and window.realized is None  # no labels yet
        assert monitor_model(MODEL, window=200, store=store).windows == []  # nothing new to report
        stored = store.drift_reports(MODEL, version=1)
        assert [r.report["window"]["first_row"] for r in stored] == [0, 200, 400]
        assert stored[-1].drifted and stored[-1].report["features"]["drifted"] == window.features["drifted"]
        kinds = {a.kind for a in store.alerts(MODEL)}
        assert "prediction_drift" in kinds
        audited = [e for e in store.audit_log() if e.action == "monitor.alert"]
        assert len(audited) == len(store.alerts(MODEL)) and audited[-1].target == f"model:{MODEL}:1"


def test_wrong_answers_found_through_labels_raise_a_critical_alert(ws: Workspace):
    with Store.open(ws) as store:
        clear_log(store)
        rows = plants_table(300, seed=21)
        ids = log_rows(store, rows)
        truth = rows["kind"].tolist()
        flipped = [{"fern": "moss", "moss": "palm", "palm": "fern"}[k] if i >= 100 else k for i, k in enumerate(truth)]
        give_labels(store, ids, flipped)  # the world changed: the same inputs now mean another kind
        result = monitor_model(MODEL, window=100, store=store, config=MonitorConfig(min_labels=50))
        realized = [w.realized["accuracy"] for w in result.windows]
        estimated = [w.estimated["accuracy"] for w in result.windows]
        assert realized[0] > 0.9 and max(realized[1:]) < 0.1
        assert min(estimated) > 0.8  # confidences cannot see a change of meaning; only labels can
        critical = [a for a in result.alerts if a["severity"] == "critical"]
        assert critical and critical[0]["window_first_row"] == 100
        assert {a["kind"] for a in critical} >= {"realized_performance"}
        assert "measured on labelled rows" in critical[0]["message"]


def test_two_monitors_at_once_store_each_window_once(ws: Workspace):
    with Store.open(ws) as store:
        clear_log(store)
        log_rows(store, plants_table(600, seed=31))
        monitor_model(MODEL, window=100, store=store, max_windows=0)  # the reference profile, built once
    results, errors = [], []

    def watch() -> None:
        try:
            with Store.open(ws) as own:
                results.append(monitor_model(MODEL, window=100, store=own))
        except Exception as exc:  # surfaced below
            errors.append(exc)

    threads = [threading.Thread(target=watch) for _ in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(120)
    assert not errors, errors
    with Store.open(ws) as store:
        stored = store.drift_reports(MODEL, version=1)
    assert sorted(r.report["window"]["first_row"] for r in stored) == [0, 100, 200, 300, 400, 500]
    assert sum(len(r.windows) for r in results) + sum(r.skipped_windows for r in results) == 12


def test_windows_by_time_and_errors_for_unknown_models(ws: Workspace):
    with Store.open(ws) as store:
        clear_log(store)
        start = datetime(2026, 1, 1, tzinfo=UTC)
        log_rows(store, plants_table(300, seed=41), per_request=10, start=start)  # a request a second
        result = monitor_model(MODEL, every_s=100, store=store)
        assert [w.window["n_requests"] for w in result.windows] == [10, 10]  # the last window is still open
        assert result.pending_rows == 100
        with pytest.raises(NotFound):
            monitor_model("no-such-model", store=store)


class _Receiver(BaseHTTPRequestHandler):
    status = 200
    bodies: list[dict] = []

    def do_POST(self) -> None:  # noqa: N802 - http.server's name
        length = int(self.headers["Content-Length"])
        type(self).bodies.append(json.loads(self.rfile.read(length)))
        self.send_response(type(self).status)
        self.end_headers()

    def log_message(self, *args: object) -> None:
        pass


@pytest.mark.parametrize("status", [200, 500])
def test_alerts_are_posted_to_the_webhook_and_the_outcome_is_kept(ws: Workspace, status: int):
    receiver = type("Receiver", (_Receiver,), {"status": status, "bodies": []})
    server = HTTPServer(("127.0.0.1", 0), receiver)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    url = f"http://127.0.0.1:{server.server_address[1]}/hook"
    try:
        with Store.open(ws) as store:
            clear_log(store)
            log_rows(store, plants_table(200, seed=51).assign(height=lambda t: t["height"] - 4.0))
            config = MonitorConfig(webhook_url=url, webhook_timeout_s=2)
            result = monitor_model(MODEL, window=200, store=store, config=config)
            wait_for_deliveries(30)
            alerts = store.alerts(MODEL)
    finally:
        server.shutdown()
    assert result.alerts and len(alerts) == len(result.alerts)
    attempts = 1 if status == 200 else 3  # a server error is retried, then given up on
    assert len(receiver.bodies) == attempts
    assert receiver.bodies[0]["model"] == f"{MODEL}:1"
    assert [a["kind"] for a in receiver.bodies[0]["alerts"]] == [a.kind for a in alerts]
    expected = "delivered" if status == 200 else f"not delivered: HTTP 500 ({url})"
    assert {a.delivery for a in alerts} == {expected}


def test_monitor_and_drift_on_the_command_line(ws: Workspace, tmp_path: Path):
    with Store.open(ws) as store:
        clear_log(store)
        log_rows(store, plants_table(300, seed=61))
    env = {"AMPLOOP_HOME": str(ws.home)}
    if ws.db_url.startswith("postgresql"):
        env["AMPLOOP_DB_URL"] = ws.db_url
    html = tmp_path / "window.html"
    shown = run(["monitor", MODEL, "--window", "100", "--html", str(html), "--json"], tmp_path, env)
    assert shown.returncode == 0, shown.stderr
    out = json.loads(shown.stdout)
    assert len(out["windows"]) == 3 and out["model"] == f"{MODEL}:1" and html.exists()
    people = run(["monitor", MODEL, "--window", "100"], tmp_path, env)
    assert people.returncode == 0 and "no full window yet" in people.stdout
    missing = run(["monitor", "nope"], tmp_path, env)
    assert missing.returncode == 8 and len(missing.stderr.strip().splitlines()) == 1

    reference, current = tmp_path / "ref.csv", tmp_path / "cur.parquet"
    plants_table(2000, seed=1).to_csv(reference, index=False)
    plants_table(800, seed=2).assign(width=lambda t: t["width"] * 2).to_parquet(current)
    found = run(["drift", str(reference), str(current), "--target", "kind", "--json"], tmp_path)
    assert found.returncode == 0, found.stderr
    report = json.loads(found.stdout)
    assert report["features"]["drifted"] == ["width"] and report["target_drift"]["drifted"] is False
    gate = run(
        ["drift", str(reference), str(current), "--target", "kind", "--fail-on-drift", "--method", "ks"], tmp_path
    )
    assert gate.returncode == 0  # one column of four: no dataset drift
    wide = plants_table(800, seed=3).assign(width=lambda t: t["width"] * 2, length=lambda t: t["length"] + 2)
    wide.to_csv(tmp_path / "wide.csv", index=False)
    refused = run(
        ["drift", str(reference), str(tmp_path / "wide.csv"), "--target", "kind", "--fail-on-drift"], tmp_path
    )
    assert refused.returncode == 9 and "drift:" in refused.stderr

    no_soil = tmp_path / "no-soil.csv"
    plants_table(50, seed=4).drop(columns=["soil"]).rename(columns={"height": "heigth"}).to_csv(no_soil, index=False)
    bad = run(["drift", str(reference), str(no_soil)], tmp_path)
    assert bad.returncode == 5 and "no columns 'height', 'soil'" in bad.stderr
    assert "did you mean heigth?" in bad.stderr and len(bad.stderr.strip().splitlines()) == 1
    texty = tmp_path / "texty.csv"
    plants_table(50, seed=5).assign(width="wide").to_csv(texty, index=False)
    typed = run(["drift", str(reference), str(texty)], tmp_path)
    assert typed.returncode == 5 and "column 'width' holds numbers in ref.csv but text in texty.csv" in typed.stderr
    empty = tmp_path / "empty.csv"
    empty.write_text("length,width,height,soil,kind\n")
    assert run(["drift", str(reference), str(empty)], tmp_path).returncode == 4
    assert np.isfinite(report["seconds"])


def test_a_regressor_is_watched_for_input_drift(tmp_path: Path):
    """No classes, so no outputs to compare: its windows report the inputs, and say nothing of accuracy."""
    import amploop
    from amploop import AmploopConfig, EvaluateConfig, ModelConfig, TrainConfig

    ws = Workspace.from_env({"AMPLOOP_HOME": str(tmp_path / ".amploop")})
    path = tmp_path / "heights.csv"
    plants_table(500, seed=71).drop(columns=["kind"]).to_csv(path, index=False)
    config = AmploopConfig(
        data={"target": "height"},
        model=ModelConfig(name="heights"),
        train=TrainConfig(epochs=2, batch_size=32, precision="fp32"),
        evaluate=EvaluateConfig(robustness=False, bootstrap_samples=100),
    )
    with Store.open(ws) as store:
        amploop.train_version(config, dataset=str(path), store=store)
        rows = plants_table(200, seed=72).drop(columns=["kind", "height"]).assign(width=lambda t: t["width"] + 5)
        predictor = load_model("heights:1", store=store)
        values = predictor.predict_outputs(rows)
        store.log_predictions(
            [
                {
                    "request_id": uuid.uuid4().hex,
                    "model_name": "heights",
                    "version": 1,
                    "role": "served",
                    "at": datetime.now(UTC),
                    "n_rows": 1,
                    "features": [record],
                    "outputs": {"predictions": [float(value)]},
                    "latency_ms": 1.0,
                    "replica": "test:1",
                }
                for record, value in zip(rows.to_dict(orient="records"), values, strict=True)
            ]
        )
        with pytest.raises(NotFound, match="no champion; pass --version"):
            monitor_model("heights", store=store)
        result = monitor_model("heights", version=1, window=100, store=store)
    assert [w.features["drifted"] for w in result.windows] == [["width"], ["width"]]
    assert all(w.estimated is None and w.realized is None and w.predictions == {} for w in result.windows)
    assert {a["kind"] for a in result.alerts} == set()  # one column of three: a drifted column, not yet an alert
