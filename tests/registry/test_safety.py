"""What the registry refuses or repairs on its own: killed runs, unsafe promotions, forged files, wild numbers.

Each test uses the real thing: real processes killed with SIGKILL, a real SQLite file and the
real PostgreSQL server, artifact files altered on disk, and the real ``amploop`` command.
"""

import json
import os
import signal
import socket
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest
import torch
from safetensors.torch import save as save_safetensors
from sqlalchemy import select

from amploop.data import FeatureEncoder
from amploop.data.schema import infer_schema
from amploop.errors import ArtifactError, GateFailed, ModelNotFound, UsageError
from amploop.models.runtime import ModelBundle
from amploop.models.zoo import ModelSpec, build_model
from amploop.names import MAX_VERSION, parse_model_ref
from amploop.registry import Store, load_model_bundle
from amploop.registry.aliases import alias_history, delete_version, list_aliases, promote, rollback
from amploop.registry.artifacts import sha256_bytes
from amploop.registry.tables import ModelVersionRow, RunRow
from amploop.workspace import Workspace
from tests.conftest import worker_env

AMPLOOP = str(Path(sys.executable).with_name("amploop"))
PASSED = {"verdict": {"passed": True, "rules": []}, "dataset": {"fingerprint": "f" * 64}}
HOST = socket.gethostname()

# A process that starts a run, says which, and then works until it is killed.
RUN_AND_HANG = """
import sys, time
from amploop.registry import Store
store = Store.open()
print(store.start_run("train", config={"epochs": 3}).id, flush=True)
time.sleep(600)
"""


def amploop(home: Path, *args: str) -> subprocess.CompletedProcess:
    env = {k: v for k, v in os.environ.items() if not k.startswith("AMPLOOP_")}
    env.update(AMPLOOP_HOME=str(home), AMPLOOP_ACTOR="ci-bot")
    return subprocess.run([AMPLOOP, *args], capture_output=True, text=True, env=env, cwd=home.parent, timeout=300)


def assert_one_line_error(result: subprocess.CompletedProcess, exit_code: int, *fragments: str) -> None:
    assert result.returncode == exit_code, result.stderr
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error:") and "Traceback" not in result.stderr, result.stderr
    for fragment in fragments:
        assert fragment in lines[0], lines[0]


def killed_run(workspace: Workspace) -> tuple[str, int]:
    """A run started by a real process that was then killed with SIGKILL: (run id, its pid)."""
    proc = subprocess.Popen(
        [sys.executable, "-c", RUN_AND_HANG], env=worker_env(workspace), stdout=subprocess.PIPE, text=True
    )
    run_id = proc.stdout.readline().strip()
    assert run_id, "the worker did not start a run"
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    proc.stdout.close()
    return run_id, proc.pid


def small_bundle() -> ModelBundle:
    """A real (untrained) two-feature classifier: an mlp with one hidden layer of 4."""
    table = pd.DataFrame({"a": [0.0, 1.0, 2.0, 3.0], "b": [1.0, 0.0, 1.0, 0.0], "y": ["no", "yes", "no", "yes"]})
    spec = ModelSpec(n_numeric=2, n_outputs=2)
    torch.manual_seed(0)
    return ModelBundle(
        architecture="mlp",
        options={"hidden": [4]},
        spec=spec,
        task="classification",
        target="y",
        classes=["no", "yes"],
        schema=infer_schema(table.drop(columns="y")).to_dict(),
        encoder_json=FeatureEncoder(exclude=["y"]).fit(table).to_json(),
        weights=dict(build_model("mlp", spec, {"hidden": [4]}).state_dict()),
    )


def forge(store: Store, name: str, version: int, file: str, data: bytes) -> None:
    """Replace a stored file AND its digest in the registry, as someone with write access to both could."""
    record = store.get_model_version(name, version)
    (Path(record.artifact_uri) / file).write_bytes(data)
    with store.write() as session:
        row = session.scalars(select(ModelVersionRow).where(ModelVersionRow.name == name)).one()
        row.artifacts = {**row.artifacts, file: sha256_bytes(data)}


# -- 1. runs whose process was killed -----------------------------------------------------------


