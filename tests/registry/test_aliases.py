"""Aliases on both backends: history, point-in-time, rollback, gates, and concurrency with real processes."""

import random
import signal
import subprocess
import sys
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from amploop.errors import ConfigError, GateFailed, ModelNotFound
from amploop.registry import Store
from amploop.registry import aliases as aliases_module
from amploop.registry.aliases import alias_at, alias_history, delete_version, list_aliases, promote, rollback
from tests.conftest import most_inside_at_once, run_together, worker_env

WORKER = Path(__file__).with_name("registry_worker.py")


PASSED = {"verdict": {"passed": True, "rules": []}, "dataset": {"fingerprint": "f" * 64}}


def _register(store: Store, name: str, n: int, *, evaluated: bool = True) -> None:
    """``n`` versions of ``name``; each with an evaluation that passed its gate, unless ``evaluated=False``."""
    for i in range(n):
        version = store.register_model_version(name, {"weights.bin": f"{name}-{i}".encode()})
        if evaluated:
            store.record_evaluation(name, version.version, PASSED)


class _Clock:
    """The moment each alias move is stamped with, set by the test: no sleeping, no reliance on the real clock."""

    def __init__(self, now: datetime) -> None:
        self.now = now

    def __call__(self) -> datetime:
        return self.now


def test_promote_history_point_in_time_and_rollback(workspace, monkeypatch):
    t1 = datetime(2030, 1, 2, 9, 0, tzinfo=UTC)
    t2, t3, t4 = t1 + timedelta(minutes=1), t1 + timedelta(minutes=2), t1 + timedelta(minutes=3)
    clock = _Clock(t1)
    monkeypatch.setattr(aliases_module, "utcnow", clock)  # where alias moves read the time
    with Store.open(workspace) as store:
        _register(store, "churn", 3)
        first = promote(store, "churn", 1, reason="first model", actor="alice")
        clock.now = t2
        second = promote(store, "churn", 2, reason="better recall", actor="bob")
        clock.now = t3
        promote(store, "churn", 3, alias="challenger", reason="shadow test", actor="bob")
        assert (first.at, second.at) == (t1, t2)  # the moves carry the moments they were made at
        assert list_aliases(store, "churn") == {"champion": 2, "challenger": 3}
        history = alias_history(store, "churn", "champion")
        assert [(m.from_version, m.to_version, m.actor, m.reason, m.at) for m in history] == [
            (None, 1, "alice", "first model", t1),
            (1, 2, "bob", "better recall", t2),
        ]
        assert alias_at(store, "churn", "champion", t1 - timedelta(seconds=1)) is None
        assert alias_at(store, "churn", "champion", t1) == 1
        assert alias_at(store, "churn", "champion", t1 + timedelta(seconds=30)) == 1
        assert alias_at(store, "churn", "champion", t2 - timedelta(microseconds=1)) == 1
        assert alias_at(store, "churn", "champion", t2) == 2
        assert alias_at(store, "churn", "champion", t3) == 2  # the challenger's move is another alias
        clock.now = t4
        back = rollback(store, "churn", reason="latency regression", actor="carol")
        assert (back.from_version, back.to_version, back.at) == (2, 1, t4)
        assert store.alias_version("churn", "champion") == 1
        assert alias_at(store, "churn", "champion", t4 - timedelta(seconds=1)) == 2
        assert alias_at(store, "churn", "champion", t4) == 1
        assert [e.action for e in store.audit_log()][-4:] == ["model.alias"] * 4


