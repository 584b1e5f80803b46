"""Shared fixtures: a fresh workspace on SQLite (a real file) or on the real PostgreSQL server.

Each test run makes its own PostgreSQL databases (``amploop_test_<random>``) on the server at
127.0.0.1:5432 and drops them afterwards, so runs never see each other's rows. When the server
is missing the PostgreSQL tests fail; set AMPLOOP_TEST_SKIP_POSTGRES=1 to skip them knowingly.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from amploop.workspace import Workspace

PG_ADMIN_URL = os.environ.get("AMPLOOP_TEST_PG", "postgresql://postgres@127.0.0.1:5432/test")


def _pg_connect(url: str):
    import psycopg

    return psycopg.connect(url.replace("postgresql+psycopg://", "postgresql://"), autocommit=True, connect_timeout=5)


def create_pg_database() -> str:
    """Create an empty database on the test server; return its SQLAlchemy URL."""
    if os.environ.get("AMPLOOP_TEST_SKIP_POSTGRES") == "1":
        pytest.skip("AMPLOOP_TEST_SKIP_POSTGRES=1")
    import psycopg

    name = f"amploop_test_{uuid.uuid4().hex[:12]}"
    try:
        with _pg_connect(PG_ADMIN_URL) as conn:
            conn.execute(f'CREATE DATABASE "{name}"')
    except psycopg.OperationalError as exc:
        pytest.fail(
            f"PostgreSQL test server unreachable at {PG_ADMIN_URL}: {exc}; start it "
            "(see .ci/run) or set AMPLOOP_TEST_SKIP_POSTGRES=1"
        )
    base = PG_ADMIN_URL.rsplit("/", 1)[0].replace("postgresql://", "postgresql+psycopg://")
    return f"{base}/{name}"


def drop_pg_database(url: str) -> None:
    name = url.rsplit("/", 1)[1]
    with _pg_connect(PG_ADMIN_URL) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


@pytest.fixture
def pg_url() -> Iterator[str]:
    url = create_pg_database()
    try:
        yield url
    finally:
        drop_pg_database(url)


def workspace_env(tmp_path: Path, backend: str, pg: str | None = None) -> dict[str, str]:
    env = {"AMPLOOP_HOME": str(tmp_path / ".amploop")}
    if backend == "postgresql":
        assert pg is not None
        env["AMPLOOP_DB_URL"] = pg
    return env


@pytest.fixture(params=["sqlite", "postgresql"])
def backend(request: pytest.FixtureRequest) -> str:
    return str(request.param)


@pytest.fixture
def workspace(tmp_path: Path, backend: str, request: pytest.FixtureRequest) -> Workspace:
    """A fresh, empty workspace on each backend in turn."""
    pg = request.getfixturevalue("pg_url") if backend == "postgresql" else None
    return Workspace.from_env(workspace_env(tmp_path, backend, pg))


@pytest.fixture
def sqlite_workspace(tmp_path: Path) -> Workspace:
    return Workspace.from_env({"AMPLOOP_HOME": str(tmp_path / ".amploop")})


CHROMIUM = os.environ.get("AMPLOOP_TEST_CHROMIUM", "/usr/bin/chromium")


@pytest.fixture(scope="module")
def browser():
    """Headless Debian chromium driven by Playwright (never a downloaded browser).

    Per module, not per session: Playwright's sync API keeps an event loop running in the main
    thread while it is open, and ``asyncio.run`` refuses to start under a running loop.
    """
    if not Path(CHROMIUM).exists():
        pytest.fail(f"no browser at {CHROMIUM}: apt-get install chromium (.ci/run does)")
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        launched = playwright.chromium.launch(
            executable_path=CHROMIUM, headless=True, args=["--no-sandbox", "--disable-background-networking"]
        )
        yield launched
        launched.close()


def open_page(browser, url: str, screenshot: Path) -> tuple[object, list[str]]:
    """Load ``url``; return the page and every console error or uncaught exception it produced."""
    page = browser.new_page(viewport={"width": 1100, "height": 900})
    problems: list[str] = []
    page.on("console", lambda message: problems.append(message.text) if message.type == "error" else None)
    page.on("pageerror", lambda error: problems.append(str(error)))
    page.goto(url)
    page.wait_for_load_state("load")
    page.screenshot(path=str(screenshot), full_page=True)
    return page, problems


@pytest.fixture(scope="session")
def s3_endpoint():
    """A real S3-compatible HTTP endpoint on 127.0.0.1 (moto's server), with one bucket.

    Yields the environment variables that point boto at it; no request leaves this machine.
    """
    import socket

    from moto.server import ThreadedMotoServer

    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=port, verbose=False)
    server.start()
    env = {
        "AWS_ACCESS_KEY_ID": "amploop-test",
        "AWS_SECRET_ACCESS_KEY": "amploop-test",
        "AWS_DEFAULT_REGION": "us-east-1",
        "AWS_ENDPOINT_URL": f"http://127.0.0.1:{port}",
    }
    import boto3

    boto3.client(
        "s3",
        endpoint_url=env["AWS_ENDPOINT_URL"],
        aws_access_key_id="amploop-test",
        aws_secret_access_key="amploop-test",
        region_name="us-east-1",
    ).create_bucket(Bucket="amploop-test")
    try:
        yield env
    finally:
        server.stop()


def worker_env(ws: Workspace) -> dict[str, str]:
    """The environment a separate process needs to open the same store as ``ws``."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("AMPLOOP_")}
    env["AMPLOOP_HOME"] = str(ws.home)
    if not ws.db_url.startswith("sqlite"):
        env["AMPLOOP_DB_URL"] = ws.db_url
    return env


def run_together(script: Path, ws: Workspace, argv_list: list[list[str]]) -> tuple[list, list[tuple[int, str]]]:
    """Start one process per argv and release them at once, so that they really collide.

    Worker ``i`` runs as ``script MODE SYNC_DIR i REST...`` (``argv = [MODE, *REST]``). Each imports,
    prints ``ready`` and blocks on a shared lock that this function holds until every worker is
    ready (a barrier; see ``tests/registry/worker_sync.py``); each then appends ``i enter`` and
    ``i leave`` around its critical section to one event log. Returns a CompletedProcess per worker
    and the events ``(i, "enter" | "leave")`` in the order they happened (appends to one file are
    ordered by the kernel, not by any clock); :func:`most_inside_at_once` reads them.
    """
    import fcntl
    import subprocess
    import sys
    import tempfile
    import threading

    sync = Path(tempfile.mkdtemp(prefix="together-", dir=ws.home.parent))
    gate = sync / "gate"
    gate.touch()
    procs: list[subprocess.Popen] = []
    watchdog = threading.Timer(600, lambda: [p.kill() for p in procs])  # never a hung test run
    watchdog.start()
    try:
        with open(gate, "rb") as held:
            fcntl.flock(held, fcntl.LOCK_EX)  # closed barrier: workers block on it after saying ready
            for index, argv in enumerate(argv_list):
                procs.append(
                    subprocess.Popen(
                        [sys.executable, str(script), argv[0], str(sync), str(index), *argv[1:]],
                        env=worker_env(ws),
                        stdout=subprocess.PIPE,
                        stderr=subprocess.PIPE,
                        text=True,
                    )
                )
            for proc in procs:
                line = proc.stdout.readline()
                if line != "ready\n":
                    proc.kill()
                    raise AssertionError(f"a worker did not get ready: {line!r} {proc.communicate()[1][-2000:]}")
        # the lock is released here: every worker is past its imports, and all go at once
        results = []
        for proc in procs:
            stdout, stderr = proc.communicate(timeout=600)
            results.append(subprocess.CompletedProcess(proc.args, proc.returncode, stdout, stderr))
    finally:
        watchdog.cancel()
        for proc in procs:
            if proc.poll() is None:
                proc.kill()
                proc.wait()
    events_file = sync / "events.log"
    lines = events_file.read_text().splitlines() if events_file.exists() else []
    events = [(int(worker), event) for worker, event in (line.split() for line in lines)]
    return results, events


def most_inside_at_once(events: list[tuple[int, str]]) -> int:
    """The most workers that were between their ``enter`` and ``leave`` at one moment."""
    inside: set[int] = set()
    most = 0
    for worker, event in events:
        if event == "enter":
            inside.add(worker)
            most = max(most, len(inside))
        elif event == "leave":
            inside.discard(worker)
    return most
