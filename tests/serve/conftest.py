"""A small trained model in a workspace, and real `amploop serve` processes on 127.0.0.1."""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import numpy as np
import pandas as pd
import pytest

import amploop
from amploop import AmploopConfig, EvaluateConfig, ModelConfig, Store, TrainConfig
from amploop.workspace import Workspace
from tests.conftest import create_pg_database, drop_pg_database, worker_env

MODEL = "plants"


def plants_table(rows: int, seed: int) -> pd.DataFrame:
    """Three separable classes from three numeric columns and a categorical one, with a text id."""
    rng = np.random.default_rng(seed)
    label = rng.integers(0, 3, rows)
    x = rng.normal(size=(rows, 3)) + np.eye(3)[label] * 3.0
    table = pd.DataFrame(x, columns=["length", "width", "height"])
    table["soil"] = np.where(rng.random(rows) < 0.5, "clay", "sand")
    table["kind"] = np.array(["fern", "moss", "palm"])[label]
    return table


def train_plants(ws: Workspace, tmp: Path, versions: int = 2) -> None:
    """Register ``versions`` versions of plants (seeds differ) and point champion at version 1."""
    path = tmp / "plants.csv"
    plants_table(600, seed=0).to_csv(path, index=False)
    with Store.open(ws) as store:
        for seed in range(versions):
            config = AmploopConfig(
                data={"target": "kind"},
                model=ModelConfig(name=MODEL),
                train=TrainConfig(epochs=4, batch_size=32, learning_rate=0.01, precision="fp32", seed=seed),
                evaluate=EvaluateConfig(robustness=False, bootstrap_samples=100),
            )
            amploop.train_version(config, dataset=str(path), store=store)
        amploop.promote(store, MODEL, 1, alias="champion", reason="first release", force=True)


@pytest.fixture(scope="module")
def plants_ws(tmp_path_factory: pytest.TempPathFactory) -> Workspace:
    """A SQLite workspace with plants:1 (champion) and plants:2, shared by a test module."""
    tmp = tmp_path_factory.mktemp("plants")
    ws = Workspace.from_env({"AMPLOOP_HOME": str(tmp / ".amploop")})
    train_plants(ws, tmp)
    return ws


@contextlib.contextmanager
def plants_on(backend: str, tmp: Path) -> Iterator[Workspace]:
    """plants:1 (champion) in a fresh workspace on ``backend``: sqlite, or postgresql with a database of its own."""
    url = create_pg_database() if backend == "postgresql" else None
    ws = Workspace.from_env({"AMPLOOP_HOME": str(tmp / ".amploop"), **({"AMPLOOP_DB_URL": url} if url else {})})
    try:
        train_plants(ws, tmp, versions=1)
        yield ws
    finally:
        if url:
            drop_pg_database(url)


@pytest.fixture(scope="module")
def plants_pg_ws(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Workspace]:
    """The same on the real PostgreSQL server (its own database), artifacts in a shared folder."""
    url = create_pg_database()
    tmp = tmp_path_factory.mktemp("plants-pg")
    ws = Workspace.from_env({"AMPLOOP_HOME": str(tmp / ".amploop"), "AMPLOOP_DB_URL": url})
    try:
        train_plants(ws, tmp)
        yield ws
    finally:
        drop_pg_database(url)


@pytest.fixture(scope="module")
def adult_store(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Store]:
    """A store holding adult:1, trained for one epoch (a few seconds)."""
    home = tmp_path_factory.mktemp("adult") / ".amploop"
    ws = Workspace.from_env({"AMPLOOP_HOME": str(home)})
    config = AmploopConfig(
        model={"name": "adult"},
        train={"epochs": 1, "precision": "fp32", "min_steps": 1},
        evaluate={"robustness": False},
    )
    with Store.open(ws) as store:
        amploop.train_version(config, dataset="adult", store=store)
        yield store


@pytest.fixture(scope="module")
def adult_model(adult_store: Store) -> amploop.Predictor:
    return amploop.load_model("adult:1", store=adult_store)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class ServerProcess:
    """``python -m amploop serve ...`` on a free port, ready when /ready answers 200."""

    def __init__(self, ws: Workspace, reference: str, *args: str, env: dict[str, str] | None = None) -> None:
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        command = [sys.executable, "-m", "amploop", "serve", reference, "--port", str(self.port), *args]
        full_env = {**worker_env(ws), "AMPLOOP_SERVE__ALIAS_POLL_S": "0.2", **(env or {})}
        self.process = subprocess.Popen(
            command, env=full_env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
        )
        self.output = ""

    def wait_ready(self, timeout_s: float = 60) -> ServerProcess:
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                out, err = self.process.communicate()
                raise AssertionError(f"server exited {self.process.returncode}: {err.strip()[-2000:]} {out[-500:]}")
            try:
                if httpx.get(f"{self.url}/ready", timeout=1).status_code == 200:
                    return self
            except httpx.TransportError:
                pass
            time.sleep(0.1)
        self.stop(signal.SIGKILL)
        raise AssertionError(f"server not ready within {timeout_s} s: {self.output}")

    def stop(self, sig: int = signal.SIGTERM, timeout_s: float = 60) -> int:
        if self.process.poll() is None:
            self.process.send_signal(sig)
        try:
            out, err = self.process.communicate(timeout=timeout_s)
        except subprocess.TimeoutExpired:
            self.process.kill()
            out, err = self.process.communicate()
        self.output = out + err
        return self.process.returncode

    def __enter__(self) -> ServerProcess:
        return self.wait_ready()

    def __exit__(self, *exc: object) -> None:
        self.stop()


def plants_records(rows: int, seed: int = 1) -> list[dict]:
    return plants_table(rows, seed).drop(columns=["kind"]).to_dict("records")


os.environ.setdefault("AMPLOOP_TEST_SERVE", "1")