def test_a_run_whose_process_was_killed_reads_failed_with_the_reason(workspace):
    run_id, pid = killed_run(workspace)
    with Store.open(workspace) as store:
        with store.read() as session:  # the killed process never finished it
            assert session.get(RunRow, run_id).status == "running"
        run = store.get_run(run_id)
        assert (run.status, run.error) == ("failed", f"process {pid} on host {HOST} is gone")
        assert (run.host, run.pid) == (HOST, pid) and run.finished_at is not None
        assert [(r.id, r.status) for r in store.list_runs()] == [(run_id, "failed")]
        reaped = [e for e in store.audit_log() if e.action == "run.reap"]
    assert [(e.target, e.reason, e.details["pid"]) for e in reaped] == [
        (f"run:{run_id}", f"process {pid} on host {HOST} is gone", pid)
    ]  # recorded once, although the run was read three times


def test_list_runs_reaps_every_killed_run_and_leaves_live_and_foreign_ones(workspace):
    first, dead_pid = killed_run(workspace)
    second, _ = killed_run(workspace)
    with Store.open(workspace) as store:
        live = store.start_run("train", config={})  # this test's own process: alive
        runs = {case: store.start_run("train", config={}).id for case in ("host", "container", "reused", "reboot")}
        with store.write() as session:
            namespace, boot_id, _ = session.get(RunRow, live.id).process_start.split("/")
            # Another machine's run, with the pid of a process that is dead here: not ours to judge.
            session.get(RunRow, runs["host"]).host = "another-host.example"
            session.get(RunRow, runs["host"]).pid = dead_pid
            # Another container with this host name (another pid namespace): its pids are not ours.
            session.get(RunRow, runs["container"]).pid = dead_pid
            session.get(RunRow, runs["container"]).process_start = f"1/{boot_id}/1"
            # This process's pid, recorded for a process that started at another moment.
            session.get(RunRow, runs["reused"]).process_start = f"{namespace}/{boot_id}/1"
            # This process's pid, recorded before the machine last booted.
            session.get(RunRow, runs["reboot"]).process_start = f"{namespace}/an-earlier-boot/1"
        statuses = {r.id: (r.status, r.error) for r in store.list_runs()}
    assert statuses[first][0] == statuses[second][0] == "failed"
    assert statuses[live.id] == statuses[runs["host"]] == statuses[runs["container"]] == ("running", None)
    me = f"process {os.getpid()} on host {HOST} is gone"
    assert statuses[runs["reused"]] == ("failed", f"{me} (pid {os.getpid()} now belongs to a newer process)")
    assert statuses[runs["reboot"]] == ("failed", f"{me} (the host restarted since)")


# -- 2. promotion needs an evaluation and intact files --------------------------------------------


def test_promotion_of_a_never_evaluated_version_is_refused_unless_forced(workspace):
    with Store.open(workspace) as store:
        store.register_model_version("churn", {"weights.bin": b"w1"})
        with pytest.raises(GateFailed, match=r"churn:1 was never evaluated; run `amploop evaluate churn:1` first"):
            promote(store, "churn", 1, reason="looks fine")
        assert list_aliases(store, "churn") == {}
        move = promote(store, "churn", 1, reason="owner approved", force=True, actor="alice")
        assert move.reason == "owner approved [forced past a missing evaluation]"
        entry = store.audit_log()[-1]
        assert (entry.action, entry.actor, entry.reason) == ("model.alias", "alice", move.reason)
        assert entry.details["forced"] is True and entry.details["forced_past"] == ["a missing evaluation"]
        store.record_evaluation("churn", 1, PASSED)
        assert promote(store, "churn", 1, alias="challenger", reason="evaluated now").reason == "evaluated now"


@pytest.mark.parametrize("damage", ["altered", "missing"])
def test_promotion_of_a_version_with_damaged_files_is_refused_unless_forced(workspace, damage):
    with Store.open(workspace) as store:
        record = store.register_model_version("churn", {"weights.bin": b"w1", "model.json": b"{}"})
        store.record_evaluation("churn", 1, PASSED)
        weights = Path(record.artifact_uri) / "weights.bin"
        if damage == "altered":
            weights.write_bytes(b"w2")
        else:
            weights.unlink()
        problem = "does not match its stored SHA-256" if damage == "altered" else "is missing"
        with pytest.raises(ArtifactError, match=f"churn:1 cannot be promoted: weights.bin {problem}.*--force"):
            promote(store, "churn", 1, reason="ship it")
        assert list_aliases(store, "churn") == {}
        move = promote(store, "churn", 1, reason="restoring from backup next", force=True)
        assert move.reason == "restoring from backup next [forced past altered artifacts]"
        assert store.audit_log()[-1].details["file_problems"] == [f"weights.bin {problem}"]


