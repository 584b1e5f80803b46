"""Dashboard page latency with 50 versions and 100,000 logged predictions: SQLite against PostgreSQL.

What is measured: the wall time of an HTTP GET of each dashboard page, from an httpx client to the
real dashboard (``amploop.ui.server.background_ui``: uvicorn in a thread of this process), against
the issue's budget of 300 ms a page "with 50 versions and 100,000 logged predictions in the store".
Each page is fetched once to warm up, then ``--repeats`` times (20) in a row; the median and p95 of
those are reported, with the size of the page. Every page must answer 200.

Store. For each backend in turn, a fresh workspace (artifacts in a temporary folder; the database a
SQLite file there, or a throwaway PostgreSQL database made on 127.0.0.1:5432 and dropped after):

- 50 versions of the 3-class ``plants`` model (3 numeric columns, one categorical, target ``kind``;
  600 rows), each trained by ``train_version`` (1 epoch, batch 64, fp32, seed = version) and
  evaluated by ``evaluate_version`` (so each has a gate verdict). Each version trains in well under a
  second here, so the versions are trained in each backend rather than copied between them;
- champion moves (``promote(..., force=True)``, most gates fail at 1 epoch) to versions 1, 10, 20,
  30, 40, 50 (1, 10 in ``--small``): the last is the champion that serves;
- 100,000 rows served by that champion, in 10-row requests (10,000 log entries; 1-row requests
  would mean 100,000 entries and ~33,000 feedback calls, ~3 minutes more on PostgreSQL), predicted by
  ``load_model(...).predict_outputs`` and logged with ``Store.log_predictions`` in batches of 500
  requests, spaced a second per row, the last 30% with ``length`` shifted by +1.5 (so later windows
  drift and alarm); labels (``record_feedback``) for every third request;
- ``monitor_model("plants", window=1000)``: 100 stored window reports; 5 loop decisions (blocked).

Pages: the overview, the model page, version 1's evaluation and model card, monitoring, loop, and
the datasheet of the champion's training data (its link taken from the model page's HTML).
Printed: the setup seconds, the store's row counts, and one table of page x backend (median, p95),
with the PostgreSQL/SQLite median ratio and whether the worse p95 is under the budget.
(``prediction_log`` counts requests, ``feedback`` labelled rows.) Timings are reported, never
asserted. The full run took 115-170 s on 2 shared cores at a load average of 1-3.4 (training and
evaluating the 50 versions 18-70 s per backend); ``--small`` (10 versions, 10,000 rows, 10
repeats) 20-30 s.

    .venv/bin/python bench/ui_pages.py [--small] [--json PATH] [--repeats 20] [--backends sqlite,postgresql]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import re
import sys
import tempfile
import time
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

MODEL = "plants"
BUDGET_MS = 300.0
REQUEST_ROWS = 10
LOG_BATCH = 500  # requests per log_predictions call
WINDOW = 1000
SHIFTED_SHARE = 0.3
PG_ADMIN_URL = os.environ.get("AMPLOOP_BENCH_PG", "postgresql://postgres@127.0.0.1:5432/postgres")
PAGES = (
    ("overview", "/"),
    ("model", f"/models/{MODEL}"),
    ("evaluation v1", f"/models/{MODEL}/versions/1/evaluation"),
    ("card v1", f"/models/{MODEL}/versions/1/card"),
    ("monitoring", f"/models/{MODEL}/monitoring"),
    ("loop", f"/models/{MODEL}/loop"),
)


def plants_table(rows: int, seed: int) -> pd.DataFrame:
    """Three separable classes from three numeric columns and a categorical one."""
    rng = np.random.default_rng(seed)
    label = rng.integers(0, 3, rows)
    table = pd.DataFrame(rng.normal(size=(rows, 3)) + np.eye(3)[label] * 3.0, columns=["length", "width", "height"])
    table["soil"] = np.where(rng.random(rows) < 0.5, "clay", "sand")
    table["kind"] = np.array(["fern", "moss", "palm"])[label]
    return table


def pg_database(create: bool, url: str | None = None) -> str:
    """Create a throwaway database (its SQLAlchemy URL), or drop ``url``'s."""
    import psycopg

    name = f"amploop_bench_{uuid.uuid4().hex[:12]}" if create else str(url).rsplit("/", 1)[1]
    with psycopg.connect(PG_ADMIN_URL, autocommit=True, connect_timeout=5) as conn:
        conn.execute(f'CREATE DATABASE "{name}"' if create else f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
    return PG_ADMIN_URL.rsplit("/", 1)[0].replace("postgresql://", "postgresql+psycopg://") + f"/{name}"


def config_for(seed: int) -> Any:
    from amploop.config import AmploopConfig, EvaluateConfig, ModelConfig, TrainConfig

    return AmploopConfig(
        data={"target": "kind"},
        model=ModelConfig(name=MODEL),
        train=TrainConfig(epochs=1, batch_size=64, precision="fp32", seed=seed),
        evaluate=EvaluateConfig(robustness=False, bootstrap_samples=100),
    )


def fill(store: Any, tmp: Path, args: argparse.Namespace) -> dict[str, float | int]:
    """Versions, promotions, logged predictions, feedback, windows and decisions; seconds per step."""
    from amploop.monitor.windows import monitor_model
    from amploop.registry.aliases import promote
    from amploop.registry.evaluations import evaluate_version
    from amploop.registry.loading import load_model
    from amploop.registry.training import train_version

    seconds: dict[str, float | int] = {}
    csv_path = tmp / "plants.csv"
    plants_table(600, seed=0).to_csv(csv_path, index=False)
    started = time.perf_counter()
    for v in range(1, args.versions + 1):
        trained = train_version(config_for(v), dataset=str(csv_path), store=store)
        assert trained is not None and trained.version.version == v
        evaluate_version(f"{MODEL}:{v}", config_for(v), store=store)
    seconds["training + evaluating"] = time.perf_counter() - started
    for v in [1, *range(10, args.versions + 1, 10)]:
        promote(store, MODEL, v, reason=f"bench/ui_pages.py: version {v}", force=True)
    champion = store.alias_version(MODEL, "champion")

    started = time.perf_counter()
    rows = plants_table(args.rows, seed=1)
    rows.loc[int(len(rows) * (1 - SHIFTED_SHARE)) :, "length"] += 1.5
    features = rows.drop(columns=["kind"])
    predictor = load_model(f"{MODEL}:{champion}", store=store)
    classes = [str(c) for c in predictor.bundle.classes]
    probabilities = predictor.predict_outputs(features)
    records, truth = features.to_dict(orient="records"), rows["kind"].tolist()
    start = datetime.now(UTC) - timedelta(seconds=len(rows) + 60)
    entries, labelled = [], []
    for n, i in enumerate(range(0, len(rows), REQUEST_ROWS)):
        p = probabilities[i : i + REQUEST_ROWS]
        request_id = uuid.uuid4().hex
        outputs = {
            "predictions": [classes[j] for j in p.argmax(axis=1)],
            "probabilities": [dict(zip(classes, map(float, row), strict=True)) for row in p],
            "confidence": [float(c) for c in p.max(axis=1)],
        }
        entries.append(
            dict(request_id=request_id, model_name=MODEL, version=champion, role="served", n_rows=len(p))
            | dict(at=start + timedelta(seconds=i), features=records[i : i + REQUEST_ROWS], outputs=outputs)
            | dict(latency_ms=1.0, replica="bench:1")
        )
        if n % 3 == 0:
            labelled.append((request_id, dict(enumerate(truth[i : i + REQUEST_ROWS]))))
    for b in range(0, len(entries), LOG_BATCH):
        store.log_predictions(entries[b : b + LOG_BATCH])
    seconds["logging"] = time.perf_counter() - started
    started = time.perf_counter()
    for request_id, labels in labelled:
        store.record_feedback(request_id, labels)
    seconds["feedback"] = time.perf_counter() - started
    started = time.perf_counter()
    monitored = monitor_model(MODEL, window=WINDOW, store=store)
    seconds["monitoring"] = time.perf_counter() - started
    for k in range(5):
        store.record_loop_decision(MODEL, "blocked", reasons=[f"bench/ui_pages.py: blocked decision {k}"])
    seconds["windows"] = len(monitored.windows)
    return seconds


def measure(url: str, repeats: int) -> dict[str, dict[str, Any]]:
    """Warm-up GET, then ``repeats`` timed GETs of each page; milliseconds and sizes."""
    import httpx

    results: dict[str, dict[str, Any]] = {}
    with httpx.Client(base_url=url, timeout=120) as client:
        model_html = client.get(PAGES[1][1]).text
        found = re.search(r"/datasets/[0-9A-Za-z_-]+/datasheet", model_html)
        pages = [*PAGES, ("datasheet", found.group(0) if found else "/datasets/(no link on the model page)/datasheet")]
        for page, path in pages:
            warm = client.get(path)
            times, codes = [], {warm.status_code}
            for _ in range(repeats):
                began = time.perf_counter()
                response = client.get(path)
                times.append((time.perf_counter() - began) * 1000)
                codes.add(response.status_code)
            results[page] = {
                "path": path,
                "status": sorted(codes),
                "median_ms": float(np.median(times)),
                "p95_ms": float(np.percentile(times, 95)),
                "kb": len(warm.content) / 1024,
                "ms": times,
            }
            print(f"  {page:<14} {results[page]['median_ms']:8.1f} ms median, HTTP {sorted(codes)}", flush=True)
    return results


def run_backend(backend: str, root: Path, args: argparse.Namespace) -> dict[str, Any]:
    from amploop.registry import Store
    from amploop.ui.server import background_ui
    from amploop.workspace import Workspace

    tmp = root / backend
    tmp.mkdir()
    url = pg_database(create=True) if backend == "postgresql" else None
    env = {"AMPLOOP_HOME": str(tmp / ".amploop"), **({"AMPLOOP_DB_URL": url} if url else {})}
    try:
        with Store.open(Workspace.from_env(env)) as store:
            setup = fill(store, tmp, args)
            counts = store.info().to_dict()["counts"]
            print("  setup: " + ", ".join(f"{k} {number(v)}{' s' * isinstance(v, float)}" for k, v in setup.items()))
            with background_ui(store, config_for(1)) as ui:
                pages = measure(ui, args.repeats)
    finally:
        if url:
            pg_database(create=False, url=url)
    return {"setup": setup, "counts": counts, "pages": pages}


def number(value: float | int) -> str:
    """Seconds with one decimal; counts as they are."""
    return f"{value:.1f}" if isinstance(value, float) else f"{value:,}"


def text_table(header: list[str], rows: list[list[str]]) -> str:
    """Plain-text columns: the first left-aligned, the others right-aligned."""
    widths = [max(len(r[i]) for r in [header, *rows]) for i in range(len(header))]
    lines = [
        "  ".join(c.ljust(w) if i == 0 else c.rjust(w) for i, (c, w) in enumerate(zip(cells, widths, strict=True)))
        for cells in [header, *rows]
    ]
    return "\n".join([lines[0], "-" * len(lines[0]), *lines[1:]])


def report(results: dict[str, dict[str, Any]]) -> dict[str, Any]:
    backends = list(results)
    print("\nsetup (seconds; windows: stored window reports)")
    keys = list(results[backends[0]]["setup"])
    steps = [[k, *(number(results[b]["setup"][k]) for b in backends)] for k in keys]
    print(text_table(["step", *backends], steps))
    print("\nstore row counts")
    tables = list(results[backends[0]]["counts"])
    print(text_table(["table", *backends], [[t, *(f"{results[b]['counts'][t]:,}" for b in backends)] for t in tables]))
    header = ["page"]
    for b in backends:
        header += [f"{b} median ms", f"{b} p95 ms"]
    header += ["KB", "HTTP"]
    header += ["pg/sqlite median"] if len(backends) == 2 else []
    header += [f"worse p95 < {BUDGET_MS:g} ms"]
    rows, verdicts = [], {}
    for page in results[backends[0]]["pages"]:
        cells = [results[b]["pages"][page] for b in backends]
        row = [page]
        for c in cells:
            row += [f"{c['median_ms']:.1f}", f"{c['p95_ms']:.1f}"]
        row += [f"{cells[0]['kb']:.1f}", "/".join(",".join(map(str, c["status"])) for c in cells)]
        if len(backends) == 2:
            row.append(f"{cells[1]['median_ms'] / cells[0]['median_ms']:.2f}x")
        worst = max(c["p95_ms"] for c in cells)
        ok = worst < BUDGET_MS and all(c["status"] == [200] for c in cells)
        verdicts[page] = {"worst_p95_ms": worst, "within_budget": ok}
        rows.append([*row, f"{'yes' if ok else 'NO'} ({worst:.0f})"])
    print(f"\npage latency, {len(results[backends[0]]['pages']['overview']['ms'])} timed GETs after one warm-up")
    print(text_table(header, rows))
    over = [p for p, v in verdicts.items() if not v["within_budget"]]
    print(f"\nbudget {BUDGET_MS:g} ms per page: " + (f"over on {', '.join(over)}" if over else "every page within"))
    return verdicts


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--small", action="store_true", help="10 versions, 10,000 rows, 10 repeats: a quick check")
    parser.add_argument("--repeats", type=int, default=None, help="timed GETs per page (default 20; 10 with --small)")
    parser.add_argument("--backends", default="sqlite,postgresql", help="comma-separated: sqlite, postgresql")
    parser.add_argument("--tmp", default="/tmp", help="where the temporary workspaces go")
    parser.add_argument("--json", default=None, help="write the results here as JSON")
    args = parser.parse_args()
    args.versions, args.rows = (10, 10_000) if args.small else (50, 100_000)
    args.repeats = args.repeats or (10 if args.small else 20)
    began = time.perf_counter()
    print(
        f"dashboard pages: {args.versions} versions, {args.rows:,} logged rows; python {platform.python_version()}, "
        f"{os.cpu_count()} CPUs, load average {' '.join(f'{x:.2f}' for x in os.getloadavg())}"
    )
    results = {}
    with tempfile.TemporaryDirectory(prefix="ui-pages-", dir=args.tmp) as folder:
        for backend in args.backends.split(","):
            print(f"\n{backend}", flush=True)
            results[backend] = run_backend(backend, Path(folder), args)
    verdicts = report(results)
    wall = time.perf_counter() - began
    print(f"\nwall time {wall:.0f} s")
    if args.json:
        payload = {
            "small": args.small,
            "versions": args.versions,
            "rows": args.rows,
            "repeats": args.repeats,
            "budget_ms": BUDGET_MS,
            "backends": results,
            "verdicts": verdicts,
            "wall_s": wall,
            "python": sys.version,
            "cpus": os.cpu_count(),
        }
        Path(args.json).write_text(json.dumps(payload, indent=1, default=str))


if __name__ == "__main__":
    main()
