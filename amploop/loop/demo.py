"""The demo's monitoring story: rainfall traffic through the server, and the alarm near row 12,000.

After the serving demo (:func:`amploop.serve.demo.run_demo`), a model is trained on the first
8,000 days of the built-in ``rainfall`` series and promoted; then the later days are sent to
the prediction server in time order, each request followed by its true labels as feedback, and
the prediction log is monitored in windows. The series changes near row 12,000 (its rain rate
and its relation to the weather move), so the realized accuracy falls there; the demo prints
each window and the first critical alarm's row.
"""

from __future__ import annotations

import dataclasses
import time
from collections.abc import Callable
from typing import Any

from amploop.config import AmploopConfig, MonitorConfig
from amploop.data import load_builtin
from amploop.registry.demo import DemoResult
from amploop.registry.store import Store

__all__ = ["DEMO_TRAINING_ROWS", "rainfall_story", "run_demo"]

DEMO_TRAINING_ROWS = 8000  # days the rainfall model learns from; the rest arrive as traffic
DEMO_REQUEST_ROWS = 20  # rows per prediction request
DEMO_WINDOW_ROWS = 500  # rows per monitoring window
MODEL = "rainfall"


def run_demo(
    config: AmploopConfig | None = None,
    *,
    progress: bool = False,
    on_stage: Callable[[str, Any], None] | None = None,
) -> DemoResult:
    """Every stage that exists: the serving demo, then rainfall traffic monitored until its alarm."""
    from amploop.serve.demo import run_demo as run_serve_demo

    config = config or AmploopConfig()
    result = run_serve_demo(config, progress=progress, on_stage=on_stage)
    started = time.perf_counter()
    with Store.open() as store:
        story = rainfall_story(store, config, on_stage or (lambda stage, found: None), progress=progress)
        info = store.info().to_dict()  # what the store holds now, monitoring's reports and alerts included
    stages = [*result.stages, {"stage": "monitor", **story}]
    seconds = round(result.seconds + time.perf_counter() - started, 2)
    return dataclasses.replace(result, stages=stages, store=info, seconds=seconds)


def rainfall_story(
    store: Store,
    config: AmploopConfig,
    tell: Callable[[str, Any], None],
    *,
    training_rows: int = DEMO_TRAINING_ROWS,
    traffic_rows: int | None = None,
    progress: bool = False,
) -> dict[str, Any]:
    """Train on the early days, serve the later ones with feedback, monitor; the windows and the first alarm."""
    import httpx

    from amploop.monitor.windows import monitor_model
    from amploop.registry.aliases import promote
    from amploop.registry.training import train_version
    from amploop.serve.auth import create_api_key
    from amploop.serve.demo import background_server
    from amploop.serve.scoring import table_to_records

    folder = store.workspace.home / "demo"
    folder.mkdir(parents=True, exist_ok=True)
    series = load_builtin("rainfall").table
    early = folder / "rainfall-early.csv"
    series.iloc[:training_rows].to_csv(early, index=False)
    train_config = config.model_copy(
        update={
            "data": config.data.model_copy(update={"target": "rain", "slice_columns": []}),
            "model": config.model.model_copy(update={"name": MODEL}),
            "evaluate": config.evaluate.model_copy(update={"robustness": False}),
        }
    )
    trained = train_version(train_config, dataset=str(early), store=store, progress=progress)
    assert trained is not None
    version = trained.version.version
    promote(store, MODEL, version, alias="champion", reason="demo: trained on the early rainfall days", force=True)
    later = (
        series.iloc[training_rows:]
        if traffic_rows is None
        else series.iloc[training_rows : training_rows + traffic_rows]
    )
    records = table_to_records(later.drop(columns=["rain"]))
    labels = later["rain"].tolist()
    key = create_api_key(store, role="operator", name="demo feedback")
    started = time.perf_counter()
    with (
        background_server(store, config, f"{MODEL}:{version}") as (url, state),
        httpx.Client(base_url=url, timeout=30) as client,
    ):
        served = state.primary.slot.current
        assert served is not None  # the server checked and loaded it before binding the port
        tell("serve", {"url": url, "version": served.reference, "precision": served.precision})
        sent = []
        for start in range(0, len(records), DEMO_REQUEST_ROWS):  # in time order: the log keeps arrival order
            answer = client.post("/v1/predict", json={"records": records[start : start + DEMO_REQUEST_ROWS]})
            answer.raise_for_status()
            sent.append((answer.json()["request_id"], labels[start : start + DEMO_REQUEST_ROWS]))
        for request_id, truth in sent:  # the labels arrive later, as they do for weather
            body = {"request_id": request_id, "labels": truth}
            for attempt in range(50):  # feedback needs its request in the log, which is written within a moment
                given = client.post("/v1/feedback", json=body, headers={"Authorization": f"Bearer {key.token}"})
                if given.status_code != 404:
                    break
                time.sleep(0.05 * (attempt + 1))
            given.raise_for_status()
    streamed_s = time.perf_counter() - started
    monitored = monitor_model(
        MODEL, version=version, window=DEMO_WINDOW_ROWS, store=store, config=_monitor_config(config.monitor)
    )
    tell("monitor", monitored)
    critical = [a for a in monitored.alerts if a["severity"] == "critical"]
    first = critical[0] if critical else None
    first_row = None if first is None else training_rows + first["window_first_row"]
    if first is not None and first["kind"] == "error_rate_change":
        first_row = training_rows + first["details"]["row"]
    found = {
        "model": f"{MODEL}:{version}",
        "training_rows": training_rows,
        "traffic_rows": len(records),
        "streamed_s": round(streamed_s, 2),
        "windows": len(monitored.windows),
        "first_alarm_row": first_row,
        "first_alarm": first,
        "monitor": monitored.to_dict(),
    }
    tell("alarm", found)
    return found


def _monitor_config(configured: MonitorConfig) -> MonitorConfig:
    return configured.model_copy(update={"window_size": DEMO_WINDOW_ROWS})
