"""`amploop ui` and the dashboard at /ui on `amploop serve`, as real processes."""

from __future__ import annotations

import signal
import socket
import subprocess
import sys

import httpx

from amploop.errors import ConfigError
from amploop.registry import Store
from tests.conftest import worker_env
from tests.serve.conftest import MODEL, ServerProcess, free_port, plants_on


def test_the_dashboard_is_mounted_at_ui_on_the_prediction_server(tmp_path):
    with plants_on("sqlite", tmp_path) as ws, ServerProcess(ws, f"{MODEL}@champion") as server:
        overview = httpx.get(f"{server.url}/ui/", timeout=30)
        assert overview.status_code == 200 and MODEL in overview.text
        assert f'href="/ui/models/{MODEL}"' in overview.text  # links stay under the mount
        model = httpx.get(f"{server.url}/ui/models/{MODEL}", timeout=30)
        assert model.status_code == 200 and "Version 1 is live" in model.text
        assert model.headers["content-security-policy"].startswith("default-src 'none'")
        assert httpx.get(f"{server.url}/ready", timeout=30).status_code == 200  # the API is still there
        refused = httpx.post(f"{server.url}/ui/models/{MODEL}/rollback", data={"reason": "x"}, timeout=30)
        assert refused.status_code == 401
    assert "dashboard at" in server.output


def test_amploop_ui_serves_until_interrupted(tmp_path):
    with plants_on("sqlite", tmp_path) as ws:
        port = free_port()
        proc = subprocess.Popen(
            [sys.executable, "-m", "amploop", "ui", "--port", str(port)],
            env=worker_env(ws),
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        try:
            line = proc.stdout.readline() if proc.stdout else ""
            assert f"dashboard at http://127.0.0.1:{port}/" in line, line + (proc.stderr.read() if proc.stderr else "")
            page = httpx.get(f"http://127.0.0.1:{port}/models/nosuch", timeout=30)
            assert page.status_code == 404 and "no model named &#39;nosuch&#39;" in page.text
            proc.send_signal(signal.SIGINT)
            assert proc.wait(timeout=30) == 0
            assert "Traceback" not in (proc.stderr.read() if proc.stderr else "")  # Ctrl-C is a normal stop
        finally:
            proc.kill()
        with Store.open(ws) as store:
            assert store.alias_version(MODEL, "champion") == 1  # looking changed nothing
        with socket.socket() as taken:  # a port in use is a one-line error, not a traceback
            taken.bind(("127.0.0.1", port))
            taken.listen()
            busy = subprocess.run(
                [sys.executable, "-m", "amploop", "ui", "--port", str(port)],
                env=worker_env(ws),
                capture_output=True,
                text=True,
                timeout=120,
            )
        assert busy.returncode == ConfigError.exit_code and "choose another --port" in busy.stderr
        assert "Traceback" not in busy.stderr and len(busy.stderr.strip().splitlines()) == 1
