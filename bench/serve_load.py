"""The prediction server under load: amploop against its ceilings, FastAPI by hand and BentoML (CPU).

The adult MLP is trained briefly (2 epochs, fp32) into a temporary AMPLOOP_HOME and promoted to
``adult@champion``. Each HTTP contender runs as its own process on 127.0.0.1 with a free port;
all are started first and then driven in turn, concurrency level by level, so a change in the
machine's load hits every contender alike. The same closed-loop load generator
(:func:`amploop.serve.loadgen.drive`) drives each: one adult record per request
(``{"records": [record]}``, records drawn from the built-in table without ``income``), N clients,
a bounded time after a warm-up. The clients are split into groups of 8, each group one
``drive`` call with its own connection pool (see :func:`drive_pools`: one pool for 64 clients
makes the generator, not the server, the bottleneck). The sweep runs ``--rounds`` times and
each point keeps its best round, as timeit does, since the machine is shared. Servers stop
with SIGTERM at the end.

Contenders:

- ceiling 0: a bare ASGI app under uvicorn that answers a fixed body: what the load generator
  can drive on this machine at all, the bound on every row (on 2 cores it is not far above them);
- ceiling A: amploop's own server (batching on, prediction log on) with a no-op model that
  answers precomputed scores: all the HTTP, parsing, batching and logging, none of the model;
- ceiling B: the model alone, in this process, no HTTP: ``Predictor.predict_outputs`` on
  batches of 64 rows (one line, not per concurrency);
- ``amploop serve`` with batching (the defaults: 64 rows, 5 ms), prediction log on;
- the same with ``--no-prediction-log``;
- the same with batching off (``AMPLOOP_SERVE__MAX_BATCH_SIZE=1``, ``AMPLOOP_SERVE__MAX_WAIT_MS=0``), log on;
- the FastAPI app a user writes by hand (``bench/plain_fastapi.py``): a ``def`` endpoint run in
  FastAPI's threadpool, one ``predict_outputs`` per request;
- BentoML's adaptive batching over the same model (``bench/bentoml_service.py``), run from a
  virtualenv of its own (``--bento-python``), marked n/a when that is missing or fails.

For the amploop servers the table also shows the rows per forward pass actually reached (the
server's ``amploop_batch_rows`` histogram, sum/count over the measured interval; BentoML's
``bentoml_service_adaptive_batch_size`` likewise), and after they stop, that each 2xx answer the
server counted is one row of its prediction log (each amploop server has its own copy of the
workspace). Timings are reported, never asserted. The load generator shares the machine's cores
with the server: on a small machine it is part of what is measured, the same for every contender.

    .venv/bin/python bench/serve_load.py [--seconds 3] [--warmup-s 1] [--rounds 2] [--concurrency 1 8 32 64]
        [--clients-per-pool 8] [--threads 1] [--quick] [--home DIR] [--bento-python /tmp/bentovenv/bin/python]

One torch intra-op thread per server by default (``--threads``): on 2 cores shared with the load
generator, two OpenMP threads per forward pass ran a 64-row batch several times slower here.

The BentoML virtualenv (not part of the project):

    python3 -m venv /tmp/bentovenv
    /tmp/bentovenv/bin/pip install bentoml torch==2.13.0 pandas pyarrow sqlalchemy alembic typer \\
        scipy safetensors scikit-learn threadpoolctl
    echo /path/to/checkout > /tmp/bentovenv/lib/python3.11/site-packages/amploop_src.pth
"""

from __future__ import annotations

import argparse
import asyncio
import math
import os
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
from prometheus_client.parser import text_string_to_metric_families
from rich.console import Console
from rich.table import Table

import amploop
from amploop.config import AmploopConfig, EvaluateConfig, ModelConfig, ServeConfig, TrainConfig
from amploop.serve.loadgen import LoadResult, drive
from amploop.workspace import Workspace

BENCH = Path(__file__).resolve().parent
REPO = BENCH.parent
MODEL = "adult@champion"
BATCH_ROWS = ServeConfig().max_batch_size  # 64: amploop's default, also BentoML's here
MAX_WAIT_MS = ServeConfig().max_wait_ms  # 5 ms
RECORDS = 2000  # distinct request bodies, sent in turn
console = Console(width=150)


