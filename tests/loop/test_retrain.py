"""One retrain of the closed loop in a real store: new labelled traffic → challenger → gate → promote or reject."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from amploop.config import AmploopConfig, LoopConfig
from amploop.loop.retrain import labelled_rows, retrain
from amploop.registry import Store
from amploop.registry.lineage import lineage
from amploop.workspace import Workspace
from tests.monitor.test_windows import give_labels, log_rows
from tests.serve.conftest import MODEL, plants_on, plants_table

NEW_MEANING = {"fern": "moss", "moss": "palm", "palm": "fern"}  # the world changed: same inputs, other kinds


@pytest.fixture(scope="module", params=["sqlite", "postgresql"])
def ws(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Workspace]:
    with plants_on(request.param, tmp_path_factory.mktemp(f"retrain-{request.param}")) as workspace:
        with Store.open(workspace) as store:  # served as the champion answered, then labelled by the new meaning
            rows = plants_table(400, seed=81)
            ids = log_rows(store, rows)
            give_labels(store, ids, [NEW_MEANING[k] for k in rows["kind"]])
        yield workspace


def config(**loop) -> AmploopConfig:
    return AmploopConfig(loop=LoopConfig(min_new_labels=100, **loop))


def test_labelled_rows_come_back_in_arrival_order_with_their_labels(ws: Workspace):
    with Store.open(ws) as store:
        rows = labelled_rows(store, MODEL, "kind")
    expected = plants_table(400, seed=81)
    assert len(rows) == 400 and list(rows["kind"]) == [NEW_MEANING[k] for k in expected["kind"]]
    assert rows["length"].tolist() == pytest.approx(expected["length"].tolist())


def test_a_challenger_that_does_not_clear_the_gate_is_rejected_with_its_numbers(ws: Workspace):
    with Store.open(ws) as store:
        outcome = retrain(store, MODEL, config(), reasons=["test: realized accuracy fell"])
        assert outcome.decision.kind == "rejected" and store.alias_version(MODEL, "champion") == 1
        numbers = outcome.numbers
        # trained on the old rows and the new ones, the challenger learns neither meaning well enough
        assert numbers["holdout_rows"] == 80 and numbers["training_rows"] == 600 + 320
        assert set(numbers["accuracy"]) == {"recent", "original"}
        assert numbers["accuracy"]["recent"]["champion"] < 0.1  # the old meaning is wrong on new rows
        assert any("the gate asks for" in r or "max_original_regression" in r for r in outcome.decision.reasons)
        kinds = [d.kind for d in store.loop_decisions(MODEL)]
        assert kinds[-2:] == ["retrain", "rejected"]
        found = lineage(store, MODEL, outcome.challenger)
        assert found["parent_version"] == 1
        # its training data is a derived dataset: the champion's data its parent, the recipe its transformation
        derived = found["data"]["train"]["parents"][0]
        recipe = "loop retrain of plants:1: the training data of plants:1 (600 rows)"
        assert derived["transformation"].startswith(recipe)
        champion_data = lineage(store, MODEL, 1)["data"]["train"]["parents"][0]
        assert derived["parents"][0]["fingerprint"] == champion_data["fingerprint"]


def test_a_challenger_that_learned_the_new_world_is_promoted(ws: Workspace):
    with Store.open(ws) as store:
        accept = config(data_window="sliding", window_rows=320, max_original_regression=1.0)
        outcome = retrain(store, MODEL, accept, reasons=["test: the meaning of the inputs changed"])
        assert outcome.promoted, outcome.decision.reasons
        assert store.alias_version(MODEL, "champion") == outcome.challenger
        recent = outcome.numbers["accuracy"]["recent"]
        assert recent["challenger"] > 0.9 and recent["challenger"] - recent["champion"] >= 0.01
        assert outcome.numbers["training_rows"] == 320  # only the newest rows, as loop.window_rows says
        audited = [e.action for e in store.audit_log()]
        assert audited[-1] == "loop.promoted" and "model.alias" in audited[-3:]
        assert store.list_evaluations(MODEL, outcome.challenger)  # evaluated as any version is, before promotion


def test_a_retrain_of_a_retrained_champion_starts_again_from_the_original_data(ws: Workspace):
    with Store.open(ws) as store:
        champion = store.alias_version(MODEL, "champion")
        assert lineage(store, MODEL, champion)["parent_version"] == 1  # promoted by the test above
        outcome = retrain(store, MODEL, config(), reasons=["test: once more"])
        # the original 600 rows and the 320 labelled ones: not the champion's own set, which holds them already
        assert outcome.numbers["training_rows"] == 600 + 320
        derived = lineage(store, MODEL, outcome.challenger)["data"]["train"]["parents"][0]
        first = lineage(store, MODEL, 2)["data"]["train"]["parents"][0]  # the first retrain saw the same rows
        assert derived["fingerprint"] == first["fingerprint"] and "320 labelled" in derived["transformation"]
        # the gate's original rows are the champion's own test rows (the new meaning), not plants:1's
        assert outcome.numbers["accuracy"]["original"]["champion"] > 0.9


def test_too_few_labels_is_a_blocked_decision_not_a_retrain(ws: Workspace):
    with Store.open(ws) as store:
        outcome = retrain(store, MODEL, AmploopConfig(loop=LoopConfig(min_new_labels=10_000)), reasons=["test"])
        assert outcome.decision.kind == "blocked" and outcome.challenger is None
        assert "only 400 labelled rows; loop.min_new_labels is 10000" in outcome.decision.reasons[-1]
