"""The demo's whole story on rainfall: serve, watch, find the change, retrain, gate, promote, recover.

After the serving demo (:func:`amploop.serve.demo.run_demo`), a model is trained on the first
8,000 days of the built-in ``rainfall`` series, evaluated against its release gate and promoted.
The prediction server then answers the later days in time order, 500 days at a time (20 rows a
request); each batch's true labels arrive after its predictions, as weather does, and then the
loop controller (:class:`~amploop.loop.controller.LoopController`) takes a step: it reports the
window, and when the realized accuracy falls it retrains on the newest labelled days, gates the
challenger against the champion on the same recent rows, and promotes it; the server swaps it in
at once. The series changes near row 12,000, so the alarm, the retrain and the recovery follow it.

Each window is handed to ``tell`` as a timeline line; the story ends with an HTML page of the
accuracy over time with the loop's decisions on it. ``short`` stops the traffic at row 14,500
(for CI): the change, the retrain and the first recovered windows are all in it.
"""

from __future__ import annotations

import dataclasses
import time
from collections.abc import Callable
from typing import Any

from amploop.config import AmploopConfig
from amploop.data import load_builtin
from amploop.registry.demo import DemoResult
from amploop.registry.store import Store

__all__ = ["CHANGE_ROW", "DEMO_LOOP", "DEMO_TRAINING_ROWS", "rainfall_story", "run_demo"]

DEMO_TRAINING_ROWS = 8000  # days the first rainfall model learns from; the rest arrive as traffic
DEMO_REQUEST_ROWS = 20  # rows per prediction request
DEMO_WINDOW_ROWS = 500  # rows per monitoring window and per loop step
SHORT_TRAFFIC_ROWS = 6500  # `--short`: traffic up to row 14,500
CHANGE_ROW = 12_000  # where the series changes (its rain rate and its relation to the weather)
MODEL = "rainfall"
# The demo's loop acts on realized accuracy only: rainfall's inputs move with the seasons, so the
# input-drift rule would fire in every window. The original test rows are the old world, which
# the new one has left; a challenger may lose up to 10 points there.
DEMO_LOOP = {
    "enabled": True,
    "min_new_labels": 500,
    "min_new_rows": 500,
    "cooldown_s": 0,
    "max_retrains_per_day": 6,
    "data_window": "sliding",
    "window_rows": 2500,
    "gate_margin": 0.01,
    "max_original_regression": 0.10,
    "rollback_min_labels": 500,
    "triggers": {"drift_share": None, "realized_drop": 0.05, "min_labels": 200},
}


def run_demo(
    config: AmploopConfig | None = None,
    *,
    progress: bool = False,
    short: bool = False,
    on_stage: Callable[[str, Any], None] | None = None,
) -> DemoResult:
    """Every stage that exists: the serving demo, then the rainfall story of the closed loop."""
    from amploop.serve.demo import run_demo as run_serve_demo

    config = config or AmploopConfig()
    result = run_serve_demo(config, progress=progress, on_stage=on_stage)
    started = time.perf_counter()
    with Store.open() as store:
        story = rainfall_story(
            store,
            config,
            on_stage or (lambda stage, found: None),
            traffic_rows=SHORT_TRAFFIC_ROWS if short else None,
            progress=progress,
        )
        info = store.info().to_dict()  # what the store holds now, the loop's decisions included
    stages = [*result.stages, {"stage": "loop", **story}]
    seconds = round(result.seconds + time.perf_counter() - started, 2)
    return dataclasses.replace(result, stages=stages, store=info, seconds=seconds)


def _train_first(store: Store, config: AmploopConfig, rows: Any, progress: bool) -> tuple[AmploopConfig, int]:
    """Train on the early days, evaluate against the release gate, promote: the loop's first champion."""
    from amploop.registry.aliases import promote
    from amploop.registry.evaluations import evaluate_version
    from amploop.registry.training import train_version

    folder = store.workspace.home / "demo"
    folder.mkdir(parents=True, exist_ok=True)
    early = folder / "rainfall-early.csv"
    rows.to_csv(early, index=False)
    story_config = AmploopConfig.model_validate(
        {
            **config.to_dict(),
            "data": {**config.data.model_dump(mode="json"), "target": "rain", "slice_columns": []},
            "model": {**config.model.model_dump(mode="json"), "name": MODEL},
            "evaluate": {**config.evaluate.model_dump(mode="json"), "robustness": False},
            "monitor": {**config.monitor.model_dump(mode="json"), "window_size": DEMO_WINDOW_ROWS},
            "loop": DEMO_LOOP,
        }
    )
    trained = train_version(story_config, dataset=str(early), store=store, progress=progress)
    assert trained is not None  # a single process is rank 0
    version = trained.version.version
    evaluated = evaluate_version(f"{MODEL}:{version}", story_config, store=store)
    passed = evaluated.report.verdict.passed
    promote(
        store,
        MODEL,
        version,
        reason="demo: trained on the early rainfall days" + ("" if passed else "; its gate failed, forced"),
        force=not passed,
    )
    return story_config, version


