"""Store write throughput: SQLite (WAL) against PostgreSQL, side by side in one run.

Each contender appends audit entries, one committed transaction per entry (how the CLI, the
server and the loop write), from 1 and from 4 concurrent processes. Prints a table of
entries/s with the ratio to SQLite single-process.

    .venv/bin/python bench/store_writes.py [--entries 2000] [--pg postgresql+psycopg://postgres@127.0.0.1:5432/test]
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path

WRITER = """
import sys, time
from amploop.registry import Store
n, start_at = int(sys.argv[1]), float(sys.argv[2])
with Store.open() as store:
    time.sleep(max(0.0, start_at - time.time()))
    for i in range(n):
        store.append_audit("bench.write", str(i), actor="bench")
"""


def run_writers(env: dict[str, str], processes: int, entries: int) -> float:
    start_at = time.time() + 2.0
    procs = [
        subprocess.Popen([sys.executable, "-c", WRITER, str(entries // processes), f"{start_at:.3f}"], env=env)
        for _ in range(processes)
    ]
    for proc in procs:
        if proc.wait() != 0:
            raise SystemExit("a writer failed")
    return entries / (time.time() - start_at)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--entries", type=int, default=2000)
    parser.add_argument("--pg", default="postgresql+psycopg://postgres@127.0.0.1:5432/test")
    args = parser.parse_args()

    import psycopg

    admin = args.pg.replace("postgresql+psycopg://", "postgresql://")
    db = f"amploop_bench_{uuid.uuid4().hex[:8]}"
    with psycopg.connect(admin, autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{db}"')
    base = {k: v for k, v in os.environ.items() if not k.startswith("AMPLOOP_")}
    rows = []
    try:
        with tempfile.TemporaryDirectory() as home:
            sqlite_env = {**base, "AMPLOOP_HOME": str(Path(home) / "sqlite")}
            pg_env = {
                **base,
                "AMPLOOP_HOME": str(Path(home) / "pg"),
                "AMPLOOP_DB_URL": args.pg.rsplit("/", 1)[0] + f"/{db}",
            }
            for processes in (1, 4):
                for name, env in (("sqlite (WAL)", sqlite_env), ("postgresql", pg_env)):
                    rows.append((name, processes, run_writers(env, processes, args.entries)))
    finally:
        with psycopg.connect(admin, autocommit=True) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{db}" WITH (FORCE)')

    baseline = rows[0][2]
    print(f"\nstore writes: {args.entries} audit entries, one transaction each\n")
    print(f"{'backend':<14} {'processes':>9} {'entries/s':>10} {'vs sqlite x1':>13}")
    for name, processes, rate in rows:
        print(f"{name:<14} {processes:>9} {rate:>10,.0f} {rate / baseline:>12.2f}x")


if __name__ == "__main__":
    main()