def test_bad_moves_are_refused(workspace):
    with Store.open(workspace) as store:
        _register(store, "churn", 2)
        with pytest.raises(ModelNotFound, match="did you mean churn"):
            promote(store, "chrun", 1, reason="typo")
        with pytest.raises(ModelNotFound, match="churn:9 does not exist"):
            promote(store, "churn", 9, reason="no such version")
        with pytest.raises(ConfigError, match="needs --reason"):
            promote(store, "churn", 1, reason=" ")
        promote(store, "churn", 1, reason="first")
        with pytest.raises(ConfigError, match="holds the alias"):
            delete_version(store, "churn", 1, reason="cleanup")
        delete_version(store, "churn", 2, reason="never used")
        with pytest.raises(ModelNotFound, match="was deleted"):
            promote(store, "churn", 2, reason="resurrect")
        with pytest.raises(ModelNotFound, match="no earlier version"):
            rollback(store, "churn", reason="nothing before")


def test_a_version_that_failed_its_gate_needs_force(workspace):
    with Store.open(workspace) as store:
        _register(store, "churn", 1, evaluated=False)
        failed = {
            "verdict": {"passed": False, "rules": [{"metric": "accuracy", "outcome": "fail"}]},
            "dataset": {"fingerprint": "f" * 64},
        }
        store.record_evaluation("churn", 1, failed)
        with pytest.raises(GateFailed, match="failed its release gate \\(accuracy\\).*--force"):
            promote(store, "churn", 1, reason="ship it")
        move = promote(store, "churn", 1, reason="hotfix approved by the owner", force=True)
        assert move.reason.endswith("[forced past a failed gate]")


def test_ten_concurrent_promotions_leave_one_consistent_chain(workspace):
    with Store.open(workspace) as store:
        _register(store, "churn", 10)
    results, events = run_together(WORKER, workspace, [["promote", "churn", str(v)] for v in range(1, 11)])
    assert [r.returncode for r in results] == [0] * 10, [r.stderr[-1500:] for r in results]
    assert most_inside_at_once(events) >= 2, events  # promotions really were in flight together
    with Store.open(workspace) as store:
        history = alias_history(store, "churn", "champion")
        assert len(history) == 10 and sorted(m.to_version for m in history) == list(range(1, 11))
        assert history[0].from_version is None
        for before, after in zip(history, history[1:], strict=False):
            assert after.from_version == before.to_version  # no lost update
        assert store.alias_version("churn", "champion") == history[-1].to_version


def test_sixteen_processes_registering_fifty_versions_each(workspace):
    results, events = run_together(WORKER, workspace, [["register", "50", "shared"]] * 16)
    assert [r.returncode for r in results] == [0] * 16, [r.stderr[-1500:] for r in results]
    assert most_inside_at_once(events) >= 2, events
    with Store.open(workspace) as store:
        versions = sorted(v.version for v in store.list_model_versions("shared"))
    assert versions == list(range(1, 801))
    got = [[int(v) for v in r.stdout.split()] for r in results]
    assert sorted(v for mine in got for v in mine) == versions  # each number went to exactly one process
    # the numbers interleave: some process registered while another was between two of its versions
    assert any(mine != list(range(mine[0], mine[0] + len(mine))) for mine in got), got


def test_a_process_killed_while_promoting_or_rolling_back_leaves_one_loadable_champion(workspace):
    with Store.open(workspace) as store:
        _register(store, "churn", 3)
    rng = random.Random(7)
    for _ in range(8):
        proc = subprocess.Popen(
            [sys.executable, str(WORKER), "promote-forever", "churn"],
            env=worker_env(workspace),
            stdout=subprocess.PIPE,
            text=True,
        )
        assert proc.stdout.readline().strip() == "ready"
        time.sleep(rng.uniform(0.05, 0.4))
        proc.send_signal(signal.SIGKILL)
        proc.wait()
        with Store.open(workspace) as store:
            aliases = list_aliases(store, "churn")
            assert list(aliases) == ["champion"]
            record = store.get_model_version("churn", aliases["champion"])
            assert store.load_model_files(record)["weights.bin"] == f"churn-{record.version - 1}".encode()
            history = alias_history(store, "churn", "champion")
            assert history[-1].to_version == aliases["champion"]  # the history matches the alias
