"""The loop's lease and decisions in the real store (SQLite file and PostgreSQL)."""

import time
from pathlib import Path

import pytest

from amploop.errors import UsageError
from amploop.registry import Store
from tests.conftest import run_together

WORKER = Path(__file__).with_name("lease_worker.py")


def test_one_controller_holds_a_lease_until_it_expires_or_is_released(workspace):
    with Store.open(workspace) as store:
        first = store.acquire_lease("rain", "controller-a", ttl_s=0.5)
        assert first is not None and first.holder == "controller-a"
        assert store.acquire_lease("rain", "controller-b", ttl_s=60) is None  # a running lease is never shared
        again = store.acquire_lease("rain", "controller-a", ttl_s=0.5)  # its holder keeps it
        assert again is not None and again.acquired_at == first.acquired_at and again.expires_at > first.expires_at
        assert store.acquire_lease("other-model", "controller-b", ttl_s=60) is not None  # one lease per model
        time.sleep(0.6)  # controller-a died: it stopped renewing
        taken = store.acquire_lease("rain", "controller-b", ttl_s=60)
        assert taken is not None and taken.holder == "controller-b"
        assert not store.renew_lease("rain", "controller-a", ttl_s=60)  # the dead one learns it lost it
        assert store.renew_lease("rain", "controller-b", ttl_s=60)
        takeovers = [e for e in store.audit_log() if e.action == "loop.lease_takeover"]
        assert len(takeovers) == 1 and takeovers[0].details == {"from": "controller-a", "to": "controller-b"}
        store.release_lease("rain", "controller-a")  # not its lease: nothing happens
        assert store.lease("rain").holder == "controller-b"
        store.release_lease("rain", "controller-b")
        assert store.lease("rain") is None
        assert store.acquire_lease("rain", "controller-a", ttl_s=60) is not None
        with pytest.raises(UsageError):
            store.acquire_lease("rain", "controller-a", ttl_s=0)


def test_controllers_asking_at_the_same_moment_get_one_lease(workspace):
    with Store.open(workspace):
        pass  # migrated before the race, so the workers race on the lease, not the schema
    results, events = run_together(WORKER, workspace, [["acquire"] for _ in range(4)])
    assert all(r.returncode == 0 for r in results), [r.stderr[-2000:] for r in results]
    answers = sorted(r.stdout.strip() for r in results)
    assert answers == ["held", "refused", "refused", "refused"]
    assert len(events) == 8


def test_decisions_are_kept_with_their_numbers_and_audited(workspace):
    with Store.open(workspace) as store:
        store.record_loop_decision(
            "rain", "retrain", reasons=["realized accuracy 0.61 is more than 0.05 below 0.80"], champion_version=1
        )
        rejected = store.record_loop_decision(
            "rain",
            "rejected",
            reasons=["the challenger is 0.004 better on recent rows; the gate asks for 0.01"],
            numbers={"recent": {"champion": 0.61, "challenger": 0.614}, "margin": 0.01},
            champion_version=1,
            challenger_version=2,
            actor="loop-controller",
        )
        with pytest.raises(UsageError, match="loop decision 'maybe'"):
            store.record_loop_decision("rain", "maybe", reasons=[])
        decisions = store.loop_decisions("rain")
        assert [d.kind for d in decisions] == ["retrain", "rejected"]
        assert decisions[-1] == rejected and rejected.numbers["recent"]["challenger"] == 0.614
        assert [d.kind for d in store.loop_decisions("rain", limit=1)] == ["rejected"]
        audited = [e for e in store.audit_log() if e.action.startswith("loop.")]
        assert [e.action for e in audited] == ["loop.retrain", "loop.rejected"]
        assert audited[-1].actor == "loop-controller" and audited[-1].details["challenger"] == 2
        assert store.info().counts["loop_decisions"] == 2