# -- the no-op model (ceiling A's server process) -----------------------------------------------


class NoopModel:
    """A :class:`~amploop.serve.models.ServedModel` whose ``run`` answers precomputed scores.

    Everything else (schema, target, name, version, describe) is the real served model's, so the
    server parses, validates, batches, renders and logs exactly as it does for the real one.
    """

    def __init__(self, served: Any, scores: Any) -> None:
        self.served = served
        self.scores = scores  # for max_rows_per_request rows

    def __getattr__(self, name: str) -> Any:
        return getattr(self.served, name)

    def run(self, inputs: list[Any]) -> list[Any]:
        from amploop.serve.scoring import Scores

        s = self.scores
        out = []
        for item in inputs:
            n = item.n if hasattr(item, "n") else len(item[0])  # scoring.Rows, or a (table, arrays) pair
            out.append(Scores(s.version, s.predictions[:n], s.probabilities[:n], s.classes, s.confidence[:n]))
        return out


def serve_noop(port: int) -> None:
    """Run amploop's server on ``port`` (workspace: ``AMPLOOP_HOME``), its model replaced by :class:`NoopModel`."""
    from amploop.registry.store import Store
    from amploop.serve.models import load_served_model
    from amploop.serve.scoring import score
    from amploop.serve.server import serve

    config = ServeConfig(port=port)
    table = amploop.load_builtin("adult").table.drop(columns=["income"]).head(config.max_rows_per_request)
    with Store.open() as store:

        def loader(name: str, version: int) -> Any:
            served = load_served_model(store, name, version)
            return NoopModel(served, score(served.predictor, table))

        serve(MODEL, config, store=store, loader=loader)