def test_the_cli_refuses_unsafe_promotions_in_one_line_and_forces_with_a_reason(tmp_path):
    home = tmp_path / ".amploop"
    with Store.open(Workspace.from_env({"AMPLOOP_HOME": str(home)})) as store:
        store.register_model_version("churn", {"weights.bin": b"w1"})
        tampered = store.register_model_version("churn", {"weights.bin": b"w2"})
        store.record_evaluation("churn", 2, PASSED)
    (Path(tampered.artifact_uri) / "weights.bin").write_bytes(b"evil")
    never = amploop(home, "models", "promote", "churn:1", "--reason", "go")
    assert_one_line_error(never, GateFailed.exit_code, "never evaluated", "amploop evaluate churn:1", "--force")
    altered = amploop(home, "models", "promote", "churn:2", "--reason", "go")
    assert_one_line_error(altered, ArtifactError.exit_code, "weights.bin does not match its stored SHA-256")
    forced = amploop(home, "models", "promote", "churn:1", "--reason", "hotfix", "--force", "--json")
    assert forced.returncode == 0, forced.stderr
    assert json.loads(forced.stdout)["reason"] == "hotfix [forced past a missing evaluation]"


# -- 3. audit --limit keeps the newest entries ------------------------------------------------------


def test_audit_limit_keeps_the_newest_entries_in_time_order(workspace):
    with Store.open(workspace) as store:
        for i in range(5):
            store.append_audit("demo.step", f"step-{i}")
        assert [e.target for e in store.audit_log(limit=2)] == ["step-3", "step-4"]
        assert [e.target for e in store.audit_log(limit=50)] == [f"step-{i}" for i in range(5)]
        for bad in (0, -1):
            with pytest.raises(UsageError, match=f"limit {bad}: ask for at least 1"):
                store.audit_log(limit=bad)


def test_audit_cli_limit(tmp_path):
    home = tmp_path / ".amploop"
    with Store.open(Workspace.from_env({"AMPLOOP_HOME": str(home)})) as store:
        for i in range(5):
            store.append_audit("demo.step", f"step-{i}")
    newest = amploop(home, "audit", "--limit", "2", "--json")
    assert [e["target"] for e in json.loads(newest.stdout)["entries"]] == ["step-3", "step-4"]
    for bad in ("0", "-3"):
        assert_one_line_error(amploop(home, "audit", "--limit", bad), UsageError.exit_code, f"--limit {bad}")
    huge = amploop(home, "audit", "--limit", str(10**30), "--json")
    assert huge.returncode == 0 and len(json.loads(huge.stdout)["entries"]) == 5, huge.stderr


# -- 4. files whose digest was forged too -----------------------------------------------------------


def _register_small(store: Store) -> dict[str, bytes]:
    files = small_bundle().to_files()
    store.register_model_version("tiny", files)
    return files


def test_an_intact_small_bundle_loads(workspace):
    with Store.open(workspace) as store:
        _register_small(store)
        record, bundle = load_model_bundle(store, "tiny", 1)
    assert record.version == 1 and bundle.build()({"numeric": torch.zeros(3, 2)}).shape == (3, 2)


def _other_shapes() -> bytes:
    return save_safetensors(dict(build_model("mlp", ModelSpec(n_numeric=2, n_outputs=2), {"hidden": [8]}).state_dict()))


