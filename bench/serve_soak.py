"""A bounded soak of `amploop serve`: steady load for minutes, p99 and RSS per window.

Trains a small adult model in a temporary workspace, starts `amploop serve adult@champion` as
its own process on 127.0.0.1 and drives it with concurrent clients in consecutive windows,
printing each window's requests/s, p50/p99, errors and the server's resident memory. The goal:
0 errors, a stable p99, RSS growth under 10% from the first window to the last, and one
prediction-log row per answered request.

    python bench/serve_soak.py --minutes 10 --clients 16
"""

from __future__ import annotations

import argparse
import os
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import httpx

import amploop
from amploop import AmploopConfig, EvaluateConfig, ModelConfig, Store, TrainConfig
from amploop.serve.loadgen import run_load
from amploop.serve.scoring import table_to_records
from amploop.workspace import Workspace


def _rss_mib(pid: int) -> float:
    with open(f"/proc/{pid}/status") as status:
        return next(int(line.split()[1]) for line in status if line.startswith("VmRSS:")) / 1024


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--minutes", type=float, default=10.0)
    parser.add_argument("--window-s", type=float, default=30.0)
    parser.add_argument("--clients", type=int, default=16)
    args = parser.parse_args()

    home = Path(tempfile.mkdtemp(prefix="amploop-soak-")) / ".amploop"
    ws = Workspace.from_env({"AMPLOOP_HOME": str(home)})
    config = AmploopConfig(
        model=ModelConfig(name="adult"),
        train=TrainConfig(epochs=2, precision="fp32"),
        evaluate=EvaluateConfig(robustness=False),
    )
    with Store.open(ws) as store:
        amploop.train_version(config, dataset="adult", store=store)
        amploop.promote(store, "adult", 1, alias="champion", reason="soak", force=True)
    port = _free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith("AMPLOOP_")}
    env["AMPLOOP_HOME"] = str(home)
    server = subprocess.Popen(
        [sys.executable, "-m", "amploop", "serve", "adult@champion", "--port", str(port)],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
    )
    url = f"http://127.0.0.1:{port}"
    while True:
        try:
            if httpx.get(f"{url}/ready", timeout=1).status_code == 200:
                break
        except httpx.TransportError:
            time.sleep(0.2)
    records = table_to_records(amploop.load_builtin("adult").table.drop(columns=["income"]).head(2000))
    bodies = [{"records": [r]} for r in records]
    windows = max(1, round(args.minutes * 60 / args.window_s))
    print(f"soak: {windows} windows of {args.window_s:g} s, {args.clients} clients, server pid {server.pid}")
    print(f"{'window':>6} {'req/s':>8} {'p50 ms':>8} {'p99 ms':>8} {'errors':>7} {'non-2xx':>8} {'RSS MiB':>8}")
    answered, rows = 0, []
    try:
        for window in range(windows):
            result = run_load(f"{url}/v1/predict", bodies, concurrency=args.clients, seconds=args.window_s)
            shown = result.to_dict()
            answered += result.requests
            non_2xx = sum(v for k, v in result.statuses.items() if not 200 <= k < 300)
            rss = _rss_mib(server.pid)
            rows.append((shown["p99_ms"], rss, result.errors + non_2xx))
            print(
                f"{window + 1:>6} {shown['requests_per_s']:>8.0f} {shown['p50_ms']:>8.1f} {shown['p99_ms']:>8.1f} "
                f"{result.errors:>7} {non_2xx:>8} {rss:>8.0f}",
                flush=True,
            )
    finally:
        server.send_signal(signal.SIGTERM)
        server.wait(120)
    with Store.open(ws) as store:
        logged = store.count_predictions("adult")
    p99s = [r[0] for r in rows]
    growth = rows[-1][1] / rows[0][1] - 1
    print()
    print(f"errors and non-2xx answers: {sum(r[2] for r in rows)}")
    print(f"p99 first / last / max window: {p99s[0]:.1f} / {p99s[-1]:.1f} / {max(p99s):.1f} ms")
    print(f"RSS growth first → last window: {growth:+.1%} (goal < +10%)")
    print(f"prediction log rows {logged:,}; 2xx answers {answered:,} (equal when nothing was lost)")


if __name__ == "__main__":
    main()
