"""`amploop models …` and `amploop audit` as a user runs them."""

import json
import os
import subprocess
import sys
from pathlib import Path

from amploop.config import AmploopConfig
from amploop.errors import ConfigError, ModelNotFound, UsageError
from amploop.registry import Store
from amploop.workspace import Workspace

AMPLOOP = str(Path(sys.executable).with_name("amploop"))
PASSED = {"verdict": {"passed": True, "rules": []}, "dataset": {"fingerprint": "f" * 64}}


def run(home: Path, *args: str) -> subprocess.CompletedProcess:
    env = {k: v for k, v in os.environ.items() if not k.startswith("AMPLOOP_")}
    env.update(AMPLOOP_HOME=str(home), AMPLOOP_ACTOR="ci-bot")
    return subprocess.run([AMPLOOP, *args], capture_output=True, text=True, env=env, cwd=home.parent, timeout=300)


def test_promote_rollback_history_delete_and_audit(tmp_path):
    home = tmp_path / ".amploop"
    with Store.open(Workspace.from_env({"AMPLOOP_HOME": str(home)})) as store:
        for i in range(3):
            store.register_model_version("churn", {"weights.bin": f"w{i}".encode()})
            store.record_evaluation("churn", i + 1, PASSED)
    first = json.loads(run(home, "models", "promote", "churn:1", "--reason", "baseline", "--json").stdout)
    assert (first["from_version"], first["to_version"], first["actor"]) == (None, 1, "ci-bot")
    run(home, "models", "promote", "churn:2", "--reason", "better", "--json")
    shown = json.loads(run(home, "models", "show", "churn", "--json").stdout)
    assert shown["aliases"] == {"champion": 2} and len(shown["versions"]) == 3
    held_then = json.loads(
        run(home, "models", "history", "churn", "--alias", "champion", "--at", first["at"], "--json").stdout
    )
    assert held_then["version"] == 1
    back = json.loads(run(home, "models", "rollback", "churn", "--reason", "p99 latency", "--json").stdout)
    assert (back["from_version"], back["to_version"]) == (2, 1)
    moves = json.loads(run(home, "models", "history", "churn", "--json").stdout)["moves"]
    assert [(m["from_version"], m["to_version"]) for m in moves] == [(None, 1), (1, 2), (2, 1)]
    refused = run(home, "models", "delete", "churn:1", "--reason", "cleanup")
    assert refused.returncode == ConfigError.exit_code and "holds the alias(es) champion" in refused.stderr
    assert run(home, "models", "delete", "churn:3", "--reason", "never served").returncode == 0
    listed = json.loads(run(home, "models", "list", "--json").stdout)["models"]
    assert [{k: v for k, v in m.items() if k != "ready_versions"} for m in listed] == [
        {"name": "churn", "versions": 2, "latest": 2, "aliases": {"champion": 1}}
    ]
    assert [s["version"] for s in listed[0]["ready_versions"]] == [1, 2]
    audit = json.loads(run(home, "audit", "--json").stdout)["entries"]
    assert [e["action"] for e in audit][-4:] == ["model.alias", "model.alias", "model.alias", "model.delete"]
    assert audit[-1]["reason"] == "never served" and audit[-1]["actor"] == "ci-bot"
    since = json.loads(run(home, "audit", "--since", back["at"], "--json").stdout)["entries"]
    assert [e["action"] for e in since] == ["model.alias", "model.delete"]


def test_unknown_names_and_bad_times(tmp_path):
    home = tmp_path / ".amploop"
    with Store.open(Workspace.from_env({"AMPLOOP_HOME": str(home)})) as store:
        store.register_model_version("churn", {"weights.bin": b"w"})
    missing = run(home, "models", "promote", "chrun:1", "--reason", "typo")
    assert missing.returncode == ModelNotFound.exit_code and "did you mean churn" in missing.stderr
    assert run(home, "models", "promote", "churn", "--reason", "x").returncode == UsageError.exit_code
    bad_time = run(home, "audit", "--since", "yesterday")
    assert bad_time.returncode == UsageError.exit_code and "not an ISO time" in bad_time.stderr


FAILED = {"verdict": {"passed": False, "rules": []}, "dataset": {"fingerprint": "f" * 64}}