@pytest.mark.parametrize(
    ("file", "data", "message"),
    [
        ("model.safetensors", b"not safetensors at all", "model.safetensors is not a valid safetensors file"),
        ("model.safetensors", b"\xff" * 8 + b"{}", "model.safetensors is not a valid safetensors file"),
        ("model.safetensors", _other_shapes(), r"model.safetensors does not fit the mlp architecture.*has shape"),
        ("model.safetensors", save_safetensors({"x": torch.zeros(1)}), r"model.safetensors .*: body.0.bias is missing"),
        ("model.json", b"{not json", "model.json is not valid JSON"),
        ("model.json", b"[1, 2]", "model.json must hold a JSON object"),
        ("model.json", b'{"format": 1}', "model.json field architecture: Field required"),
        ("encoder.json", b"\x00\x01", "encoder.json is not a valid feature encoder"),
    ],
    ids=["garbage", "bad-header", "other-shapes", "other-tensors", "bad-json", "json-list", "no-keys", "bad-encoder"],
)
def test_a_forged_file_with_a_forged_digest_is_an_artifact_error(workspace, file, data, message):
    with Store.open(workspace) as store:
        _register_small(store)
        forge(store, "tiny", 1, file, data)
        with pytest.raises(ArtifactError, match=f"^tiny:1: {message}") as caught:
            load_model_bundle(store, "tiny", 1)
    assert "\n" not in caught.value.message and caught.value.exit_code == 11


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"architecture": ["mlp"]}, "field architecture: Input should be a valid string"),
        ({"spec": {"n_numeric": "two"}}, "field spec.n_numeric: Input should be a valid integer"),
        ({"spec": {"n_numeric": 2, "n_outputs": 0}}, "field spec.n_outputs: Input should be greater than or equal"),
        ({"task": "ranking"}, "field task: Input should be 'classification' or 'regression'"),
        ({"temperature": -1.0}, "field temperature: Value error, must be a finite number above 0"),
        ({"classes": None, "surprise": 1}, "field surprise: Extra inputs are not permitted"),
        ({"format": 2}, "model.json has format 2, this amploop reads format 1; retrain"),
        ({"architecture": "transformer-xl"}, "model.json does not describe a model amploop can build"),
        ({"options": {"hidden": [4], "wings": 2}}, "model.json does not describe a model amploop can build"),
        ({"spec": {"n_numeric": 3, "n_outputs": 2}}, r"body.0.weight has shape \[4, 2\], the model needs \[4, 3\]"),
    ],
    ids=[
        "architecture-type",
        "spec-type",
        "spec-range",
        "task",
        "temperature",
        "extra-key",
        "format",
        "architecture-unknown",
        "options-unknown",
        "spec-mismatch",
    ],
)
def test_a_malformed_model_json_is_an_artifact_error(change, message):
    files = small_bundle().to_files()
    meta = {**json.loads(files["model.json"]), **change}
    files["model.json"] = json.dumps(meta).encode()
    with pytest.raises(ArtifactError, match=message) as caught:
        ModelBundle.from_files(files, source="tiny:7")
    assert caught.value.message.startswith("tiny:7: ") and "\n" not in caught.value.message


def test_the_cli_reports_a_forged_weights_file_in_one_line(tmp_path):
    home = tmp_path / ".amploop"
    with Store.open(Workspace.from_env({"AMPLOOP_HOME": str(home)})) as store:
        _register_small(store)
        forge(store, "tiny", 1, "model.safetensors", b"garbage that hashes fine")
    result = amploop(home, "models", "export", "tiny:1", "--format", "onnx")
    assert_one_line_error(result, ArtifactError.exit_code, "tiny:1: model.safetensors is not a valid safetensors")


# -- 5. version numbers beyond the store's integers ---------------------------------------------------


@pytest.mark.parametrize("version", [MAX_VERSION + 1, 2**63, 10**20, 0, -(2**40)])
def test_versions_beyond_the_integer_column_are_not_found_never_an_overflow(workspace, version):
    with Store.open(workspace) as store:
        store.register_model_version("churn", {"weights.bin": b"w"})
        store.record_evaluation("churn", 1, PASSED)
        promote(store, "churn", 1, reason="baseline")
        with pytest.raises(ModelNotFound, match=f"model 'churn' has no version {version}"):
            store.get_model_version("churn", version)
        with pytest.raises(ModelNotFound, match=f"churn:{version} does not exist"):
            promote(store, "churn", version, reason="x")
        with pytest.raises(ModelNotFound, match=f"churn:{version} cannot be rolled back to"):
            rollback(store, "churn", to=version, reason="x")
        with pytest.raises(ModelNotFound, match=f"churn:{version} does not exist"):
            delete_version(store, "churn", version, reason="x")
        with pytest.raises(ModelNotFound):
            store.record_evaluation("churn", version, PASSED)
        assert store.list_evaluations("churn", version) == []
        assert [m.to_version for m in alias_history(store, "churn")] == [1]


def test_the_largest_version_is_a_lookup_and_one_more_is_a_usage_error(tmp_path):
    assert parse_model_ref(f"adult:{MAX_VERSION}").version == MAX_VERSION
    with pytest.raises(UsageError, match="from 1 to 2147483647"):
        parse_model_ref("adult:99999999999999999999")
    home = tmp_path / ".amploop"
    with Store.open(Workspace.from_env({"AMPLOOP_HOME": str(home)})) as store:
        store.register_model_version("adult", {"weights.bin": b"w"})
    assert_one_line_error(
        amploop(home, "models", "promote", "adult:99999999999999999999", "--reason", "x"),
        UsageError.exit_code,
        "from 1 to 2147483647",
    )
    assert_one_line_error(
        amploop(home, "models", "rollback", "adult", "--to", str(2**40), "--reason", "x"),
        UsageError.exit_code,
        "--to 1099511627776",
    )
    assert_one_line_error(
        amploop(home, "models", "show", f"adult:{MAX_VERSION}"), ModelNotFound.exit_code, "has no version"
    )
