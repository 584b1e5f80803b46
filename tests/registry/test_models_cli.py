"""`amploop models …` and `amploop audit` as a user runs them."""

import json
import os
import subprocess
import sys
from pathlib import Path

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
    assert listed == [{"name": "churn", "versions": 2, "latest": 2, "aliases": {"champion": 1}}]
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