def test_list_shows_each_versions_test_metric_and_latest_gate_verdict(tmp_path):
    home = tmp_path / ".amploop"
    with Store.open(Workspace.from_env({"AMPLOOP_HOME": str(home)})) as store:
        for accuracy in (0.81, 0.84, 0.79):
            store.register_model_version("churn", {"weights.bin": b"w"}, metrics={"test_accuracy": accuracy})
        store.register_model_version("price", {"weights.bin": b"w"}, metrics={"test_rmse": 3.25})
        store.record_evaluation("churn", 1, PASSED)
        store.record_evaluation("churn", 2, PASSED)
        store.record_evaluation("churn", 2, FAILED)  # the latest evaluation is the verdict shown
        store.record_evaluation("price", 1, FAILED)
    run(home, "models", "promote", "churn:1", "--reason", "baseline")
    done = run(home, "models", "list", "--json")
    assert done.returncode == 0, done.stderr
    listed = json.loads(done.stdout)["models"]
    summaries = {
        m["name"]: [{k: v for k, v in s.items() if k != "evaluated_at"} for s in m["ready_versions"]] for m in listed
    }
    assert summaries == {
        "churn": [
            {"version": 1, "metric": "test_accuracy", "value": 0.81, "gate": "pass", "aliases": ["champion"]},
            {"version": 2, "metric": "test_accuracy", "value": 0.84, "gate": "fail", "aliases": []},
            {"version": 3, "metric": "test_accuracy", "value": 0.79, "gate": None, "aliases": []},
        ],
        "price": [{"version": 1, "metric": "test_rmse", "value": 3.25, "gate": "fail", "aliases": []}],
    }
    assert [s["evaluated_at"] is None for s in listed[0]["ready_versions"]] == [False, False, True]
    text = run(home, "models", "list").stdout
    rows = [" ".join(line.replace("│", " ").split()) for line in text.splitlines() if "│" in line]
    assert "churn 1 accuracy 0.8100 pass champion" in rows
    assert "2 accuracy 0.8400 fail" in rows
    assert "3 accuracy 0.7900 \N{EM DASH}" in rows
    assert "price 1 rmse 3.2500 fail" in rows
    shown = json.loads(run(home, "models", "show", "churn", "--json").stdout)
    assert shown["latest"] == 3 and [v["gate"] for v in shown["versions"]] == ["pass", "fail", None]


def test_card_show_and_lineage_take_a_name_alone_as_its_newest_version(tmp_path):
    home = tmp_path / ".amploop"
    with Store.open(Workspace.from_env({"AMPLOOP_HOME": str(home)})) as store:
        for i in range(2):
            trained = store.start_run("train", config=AmploopConfig().to_dict())
            store.finish_run(trained.id, metrics={"precision": "fp32", "precision_reason": "a CPU"})
            store.register_model_version("churn", {"weights.bin": f"w{i}".encode()}, run_id=trained.id)
    run(home, "models", "promote", "churn:1", "--force", "--reason", "baseline, never evaluated")
    for ref, version in (("churn", 2), ("churn:1", 1), ("churn@champion", 1)):
        card = run(home, "models", "card", ref, "--json")
        assert card.returncode == 0, card.stderr
        assert (json.loads(card.stdout)["name"], json.loads(card.stdout)["version"]) == ("churn", version)
        lineage = run(home, "models", "lineage", ref, "--json")
        assert lineage.returncode == 0, lineage.stderr
    markdown = run(home, "models", "card", "churn").stdout
    assert "churn" in markdown and markdown == run(home, "models", "card", "churn:2").stdout
    assert json.loads(run(home, "models", "show", "churn@champion", "--json").stdout)["version"] == 1
    missing = run(home, "models", "card", "chrun")
    assert missing.returncode == ModelNotFound.exit_code and "did you mean churn" in missing.stderr
    no_alias = run(home, "models", "card", "churn@challenger")
    assert no_alias.returncode == ModelNotFound.exit_code and "has no alias 'challenger'" in no_alias.stderr
    # changing a version still needs its number
    assert run(home, "models", "delete", "churn", "--reason", "x").returncode == UsageError.exit_code
