"""The loop controller in a real store (SQLite file and PostgreSQL), with real training and real processes."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import pytest
import yaml

from amploop.config import AmploopConfig
from amploop.loop.controller import LoopController, loop_status
from amploop.registry import Store
from amploop.registry.aliases import alias_history
from amploop.registry.loading import load_model
from amploop.workspace import Workspace
from tests.conftest import worker_env
from tests.loop.test_retrain import NEW_MEANING
from tests.monitor.test_windows import give_labels, log_rows
from tests.serve.conftest import MODEL, plants_on, plants_table

LOOP = {  # acts on small windows at once: what a test needs, not what production wants
    "enabled": True,
    "min_new_labels": 100,
    "min_new_rows": 200,
    "cooldown_s": 0,
    "data_window": "sliding",
    "window_rows": 320,
    "max_original_regression": 1.0,
    "rollback_min_labels": 150,
    "triggers": {"drift_share": None, "realized_drop": 0.05, "min_labels": 100},
}
SETTINGS = {"loop": LOOP, "monitor": {"window_size": 200}}


@pytest.fixture(params=["sqlite", "postgresql"])
def ws(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Workspace]:
    with plants_on(request.param, tmp_path) as workspace:
        yield workspace


def serve_new_meaning(store: Store, rows: int, seed: int, version: int = 1, meaning: dict | None = None) -> None:
    """``rows`` rows served by ``version`` now (a millisecond apart), then labelled as the world now says
    (the new meaning by default)."""
    table = plants_table(rows, seed=seed)
    meaning = NEW_MEANING if meaning is None else meaning
    ids = log_rows(store, table, version=version, start=datetime.now(UTC), row_s=0.001)
    give_labels(store, ids, [meaning.get(k, k) for k in table["kind"]])


def kinds(store: Store) -> list[str]:
    return [d.kind for d in store.loop_decisions(MODEL)]


def test_drift_is_retrained_and_promoted_and_a_later_regression_is_rolled_back(ws: Workspace):
    config = AmploopConfig.model_validate(SETTINGS)
    with Store.open(ws) as store:
        serve_new_meaning(store, 400, seed=81)  # the inputs' meaning changed: the champion is now wrong
        step = LoopController(store, MODEL, config, holder="test").step()
        assert step.acted == "retrained" and step.new_windows == 2, step.to_dict()
        assert [d.kind for d in step.decisions] == ["retrain", "promoted"]
        assert any("realized accuracy" in r for r in step.decisions[0].reasons)  # the trigger's reason is kept
        assert step.champion == 2 and store.alias_version(MODEL, "champion") == 2
        assert step.decisions[0].numbers["window_id"] > 0 and "reference_accuracy" in step.decisions[0].numbers

        again = LoopController(store, MODEL, config, holder="test").step()  # no new window: no new decision
        assert again.acted == "watched" and again.decisions == [] and kinds(store) == ["retrain", "promoted"]

        serve_new_meaning(store, 200, seed=82, version=2)  # the new champion serves the new world well
        judged = LoopController(store, MODEL, config, holder="test").step()
        confirmed = [d for d in judged.decisions if d.kind == "confirmed"]
        assert len(confirmed) == 1 and store.alias_version(MODEL, "champion") == 2
        accuracy = confirmed[0].numbers["accuracy"]
        assert accuracy["champion"] > 0.9 > 0.1 > accuracy["previous"]

    time.sleep(0.3)  # the rows above were served before the promotion planted next
    # a second promotion whose world flips back: the loop judges it on the rows it served and goes back
    with Store.open(ws) as store:
        promoted = store.record_loop_decision(
            MODEL, "promoted", reasons=["planted"], champion_version=1, challenger_version=2, actor="test"
        )
        serve_new_meaning(store, 200, seed=83, version=2, meaning={})  # the old meaning is back
        step = LoopController(store, MODEL, config, holder="test").step()
        rolled = [d for d in step.decisions if d.kind == "rolled_back"]
        assert step.acted == "rolled_back" and len(rolled) == 1, step.to_dict()
        assert store.alias_version(MODEL, "champion") == 1 and step.champion == 1
        numbers = rolled[0].numbers
        assert numbers["promotion_decision"] == promoted.id and numbers["labelled_rows"] == 200  # since then
        assert numbers["accuracy"]["previous"] - numbers["accuracy"]["champion"] > 0.5
        move = alias_history(store, MODEL, "champion")[-1]
        assert (move.from_version, move.to_version) == (2, 1) and "rollback" in move.reason
        assert "loop.rolled_back" in [e.action for e in store.audit_log()]
        assert load_model(f"{MODEL}@champion", store=store).bundle is not None
        status = loop_status(store, MODEL)
        assert status["champion"] == 1 and status["decisions"][-1]["kind"] == "rolled_back"


def test_a_watching_loop_records_what_it_would_do_and_changes_nothing(ws: Workspace):
    config = AmploopConfig.model_validate({**SETTINGS, "loop": {**LOOP, "enabled": False}})
    with Store.open(ws) as store:
        serve_new_meaning(store, 200, seed=84)
        step = LoopController(store, MODEL, config, holder="test").step()
        assert step.acted == "blocked" and kinds(store) == ["blocked"]
        assert step.decisions[0].reasons[-1] == "loop.enabled is false, so the loop only watches"
        assert store.alias_version(MODEL, "champion") == 1 and len(store.list_model_versions(MODEL)) == 1


def write_settings(ws: Workspace, **loop: object) -> Path:
    path = ws.home.parent / "amploop.yaml"
    path.write_text(yaml.safe_dump({**SETTINGS, "loop": {**LOOP, **loop}}))
    return path


def loop_run(ws: Workspace, settings: Path, *args: str) -> subprocess.Popen:
    return subprocess.Popen(
        [sys.executable, "-m", "amploop", "--config", str(settings), "loop", "run", MODEL, *args],
        env=worker_env(ws),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def test_two_controllers_on_one_model_only_one_acts(ws: Workspace):
    settings = write_settings(ws)
    with Store.open(ws) as store:
        serve_new_meaning(store, 400, seed=85)
    procs = [loop_run(ws, settings, "--once", "--json") for _ in range(2)]
    results = [p.communicate(timeout=300) for p in procs]
    assert [p.returncode for p in procs] == [0, 0], [r[1] for r in results]
    acted = sorted(json.loads(out)["steps"][0]["acted"] for out, _ in results)
    assert acted[0] == "retrained" and acted[1] in ("waiting", "watched"), acted
    with Store.open(ws) as store:
        assert kinds(store) == ["retrain", "promoted"]  # one retrain, one promotion
        assert store.lease(MODEL) is None  # both let go when they finished


def test_a_controller_killed_mid_retrain_is_closed_cleanly_by_the_next(ws: Workspace):
    settings = write_settings(ws, lease_ttl_s=2)
    with Store.open(ws) as store:
        serve_new_meaning(store, 400, seed=86)
        proc = loop_run(ws, settings, "--once")
        try:
            deadline = time.monotonic() + 240
            while "retrain" not in kinds(store):
                assert proc.poll() is None and time.monotonic() < deadline, proc.stderr.read() if proc.stderr else ""
                time.sleep(0.05)
        finally:
            os.kill(proc.pid, signal.SIGKILL)
            proc.wait()
        assert store.lease(MODEL) is not None  # the dead controller's lease is still there
        config = AmploopConfig.model_validate(yaml.safe_load(settings.read_text()))
        next_one = LoopController(store, MODEL, config, holder="next")
        deadline = time.monotonic() + 30
        step = next_one.step()
        while step.acted == "waiting":  # until the dead one's lease runs out
            assert time.monotonic() < deadline
            time.sleep(0.5)
            step = next_one.step()
        assert kinds(store) == ["retrain", "abandoned"], kinds(store)
        abandoned = store.loop_decisions(MODEL)[-1]
        assert "stopped before deciding" in abandoned.reasons[0]
        assert store.alias_version(MODEL, "champion") == 1  # never half-promoted
        assert load_model(f"{MODEL}@champion", store=store).predict(plants_table(5, seed=1).drop(columns=["kind"]))
        assert "loop.lease_takeover" in [e.action for e in store.audit_log()]
        for version in abandoned.numbers["registered"]:  # a challenger it registered stays, and unpromoted
            assert store.get_model_version(MODEL, version).status == "ready"


def test_sigterm_between_steps_stops_the_controller_and_releases_its_lease(tmp_path: Path):
    with plants_on("sqlite", tmp_path) as ws:
        proc = loop_run(ws, write_settings(ws), "--interval", "600")
        try:
            line = proc.stdout.readline() if proc.stdout else ""  # the first step's line: then it waits
            assert line.startswith(f"{MODEL}: watched"), line + (proc.stderr.read() if proc.stderr else "")
            with Store.open(ws) as store:
                assert store.lease(MODEL) is not None  # held while it runs
            proc.send_signal(signal.SIGTERM)
            assert proc.wait(timeout=30) == 0
        finally:
            proc.kill()
        with Store.open(ws) as store:
            assert store.lease(MODEL) is None and kinds(store) == []
