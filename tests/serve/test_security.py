"""Secure defaults of `amploop serve`: a forged pickle refused, keys never logged, loopback only, fuzzed API."""

from __future__ import annotations

import pickle
import socket
import subprocess
import sys
from pathlib import Path

import httpx
import pytest
from sqlalchemy import select

from amploop import Store
from amploop.registry.artifacts import sha256_bytes
from amploop.registry.tables import ModelVersionRow
from amploop.serve.auth import create_api_key
from amploop.workspace import Workspace
from tests.conftest import worker_env
from tests.serve.conftest import MODEL, ServerProcess, plants_records, train_plants


class _Planted:
    """Unpickling this runs ``open(marker, "w")``: proof that something was unpickled."""

    def __init__(self, marker: str) -> None:
        self.marker = marker

    def __reduce__(self):
        return (open, (self.marker, "w"))


def _serve(ws: Workspace, reference: str) -> subprocess.CompletedProcess:
    command = [sys.executable, "-m", "amploop", "serve", reference, "--port", "1"]
    return subprocess.run(command, env=worker_env(ws), capture_output=True, text=True, timeout=120)


def test_a_pickle_where_the_weights_belong_is_refused_without_being_run(tmp_path):
    ws = Workspace.from_env({"AMPLOOP_HOME": str(tmp_path / ".amploop")})
    train_plants(ws, tmp_path, versions=1)
    marker = tmp_path / "unpickled"
    payload = pickle.dumps(_Planted(str(marker)))
    with Store.open(ws) as store:
        record = store.get_model_version(MODEL, 1)
        (Path(record.artifact_uri) / "model.safetensors").write_bytes(payload)
    altered = _serve(ws, f"{MODEL}@champion")
    assert altered.returncode == 11 and len(altered.stderr.strip().splitlines()) == 1
    assert "does not match" in altered.stderr or "altered" in altered.stderr, altered.stderr
    with Store.open(ws) as store, store.write() as session:  # forge the digest too, as an insider could
        row = session.scalars(select(ModelVersionRow).where(ModelVersionRow.name == MODEL)).one()
        row.artifacts = {**row.artifacts, "model.safetensors": sha256_bytes(payload)}
    forged = _serve(ws, f"{MODEL}@champion")
    assert forged.returncode == 11, forged.stderr
    assert forged.stderr.strip().splitlines() == [forged.stderr.strip()]
    assert "not a valid safetensors file" in forged.stderr
    assert not marker.exists()


def test_keys_never_reach_the_server_output_and_it_binds_only_loopback(plants_ws):
    with Store.open(plants_ws) as store:
        operator = create_api_key(store, role="operator", name="log check").token
    server = ServerProcess(plants_ws, f"{MODEL}@champion").wait_ready()
    try:
        headers = {"Authorization": f"Bearer {operator}"}
        answer = httpx.post(f"{server.url}/v1/predict", json={"records": plants_records(1)}, headers=headers)
        httpx.post(f"{server.url}/v1/feedback", json={"request_id": answer.json()["request_id"]}, headers=headers)
        httpx.post(f"{server.url}/v1/admin/refresh", headers={"X-API-Key": operator + "x"})
        for address in _other_addresses():
            with pytest.raises(OSError), socket.create_connection((address, server.port), timeout=1):
                pass
    finally:
        server.stop()
    assert operator not in server.output and operator.split("_")[2] not in server.output
    assert "127.0.0.1" in server.output


def _other_addresses() -> list[str]:
    """This host's addresses other than loopback (none in some sandboxes)."""
    try:
        infos = socket.getaddrinfo(socket.gethostname(), None, socket.AF_INET)
    except OSError:
        return []
    return sorted({info[4][0] for info in infos if not info[4][0].startswith("127.")})


def test_schemathesis_finds_no_failure_in_the_openapi_contract(plants_ws, tmp_path):
    with Store.open(plants_ws) as store:
        operator = create_api_key(store, role="operator", name="schemathesis").token
    with ServerProcess(plants_ws, f"{MODEL}@champion") as server:
        command = [
            str(Path(sys.executable).with_name("schemathesis")),
            "run",
            f"{server.url}/openapi.json",
            "--checks",
            "all",
            "--max-examples",
            "60",
            "--generation-deterministic",
            "--header",
            f"Authorization: Bearer {operator}",
        ]
        # run from tmp_path: schemathesis keeps its example database in the working directory
        done = subprocess.run(command, capture_output=True, text=True, timeout=600, cwd=tmp_path)
    summary = [line for line in done.stdout.splitlines() if "generated" in line]
    assert done.returncode == 0, done.stdout[-3000:]
    assert summary and "passed" in summary[-1]