def serve_bare(port: int) -> None:
    """Ceiling 0's process: a bare ASGI app that answers every request with a fixed JSON body.

    It reads the request body and nothing more: what it reaches is what the load generator (and
    uvicorn's HTTP layer) can drive on this machine, the bound on every other row of the table.
    """
    import uvicorn

    answer = b'{"predictions": ["<=50K"], "probabilities": [{"<=50K": 0.9, ">50K": 0.1}]}'
    headers = [(b"content-type", b"application/json"), (b"content-length", str(len(answer)).encode())]

    async def app(scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            return
        while (await receive()).get("more_body"):
            pass
        await send({"type": "http.response.start", "status": 200, "headers": headers})
        await send({"type": "http.response.body", "body": answer})

    uvicorn.run(app, host="127.0.0.1", port=port, log_level="warning", access_log=False)


# -- the workspace and the requests ---------------------------------------------------------------


def train(home: Path) -> float:
    """Train and promote ``adult@champion`` in ``home``; the seconds it took."""
    started = time.perf_counter()
    config = AmploopConfig(
        model=ModelConfig(name="adult"),
        train=TrainConfig(epochs=2, precision="fp32"),
        evaluate=EvaluateConfig(robustness=False),
    )
    with amploop.Store.open(Workspace.from_env({"AMPLOOP_HOME": str(home)})) as store:
        amploop.train_version(config, dataset="adult", store=store)
        amploop.promote(store, "adult", 1, alias="champion", reason="bench", force=True)
    return time.perf_counter() - started


def request_bodies(count: int) -> list[dict[str, Any]]:
    """``{"records": [record]}`` for ``count`` adult rows (seeded sample), missing values as null."""
    table = amploop.load_builtin("adult").table.drop(columns=["income"]).sample(n=count, random_state=0)
    bodies = []
    for record in table.to_dict("records"):
        clean = {k: None if isinstance(v, float) and math.isnan(v) else v for k, v in record.items()}
        bodies.append({"records": [clean]})
    return bodies


# -- ceiling B and one batch's time, in this process ----------------------------------------------


@dataclass
class InProcess:
    rows_per_s: float  # predict_outputs on 64-row batches, validate=False (what the server runs)
    rows_per_s_validated: float  # the same with the schema check (what the hand-written apps run)
    batch_ms: float  # median time of one 64-row call, validate=False


def measure_in_process(home: Path, bodies: list[dict[str, Any]], seconds: float) -> InProcess:
    import pandas as pd

    with amploop.Store.open(Workspace.from_env({"AMPLOOP_HOME": str(home)})) as store:
        predictor = amploop.load_model(MODEL, store=store)
    records = [b["records"][0] for b in bodies]
    frames = [pd.DataFrame(records[i : i + BATCH_ROWS]) for i in range(0, len(records) - BATCH_ROWS + 1, BATCH_ROWS)]

    def run(validate: bool) -> list[float]:
        for frame in frames[:3]:
            predictor.predict_outputs(frame, validate=validate)  # warm-up
        times: list[float] = []
        deadline = time.perf_counter() + seconds
        while time.perf_counter() < deadline:
            frame = frames[len(times) % len(frames)]
            started = time.perf_counter()
            predictor.predict_outputs(frame, validate=validate)
            times.append(time.perf_counter() - started)
        return times

    fast, checked = run(False), run(True)
    return InProcess(
        rows_per_s=BATCH_ROWS * len(fast) / sum(fast),
        rows_per_s_validated=BATCH_ROWS * len(checked) / sum(checked),
        batch_ms=statistics.median(fast) * 1000,
    )


# -- servers --------------------------------------------------------------------------------------


@dataclass
class Point:
    result: dict[str, Any]  # LoadResult.to_dict()
    non_2xx: int
    batch_rows_mean: float | None


@dataclass
class Server:
    key: str
    label: str
    command: list[str]  # "{port}" is replaced by the port
    env: dict[str, str]
    predict_path: str
    ready_path: str
    batch_metric: str | None = None  # histogram of rows per forward pass in its /metrics
    home: Path | None = None  # an amploop server's own workspace copy (the prediction-log check)
    logs_predictions: bool = False
    why_not: str = ""  # set when it is not available or failed to start
    process: subprocess.Popen[bytes] | None = None
    port: int = 0
    log_path: Path | None = None
    points: dict[int, Point] = field(default_factory=dict)
    served_2xx: int | None = None  # answered 2xx on /v1/predict, from its /metrics, before it stopped
    logged_before: int = 0  # rows in its prediction log before it started (a reused --home has some)
    logged: int | None = None  # rows it added

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def log_tail(server: Server, lines: int = 3) -> str:
    if server.log_path is None or not server.log_path.exists():
        return ""
    text = server.log_path.read_text(errors="replace").strip().splitlines()
    return " | ".join(text[-lines:])


def start(server: Server, logs: Path, probe: dict[str, Any], timeout_s: float = 180.0) -> None:
    """Start ``server`` and wait until it is ready and answers one request with 2xx; else set ``why_not``."""
    server.port = free_port()
    server.log_path = logs / f"{server.key}.log"
    command = [part.replace("{port}", str(server.port)) for part in server.command]
    with server.log_path.open("wb") as log:
        # a session of its own, so SIGTERM reaches every process the server starts (BentoML's workers)
        server.process = subprocess.Popen(
            command, env=server.env, cwd=REPO, stdout=log, stderr=subprocess.STDOUT, start_new_session=True
        )
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if server.process.poll() is not None:
            server.why_not = f"exited with {server.process.returncode} before it was ready: {log_tail(server)}"
            return
        try:
            if httpx.get(server.url + server.ready_path, timeout=2).status_code == 200:
                answer = httpx.post(server.url + server.predict_path, json=probe, timeout=60)
                if answer.is_success:
                    return
                server.why_not = f"answered a probe request with {answer.status_code}: {answer.text[:200]}"
                stop(server)
                return
        except httpx.TransportError:
            pass
        time.sleep(0.25)
    server.why_not = f"not ready within {timeout_s:g} s: {log_tail(server)}"
    stop(server)


def stop(server: Server) -> None:
    """SIGTERM (an amploop server drains, then flushes its prediction log), SIGKILL after 60 s."""
    process = server.process
    if process is None or process.poll() is not None:
        return
    os.killpg(process.pid, signal.SIGTERM)
    try:
        process.wait(60)
    except subprocess.TimeoutExpired:
        os.killpg(process.pid, signal.SIGKILL)
        process.wait(10)


def scrape(server: Server) -> dict[str, float]:
    """From the server's /metrics: the batch histogram's sum and count, and 2xx answers to /v1/predict."""
    found = {"sum": 0.0, "count": 0.0, "served_2xx": 0.0}
    text = httpx.get(server.url + "/metrics", timeout=10).text
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            if server.batch_metric and sample.name == f"{server.batch_metric}_sum":
                found["sum"] += sample.value
            elif server.batch_metric and sample.name == f"{server.batch_metric}_count":
                found["count"] += sample.value
            elif (
                sample.name == "amploop_http_requests_total"
                and sample.labels.get("route") == "/v1/predict"
                and sample.labels.get("status", "").startswith("2")
            ):
                found["served_2xx"] += sample.value
    return found


async def drive_pools(
    url: str, bodies: list[dict[str, Any]], *, concurrency: int, seconds: float, warmup_s: float, per_pool: int
) -> LoadResult:
    """:func:`drive` with the clients split into groups of ``per_pool``, each group its own ``drive`` call.

    One ``drive`` shares one httpx connection pool among all its clients, and httpcore's pool does
    bookkeeping over every connection on each request: on 2 cores, 64 clients in one pool drive a
    bare ASGI app at about a tenth of the rate that 8 pools of 8 do. Splitting keeps the load
    generator from being what is measured; the results are merged (answers, statuses and
    latencies added up, the longest measured interval). ``per_pool=0``: one pool, as ``drive`` is.
    """
    if not per_pool or per_pool >= concurrency:
        return await drive(url, bodies, concurrency=concurrency, seconds=seconds, warmup_s=warmup_s)
    starts = range(0, concurrency, per_pool)
    parts = await asyncio.gather(
        *(
            drive(
                url,
                bodies[start:] + bodies[:start],  # each group starts elsewhere in the records
                concurrency=min(per_pool, concurrency - start),
                seconds=seconds,
                warmup_s=warmup_s,
            )
            for start in starts
        )
    )
    statuses: Counter[int] = Counter()
    for part in parts:
        statuses.update(part.statuses)
    return LoadResult(
        requests=sum(p.requests for p in parts),
        rows=sum(p.rows for p in parts),
        seconds=max(p.seconds for p in parts),
        statuses=dict(statuses),
        errors=sum(p.errors for p in parts),
        latencies_ms=[ms for p in parts for ms in p.latencies_ms],
        concurrency=concurrency,
    )


async def measure(
    server: Server,
    bodies: list[dict[str, Any]],
    concurrency: int,
    seconds: float,
    warmup_s: float,
    per_pool: int,
) -> Point:
    """One point: drive the server; the batch histogram is read at the end of the warm-up and after."""
    before: asyncio.Task[dict[str, float]] | None = None
    if server.batch_metric:

        async def at_warmup_end() -> dict[str, float]:
            await asyncio.sleep(warmup_s)
            return await asyncio.to_thread(scrape, server)

        before = asyncio.create_task(at_warmup_end())
    result = await drive_pools(
        server.url + server.predict_path,
        bodies,
        concurrency=concurrency,
        seconds=seconds,
        warmup_s=warmup_s,
        per_pool=per_pool,
    )
    mean = None
    if before is not None:
        first, last = await before, await asyncio.to_thread(scrape, server)
        batches = last["count"] - first["count"]
        mean = (last["sum"] - first["sum"]) / batches if batches else None
    non_2xx = sum(n for status, n in result.statuses.items() if not 200 <= status < 300)
    return Point(result.to_dict(), non_2xx, mean)


def count_logged(home: Path) -> int:
    with amploop.Store.open(Workspace.from_env({"AMPLOOP_HOME": str(home)})) as store:
        return store.count_predictions("adult")


# -- the contenders -------------------------------------------------------------------------------


def contenders(args: argparse.Namespace, home: Path, scratch: Path) -> list[Server]:
    base = {k: v for k, v in os.environ.items() if not k.startswith(("AMPLOOP_", "OMP_", "MKL_"))}
    if args.threads:
        base.update(OMP_NUM_THREADS=str(args.threads), MKL_NUM_THREADS=str(args.threads))

    def workspace_copy(key: str) -> Path:
        copy = scratch / f"home-{key}"
        shutil.copytree(home, copy)
        return copy

    def amploop_server(
        key: str, label: str, command: list[str], extra_env: dict[str, str] | None = None, *, log: bool = True
    ) -> Server:
        copy = workspace_copy(key)
        env = dict(base, AMPLOOP_HOME=str(copy), **(extra_env or {}))
        return Server(key, label, command, env, "/v1/predict", "/ready", "amploop_batch_rows", copy, log)

    python = sys.executable
    serve = [python, "-m", "amploop", "serve", MODEL, "--port", "{port}"]
    servers = [
        Server("bare", "ceiling 0: bare ASGI app", [python, __file__, "--_serve-bare", "{port}"], base, "/", "/"),
        amploop_server("ceiling-a", "ceiling A: amploop, no-op model", [python, __file__, "--_serve-noop", "{port}"]),
        amploop_server("amploop", "amploop: batching, log", serve),
        amploop_server("amploop-nolog", "amploop: batching, no log", [*serve, "--no-prediction-log"], log=False),
        amploop_server(
            "amploop-nobatch",
            "amploop: no batching, log",
            serve,
            {"AMPLOOP_SERVE__MAX_BATCH_SIZE": "1", "AMPLOOP_SERVE__MAX_WAIT_MS": "0"},
        ),
    ]
    plain_env = dict(base, AMPLOOP_HOME=str(home))
    servers.append(
        Server(
            "fastapi",
            "FastAPI by hand (def, threadpool)",
            [python, str(BENCH / "plain_fastapi.py"), "--port", "{port}"],
            plain_env,
            "/predict",
            "/health",
        )
    )
    servers.append(bentoml_server(args, base, home, scratch))
    return servers


def bentoml_server(args: argparse.Namespace, base: dict[str, str], home: Path, scratch: Path) -> Server:
    python = Path(args.bento_python)
    server = Server(
        "bentoml",
        "BentoML (adaptive batching)",
        [
            str(python.parent / "bentoml"),
            "serve",
            "bentoml_service:AdultService",
            "--working-dir",
            str(BENCH),
            "--host",
            "127.0.0.1",
            "--port",
            "{port}",
        ],
        dict(
            base,
            AMPLOOP_HOME=str(home),
            BENTOML_HOME=str(scratch / "bentoml"),
            BENTOML_DO_NOT_TRACK="True",
            PYTHONDONTWRITEBYTECODE="1",
            BENCH_BENTO_MAX_BATCH_SIZE=str(BATCH_ROWS),
        ),
        "/predict",
        "/readyz",
        "bentoml_service_adaptive_batch_size",
    )
    if not python.exists():
        server.why_not = f"no BentoML virtualenv at {python} (see this script's docstring to make one)"
        return server
    check = subprocess.run(
        [str(python), "-c", "import bentoml, amploop; print(bentoml.__version__)"],
        capture_output=True,
        text=True,
        env=server.env,
    )
    if check.returncode != 0:
        last = check.stderr.strip().splitlines()[-1:] or ["?"]
        server.why_not = f"{python} cannot import bentoml and amploop: {last[0]}"
        return server
    server.label = f"BentoML {check.stdout.strip()} (adaptive batching)"
    return server


# -- the report -----------------------------------------------------------------------------------


def ratio(a: float | None, b: float | None) -> str:
    return f"{a / b:.2f}×" if a and b else "n/a"


def report(servers: list[Server], levels: list[int], in_process: InProcess, args: argparse.Namespace) -> None:
    table = Table(
        title=(
            f"one adult record per request; {args.seconds:g} s per point after {args.warmup_s:g} s warm-up; "
            f"best of {args.rounds} round(s) by req/s; clients in pools of {args.clients_per_pool or 'all'}"
        )
    )
    for name, justify in [
        ("contender", "left"),
        ("clients", "right"),
        ("req/s", "right"),
        ("rows/s", "right"),
        ("p50 ms", "right"),
        ("p95 ms", "right"),
        ("p99 ms", "right"),
        ("non-2xx", "right"),
        ("errors", "right"),
        ("rows/batch", "right"),
    ]:
        table.add_column(name, justify=justify)  # type: ignore[arg-type]
    for level in levels:
        for server in servers:
            if server.why_not:
                table.add_row(server.label, str(level), *["n/a"] * 8)
                continue
            p = server.points[level]
            r = p.result
            batch = f"{p.batch_rows_mean:.1f}" if p.batch_rows_mean is not None else "-"
            table.add_row(
                server.label,
                str(level),
                f"{r['requests_per_s']:,.0f}",
                f"{r['rows_per_s']:,.0f}",
                f"{r['p50_ms']:.1f}",
                f"{r['p95_ms']:.1f}",
                f"{r['p99_ms']:.1f}",
                str(p.non_2xx),
                str(r["errors"]),
                batch,
            )
        table.add_section()
    console.print(table)
    console.print(
        f"ceiling B (the model in-process, no HTTP, {BATCH_ROWS}-row batches): "
        f"{in_process.rows_per_s:,.0f} rows/s without the schema check (as the server runs it), "
        f"{in_process.rows_per_s_validated:,.0f} rows/s with it (as the hand-written apps run it); "
        f"one {BATCH_ROWS}-row batch {in_process.batch_ms:.1f} ms (median)",
        highlight=False,
    )
    for n, why in [(s.label, s.why_not) for s in servers if s.why_not]:
        console.print(f"{n}: n/a — {why}", highlight=False)

    by_key = {s.key: s for s in servers}

    def rps(key: str, level: int) -> float | None:
        s = by_key[key]
        return None if s.why_not or level not in s.points else s.points[level].result["requests_per_s"]

    def p99(key: str, level: int) -> float | None:
        s = by_key[key]
        return None if s.why_not or level not in s.points else s.points[level].result["p99_ms"]

    console.print(
        "load generator alone (ceiling 0), requests/s by clients: "
        + ", ".join(f"{level}: {rps('bare', level) or 'n/a'}" for level in levels),
        highlight=False,
    )
    goal_ms = MAX_WAIT_MS + 2 * in_process.batch_ms
    console.print(
        f"\np99 goal (max wait {MAX_WAIT_MS:g} ms + 2 × one batch {in_process.batch_ms:.1f} ms) = {goal_ms:.1f} ms:",
        highlight=False,
    )
    for key in ("amploop", "amploop-nolog"):
        cells = []
        for level in levels:
            value = p99(key, level)
            mark = "n/a" if value is None else ("met" if value <= goal_ms else "missed")
            cells.append(
                f"{level} clients {value if value is not None else 'n/a'} ms ({mark}; bare app {p99('bare', level)} ms)"
            )
        console.print(f"  {by_key[key].label}: " + "; ".join(cells), highlight=False)

    top = max(levels)
    console.print(f"\nratios at {top} clients (requests/s; p99 in brackets, lower is better):", highlight=False)
    lines = [
        ("amploop (batching, log) / ceiling 0 (bare ASGI app)", "amploop", "bare"),
        ("amploop (batching, log) / ceiling A (no-op model)", "amploop", "ceiling-a"),
        ("amploop (batching, log) / FastAPI by hand", "amploop", "fastapi"),
        ("amploop (batching, log) / BentoML", "amploop", "bentoml"),
        ("prediction log: on / off", "amploop", "amploop-nolog"),
        ("batching: on / off (log on)", "amploop", "amploop-nobatch"),
    ]
    for text, a, b in lines:
        console.print(
            f"  {text}: {ratio(rps(a, top), rps(b, top))} (p99 {p99(a, top) or 'n/a'} vs {p99(b, top) or 'n/a'} ms)",
            highlight=False,
        )
    console.print(  # one row per request: requests/s are rows/s
        f"  amploop (batching, log) rows/s / ceiling B: {ratio(rps('amploop', top), in_process.rows_per_s)}",
        highlight=False,
    )

    console.print("\nprediction log (each amploop server after SIGTERM): 2xx answers counted by the server vs log rows")
    for server in servers:
        if server.home is None or server.why_not:
            continue
        if not server.logs_predictions:
            console.print(f"  {server.label}: log off, {server.logged} rows (expected 0)", highlight=False)
            continue
        same = "equal" if server.served_2xx == server.logged else "DIFFERENT"
        console.print(
            f"  {server.label}: {server.served_2xx:,} answered, {server.logged:,} logged ({same})", highlight=False
        )


# -- main -----------------------------------------------------------------------------------------


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=3.0, help="measured seconds per point")
    parser.add_argument("--warmup-s", type=float, default=1.0, help="warm-up seconds before each point")
    parser.add_argument("--concurrency", type=int, nargs="+", default=[1, 8, 32, 64], help="client counts")
    parser.add_argument(
        "--threads",
        type=int,
        default=1,
        help="torch intra-op threads of every server and ceiling B (0: torch's default)",
    )
    parser.add_argument("--rounds", type=int, default=2, help="sweeps over every point; each keeps its best")
    parser.add_argument(
        "--clients-per-pool", type=int, default=8, help="clients sharing one httpx pool (0: all in one, as drive is)"
    )
    parser.add_argument("--quick", action="store_true", help="a smoke run: 1 s per point, 1 and 64 clients, 1 round")
    parser.add_argument("--home", type=Path, help="a workspace that has adult@champion already (skips training)")
    parser.add_argument("--bento-python", default="/tmp/bentovenv/bin/python", help="the BentoML virtualenv's python")
    parser.add_argument("--_serve-noop", type=int, metavar="PORT", help=argparse.SUPPRESS)  # ceiling A's process
    parser.add_argument("--_serve-bare", type=int, metavar="PORT", help=argparse.SUPPRESS)  # ceiling 0's process
    args = parser.parse_args()
    if args._serve_noop:
        serve_noop(args._serve_noop)
        return
    if args._serve_bare:
        serve_bare(args._serve_bare)
        return
    if args.quick:
        args.seconds, args.warmup_s, args.concurrency, args.rounds = 1.0, 0.5, [1, 64], 1
    levels = sorted(set(args.concurrency))
    started = time.perf_counter()
    console.print(
        f"load before: {' '.join(f'{x:.2f}' for x in os.getloadavg())} (1, 5, 15 min) on {os.cpu_count()} cores",
        highlight=False,
    )

    scratch = Path(tempfile.mkdtemp(prefix="amploop-serve-load-"))
    servers: list[Server] = []
    try:
        home = args.home
        if home is None:
            home = scratch / "home"
            console.print(f"trained adult@champion (2 epochs) in {train(home):.0f} s", highlight=False)
        if args.threads:
            import torch

            torch.set_num_threads(args.threads)
        bodies = request_bodies(RECORDS)
        in_process = measure_in_process(home, bodies, seconds=min(args.seconds, 2.0))
        servers = contenders(args, home, scratch)
        logs = scratch / "logs"
        logs.mkdir()
        for server in servers:
            if server.home is not None:
                server.logged_before = count_logged(server.home)
            if not server.why_not:
                start(server, logs, bodies[0])
        live = [s for s in servers if not s.why_not]
        console.print(f"started: {', '.join(s.label for s in live)}", highlight=False)
        for _ in range(args.rounds):
            for level in levels:
                for server in live:
                    point = asyncio.run(
                        measure(server, bodies, level, args.seconds, args.warmup_s, args.clients_per_pool)
                    )
                    best = server.points.get(level)
                    if best is None or point.result["requests_per_s"] > best.result["requests_per_s"]:
                        server.points[level] = point  # the round least disturbed by the machine's other work
                    time.sleep(0.3)  # a logging server's writer flushes its last entries before the next point
        for server in live:
            if server.home is not None:
                server.served_2xx = int(scrape(server)["served_2xx"])
            stop(server)
            if server.home is not None:
                server.logged = count_logged(server.home) - server.logged_before
        report(servers, levels, in_process, args)
        console.print(
            f"\nload after: {' '.join(f'{x:.2f}' for x in os.getloadavg())}; torch threads per server: "
            f"{args.threads or 'torch default'}; whole run {time.perf_counter() - started:.0f} s",
            highlight=False,
        )
    finally:
        for server in servers:
            stop(server)
        shutil.rmtree(scratch, ignore_errors=True)


if __name__ == "__main__":
    main()
