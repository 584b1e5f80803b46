"""The store on both backends: a real SQLite file and the real PostgreSQL server."""

from datetime import timedelta
from pathlib import Path

import pandas as pd
import pytest
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from sqlalchemy import func, select

from amploop.data import Dataset, load_builtin
from amploop.errors import DatasetNotFound, NotFound, StoreError
from amploop.registry import Store, dataset_record
from amploop.registry.engine import head_revision
from amploop.registry.tables import AuditRow, Base, utcnow
from amploop.workspace import Workspace
from tests.conftest import most_inside_at_once, run_together

WORKER = Path(__file__).with_name("store_worker.py")


def test_open_migrates_to_head_and_records_each_step_once(workspace, backend):
    with Store.open(workspace) as store:
        info = store.info()
        assert info.schema_revision == head_revision()
        assert info.backend == backend
        assert info.counts == {
            "datasets": 0,
            "runs": 0,
            "registered_models": 0,
            "model_versions": 0,
            "alias_history": 0,
            "evaluations": 0,
            "audit_log": 0,
            "prediction_log": 0,
            "feedback": 0,
            "api_keys": 0,
            "drift_reports": 0,
            "alerts": 0,
            "loop_decisions": 0,
        }
    with Store.open(workspace) as store:  # a second open applies nothing
        assert [h["revision"] for h in store.schema_history()] == ["0001", "0002", "0003", "0004", "0005", "0006"]


def test_migrated_schema_matches_the_table_definitions(workspace):
    with Store.open(workspace) as store, store.engine.connect() as conn:
        context = MigrationContext.configure(conn, opts={"version_table": "amploop_alembic_version"})
        diffs = [
            d
            for d in compare_metadata(context, Base.metadata)
            if not (isinstance(d, tuple) and d[0] == "remove_table" and d[1].name == "amploop_alembic_version")
        ]
        assert diffs == []


def test_sqlite_uses_wal_and_lives_under_amploop_home(sqlite_workspace):
    with Store.open(sqlite_workspace) as store:
        info = store.info()
    assert "journal wal" in info.server
    assert (sqlite_workspace.home / "amploop.db").exists()


def test_datasets_are_recorded_once_per_fingerprint(workspace):
    adult = load_builtin("adult")
    with Store.open(workspace) as store:
        first = store.record_dataset(dataset_record(adult, datasheet={"uses": "tests"}), actor="ci")
        again = store.record_dataset(dataset_record(adult))
        assert first.fingerprint == again.fingerprint == adult.fingerprint
        assert again.datasheet == {"uses": "tests"}  # the first record stands
        test = adult.split("test")
        child = store.record_dataset(dataset_record(test))
        assert child.parents == [adult.fingerprint] and child.transformation == "split 'test'"
        assert [d.name for d in store.list_datasets()] == ["adult", "adult[test]"]
        got = store.get_dataset(adult.fingerprint)
        assert got.n_rows == 48842 and got.schema["target"] == "income"
        assert got.created_at is not None and got.created_at.tzinfo is not None
        assert [e.action for e in store.audit_log()] == ["dataset.record", "dataset.record"]
        with pytest.raises(DatasetNotFound):
            store.get_dataset("0" * 64)


def test_runs_start_and_finish(workspace):
    with Store.open(workspace) as store:
        run = store.start_run("train", config={"epochs": 2}, dataset_fingerprints={"train": "abc"}, actor="alice")
        assert run.status == "running" and run.finished_at is None
        done = store.finish_run(run.id, metrics={"accuracy": 0.85}, timings={"seconds": 1.5})
        assert done.status == "finished" and done.metrics == {"accuracy": 0.85}
        assert done.finished_at >= done.started_at
        failed = store.finish_run(store.start_run("train", config={}).id, status="failed", error="boom")
        assert failed.error == "boom"
        assert {r.id for r in store.list_runs()} == {run.id, failed.id}
        assert store.get_run(run.id).config == {"epochs": 2}
        with pytest.raises(NotFound):
            store.get_run("nope")