def rainfall_story(
    store: Store,
    config: AmploopConfig,
    tell: Callable[[str, Any], None],
    *,
    training_rows: int = DEMO_TRAINING_ROWS,
    traffic_rows: int | None = None,
    progress: bool = False,
) -> dict[str, Any]:
    """Train on the early days, then serve the later ones window by window with the loop watching."""
    import httpx

    from amploop.loop.controller import LoopController
    from amploop.loop.report import write_story_html
    from amploop.serve.auth import create_api_key
    from amploop.serve.demo import background_server
    from amploop.serve.scoring import table_to_records

    series = load_builtin("rainfall").table
    story_config, first = _train_first(store, config, series.iloc[:training_rows], progress)
    end = len(series) if traffic_rows is None else min(len(series), training_rows + traffic_rows)
    later = series.iloc[training_rows:end]
    records = table_to_records(later.drop(columns=["rain"]))
    labels = later["rain"].tolist()
    key = create_api_key(store, role="operator", name="demo feedback")
    operator = {"Authorization": f"Bearer {key.token}"}
    controller = LoopController(store, MODEL, story_config, holder="amploop-demo")
    windows: list[dict[str, Any]] = []
    started = time.perf_counter()
    with (
        background_server(store, story_config, f"{MODEL}@champion") as (url, state),
        httpx.Client(base_url=url, timeout=60) as client,
    ):
        served = state.primary.slot.current
        assert served is not None  # the server checked and loaded it before binding the port
        tell("serve", {"url": url, "version": served.reference, "precision": served.precision})
        for start in range(0, len(records) - DEMO_WINDOW_ROWS + 1, DEMO_WINDOW_ROWS):
            window = _serve_window(client, operator, records, labels, start)
            step = controller.step()
            if any(d.kind in ("promoted", "rolled_back") for d in step.decisions):
                client.post("/v1/admin/refresh", headers=operator).raise_for_status()  # swap it in now
            found = _window_line(store, training_rows + start, window, step)
            windows.append(found)
            tell("window", found)
        controller.store.release_lease(MODEL, controller.holder)
    story = _summary(store, training_rows, windows, first, time.perf_counter() - started)
    story["traffic_rows"] = len(records)
    story["html"] = str(write_story_html(store.workspace.home / "demo" / "rainfall-loop.html", story))
    tell("story", story)
    return story


def _serve_window(
    client: Any, operator: dict[str, str], records: list[dict[str, Any]], labels: list[Any], start: int
) -> dict[str, Any]:
    """Send one window's rows as requests, then their labels; what the server answered."""
    answers, right, versions = [], 0, set()
    for at in range(start, start + DEMO_WINDOW_ROWS, DEMO_REQUEST_ROWS):  # in time order
        answer = client.post("/v1/predict", json={"records": records[at : at + DEMO_REQUEST_ROWS]})
        answer.raise_for_status()
        body = answer.json()
        truth = labels[at : at + DEMO_REQUEST_ROWS]
        right += sum(str(p) == str(t) for p, t in zip(body["predictions"], truth, strict=True))
        versions.add(body["model_version"])
        answers.append((body["request_id"], truth))
    for request_id, truth in answers:  # the labels arrive after the day, as they do for weather
        feedback = {"request_id": request_id, "labels": truth}
        for attempt in range(50):  # feedback needs its request in the log, which is written within a moment
            given = client.post("/v1/feedback", json=feedback, headers=operator)
            if given.status_code != 404:
                break
            time.sleep(0.05 * (attempt + 1))
        given.raise_for_status()
    return {"accuracy": right / DEMO_WINDOW_ROWS, "served_by": sorted(versions)}


def _window_line(store: Store, first_row: int, window: dict[str, Any], step: Any) -> dict[str, Any]:
    """One timeline line: the rows, who served them, how right it was, what the monitor and the loop said."""
    reports = store.drift_reports(MODEL, limit=1)
    alerts = reports[-1].report["alerts"] if reports and step.new_windows else []
    return {
        "first_row": first_row,
        "last_row": first_row + DEMO_WINDOW_ROWS - 1,
        "served_by": window["served_by"],
        "accuracy": round(window["accuracy"], 4),
        "alerts": [{"kind": a["kind"], "severity": a["severity"], "message": a["message"]} for a in alerts],
        "acted": step.acted,
        "champion": step.champion,
        "decisions": [
            {
                "kind": d.kind,
                "champion_version": d.champion_version,
                "challenger_version": d.challenger_version,
                "reasons": d.reasons,
                "accuracy": d.numbers.get("accuracy"),
            }
            for d in step.decisions
        ],
    }


def _summary(
    store: Store, training_rows: int, windows: list[dict[str, Any]], first: int, seconds: float
) -> dict[str, Any]:
    critical = [w for w in windows if any(a["severity"] == "critical" for a in w["alerts"])]
    kinds = [d["kind"] for w in windows for d in w["decisions"]]
    promoted = [w for w in windows if any(d["kind"] == "promoted" for d in w["decisions"])]

    def mean(rows: list[dict[str, Any]]) -> float | None:
        return round(sum(w["accuracy"] for w in rows) / len(rows), 4) if rows else None

    after_change = [w for w in windows if w["first_row"] >= CHANGE_ROW]
    recovered = [w for w in after_change if promoted and w["first_row"] > promoted[0]["last_row"]]
    return {
        "model": MODEL,
        "first_version": first,
        "champion": store.alias_version(MODEL, "champion"),
        "training_rows": training_rows,
        "windows": windows,
        "first_alarm_row": critical[0]["first_row"] if critical else None,
        "first_alarm": next((a for a in critical[0]["alerts"] if a["severity"] == "critical"), None)
        if critical
        else None,
        "retrains": kinds.count("retrain"),
        "decisions": kinds,
        "first_promotion_row": promoted[0]["last_row"] + 1 if promoted else None,
        "accuracy": {
            "before_change": mean([w for w in windows if w["last_row"] < CHANGE_ROW]),
            "after_change_before_promotion": mean([w for w in after_change if w not in recovered]),
            "after_promotion": mean(recovered),
        },
        "change_row": CHANGE_ROW,
        "seconds": round(seconds, 2),
    }