def test_audit_log_is_ordered_and_filterable_by_time(workspace):
    with Store.open(workspace) as store:
        first = store.append_audit(
            "model.promote", "adult:1", reason="best so far", actor="bob", details={"alias": "champion"}
        )
        second = store.append_audit("model.promote", "adult:2", reason="better", actor="bob")
        log = store.audit_log()
        assert [(e.target, e.reason) for e in log] == [("adult:1", "best so far"), ("adult:2", "better")]
        assert log[0].details == {"alias": "champion"}
        assert [e.id for e in store.audit_log(since=second.at)] == [second.id]
        assert store.audit_log(since=first.at + timedelta(days=1)) == []


def test_a_failed_transaction_leaves_no_rows(workspace):
    with Store.open(workspace) as store:
        with pytest.raises(RuntimeError), store.write() as session:
            session.add(AuditRow(at=utcnow(), actor="ci", action="x", target="y", reason="", details={}))
            session.flush()  # the row is in the database, inside the transaction
            assert session.scalar(select(func.count()).select_from(AuditRow)) == 1
            raise RuntimeError("crash in the middle")
        assert store.audit_log() == []


def test_two_processes_writing_1000_rows_each(workspace):
    Store.open(workspace).close()
    results, events = run_together(WORKER, workspace, [["write", "1000", "p1"], ["write", "1000", "p2"]])
    assert [r.returncode for r in results] == [0, 0], [r.stderr[-2000:] for r in results]
    assert most_inside_at_once(events) == 2, events  # both were inside their write loops at one moment
    with Store.open(workspace) as store:
        log = store.audit_log()
    assert len(log) == 2000
    for tag in ("p1", "p2"):
        assert sorted(int(e.target.split(":")[1]) for e in log if e.actor == tag) == list(range(1000))
    # the rows interleave: each process got rows in while the other was in the middle of its thousand
    actors = [e.actor for e in log]
    for tag, other in (("p1", "p2"), ("p2", "p1")):
        mine = [i for i, actor in enumerate(actors) if actor == tag]
        assert other in actors[mine[0] : mine[-1]], f"{other} never wrote while {tag} was writing"


def test_eight_processes_opening_a_fresh_store_at_once(workspace):
    results, events = run_together(WORKER, workspace, [["open"]] * 8)
    assert [r.returncode for r in results] == [0] * 8, [r.stderr[-2000:] for r in results]
    assert most_inside_at_once(events) >= 2, events  # the opens really overlapped
    assert {r.stdout.strip() for r in results} == {head_revision()}
    with Store.open(workspace) as store:
        history = store.schema_history()
    # each step ran exactly once
    assert [h["revision"] for h in history] == ["0001", "0002", "0003", "0004", "0005", "0006"]


def test_unreachable_postgres_names_the_url_with_password_masked(tmp_path):
    ws = Workspace.from_env(
        {"AMPLOOP_HOME": str(tmp_path), "AMPLOOP_DB_URL": "postgresql+psycopg://alice:s3cret@127.0.0.1:1/ml"}
    )
    with pytest.raises(StoreError) as info:
        Store.open(ws)
    message = info.value.message
    assert "postgresql+psycopg://alice:***@127.0.0.1:1/ml" in message
    assert "s3cret" not in message and "AMPLOOP_DB_URL" in message


@pytest.mark.parametrize(
    ("url", "message"),
    [
        ("mysql://root@127.0.0.1/test", "unsupported database 'mysql'"),
        ("not a url", "is not a database URL"),
    ],
)
def test_unsupported_database_urls(tmp_path, url, message):
    ws = Workspace.from_env({"AMPLOOP_HOME": str(tmp_path), "AMPLOOP_DB_URL": url})
    with pytest.raises(StoreError, match=message):
        Store.open(ws)


def test_sqlite_file_that_is_not_a_database(tmp_path):
    (tmp_path / "amploop.db").write_bytes(b"this is not sqlite" * 100)
    with pytest.raises(StoreError, match="file is not a database"):
        Store.open(Workspace.from_env({"AMPLOOP_HOME": str(tmp_path)}))


def test_dataset_record_of_a_user_table(workspace):
    ds = Dataset.from_table("toy", pd.DataFrame({"x": [1, 2], "y": ["a", "b"]}), target="y")
    with Store.open(workspace) as store:
        rec = store.record_dataset(dataset_record(ds))
    assert rec.n_rows == 2 and rec.schema["task"] == "classification"
    assert rec.schema["content_fingerprint"] == ds.content_fingerprint
