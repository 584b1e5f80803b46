"""The server under load: hot swap, two replicas on PostgreSQL, the SIGTERM drain, overload, a failing batch."""

from __future__ import annotations

import asyncio
import signal
import threading
import time
from collections import Counter
from dataclasses import dataclass, field
from datetime import UTC, datetime

import httpx
import pytest
import uvicorn

import amploop
from amploop import Store
from amploop.config import ServeConfig
from amploop.serve.app import create_app
from amploop.serve.models import ServedModel, load_served_model
from amploop.serve.server import MIN_DRAIN_S
from amploop.serve.state import ServerState
from tests.serve.conftest import MODEL, ServerProcess, free_port, plants_records


@dataclass
class Traffic:
    """What a load run saw: each response's status and version, and transport failures."""

    statuses: Counter = field(default_factory=Counter)
    versions: list[str] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)
    error_times: list[float] = field(default_factory=list)  # time.monotonic() when each request was sent
    latencies_s: list[float] = field(default_factory=list)
    retry_after: set = field(default_factory=set)


async def drive(
    url: str, *, clients: int, seconds: float, rows: int = 4, stop: threading.Event | None = None
) -> Traffic:
    """``clients`` concurrent clients sending requests back to back for ``seconds`` (or until ``stop``)."""
    seen = Traffic()
    records = {"records": plants_records(rows)}
    deadline = time.monotonic() + seconds

    async def client(http: httpx.AsyncClient) -> None:
        while time.monotonic() < deadline and not (stop and stop.is_set()):
            started = time.monotonic()
            try:
                response = await http.post(f"{url}/v1/predict", json=records)
            except httpx.TransportError as exc:
                seen.errors.append(type(exc).__name__)
                seen.error_times.append(started)
                await asyncio.sleep(0.01)
                continue
            seen.latencies_s.append(time.monotonic() - started)
            seen.statuses[response.status_code] += 1
            if response.status_code == 200:
                seen.versions.append(response.json()["model_version"])
            elif response.status_code == 503:
                seen.retry_after.add(response.headers.get("retry-after"))

    limits = httpx.Limits(max_connections=clients, max_keepalive_connections=clients)
    async with httpx.AsyncClient(timeout=30, limits=limits) as http:
        await asyncio.gather(*(client(http) for _ in range(clients)))
    return seen


def test_hot_swap_under_load_fails_no_request(plants_ws):
    with ServerProcess(plants_ws, f"{MODEL}@champion") as server, Store.open(plants_ws) as store:
        stop = threading.Event()
        result: dict[str, Traffic] = {}
        runner = threading.Thread(
            target=lambda: result.setdefault("t", asyncio.run(drive(server.url, clients=8, seconds=30, stop=stop)))
        )
        runner.start()
        time.sleep(1.5)
        amploop.promote(store, MODEL, 2, alias="champion", reason="hot swap test", force=True)
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline:
            if httpx.get(f"{server.url}/ready").json()["model_version"] == "plants:2":
                break
            time.sleep(0.1)
        time.sleep(1.5)
        stop.set()
        runner.join()
        amploop.rollback(store, MODEL, alias="champion", reason="back for the other tests")
        traffic = result["t"]
        assert traffic.errors == [] and set(traffic.statuses) == {200}
        first_new = traffic.versions.index("plants:2")
        assert set(traffic.versions[:first_new]) == {"plants:1"}
        assert traffic.versions[first_new - 1 :].count("plants:1") <= 8  # only requests already in flight
        swaps = [e for e in store.audit_log() if e.action == "serve.swap"]
        assert swaps and swaps[-1].details["to"] == "plants:2"


@pytest.mark.postgres
def test_two_replicas_on_postgresql_follow_one_promotion(plants_pg_ws):
    with (
        ServerProcess(plants_pg_ws, f"{MODEL}@champion") as first,
        ServerProcess(plants_pg_ws, f"{MODEL}@champion") as second,
        Store.open(plants_pg_ws) as store,
    ):
        for replica in (first, second):
            assert httpx.get(f"{replica.url}/ready").json()["model_version"] == "plants:1"
        amploop.promote(store, MODEL, 2, alias="champion", reason="two replicas", force=True)
        deadline = time.monotonic() + 20
        versions = {}
        while time.monotonic() < deadline:
            versions = {
                r.url: httpx.post(f"{r.url}/v1/predict", json={"records": plants_records(2)}).json()["model_version"]
                for r in (first, second)
            }
            if set(versions.values()) == {"plants:2"}:
                break
            time.sleep(0.1)
        assert set(versions.values()) == {"plants:2"}
        replicas = {e.details["replica"] for e in store.audit_log() if e.action == "serve.swap"}
        assert len(replicas) == 2


def test_sigterm_drains_answers_what_it_accepted_and_logs_each_answer(plants_ws):
    with Store.open(plants_ws) as store:
        before = store.count_predictions(MODEL, version=2)
    server = ServerProcess(plants_ws, f"{MODEL}:2").wait_ready()
    result: dict[str, Traffic] = {}
    runner = threading.Thread(
        target=lambda: result.setdefault("t", asyncio.run(drive(server.url, clients=16, seconds=6)))
    )
    runner.start()
    time.sleep(2)
    sigterm_at = time.monotonic()
    server.process.send_signal(signal.SIGTERM)
    ready_after = None
    for _ in range(20):  # readiness flips at once
        try:
            ready_after = httpx.get(f"{server.url}/ready", timeout=1).status_code
            break
        except httpx.TransportError:
            time.sleep(0.02)
    runner.join()
    server.process.wait(timeout=60)  # no second signal: that one would stop it at once
    code = server.stop()
    traffic = result["t"]
    assert code == 0, server.output
    assert ready_after == 503
    assert traffic.statuses[200] > 50
    assert set(traffic.statuses) <= {200, 503}  # accepted requests were answered, new ones refused
    # Transport errors only once the drain is over and the process closes its sockets (a request
    # sent at that instant may find its connection closed unread); during the drain, every
    # request is answered: 200 if it was accepted before, 503 after.
    assert all(at > sigterm_at + MIN_DRAIN_S * 0.9 for at in traffic.error_times), traffic.errors
    with Store.open(plants_ws) as store:
        assert store.count_predictions(MODEL, version=2) - before == traffic.statuses[200]


def test_overload_is_refused_with_503_and_accepted_requests_stay_within_their_timeout(plants_ws):
    env = {"AMPLOOP_SERVE__MAX_QUEUE_ROWS": "64", "AMPLOOP_SERVE__REQUEST_TIMEOUT_S": "2"}
    with ServerProcess(plants_ws, f"{MODEL}:1", "--max-batch-size", "16", env=env) as server:
        rss_before = _rss_kib(server.process.pid)
        started = datetime.now(UTC)
        traffic = asyncio.run(drive(server.url, clients=64, seconds=6, rows=16))
        rss_after = _rss_kib(server.process.pid)
        assert traffic.statuses[200] > 0 and traffic.statuses[503] > 0
        assert set(traffic.statuses) <= {200, 503} and traffic.errors == []
        assert traffic.retry_after and None not in traffic.retry_after
        assert rss_after < rss_before * 1.25  # the queue is bounded: memory does not grow with the excess
        assert httpx.post(f"{server.url}/v1/predict", json={"records": plants_records(2)}).status_code == 200
    with Store.open(plants_ws) as store:
        answered = store.prediction_log(MODEL, version=1, since=started)
    # every answer came within the request's timeout, counted from its arrival at the server
    assert len(answered) == traffic.statuses[200] + 1
    assert max(r.latency_ms for r in answered) < 2000


def _rss_kib(pid: int) -> int:
    with open(f"/proc/{pid}/status") as status:
        return next(int(line.split()[1]) for line in status if line.startswith("VmRSS:"))


class _Poisoned(ServedModel):
    """The real model, which raises on a batch holding a row whose length is -999 (a planted fault)."""

    def run(self, inputs):
        if any(-999 in rows.columns["length"] for rows in inputs):
            raise RuntimeError("planted fault")
        return super().run(inputs)


def test_an_exception_fails_only_its_own_batch_and_the_server_keeps_serving(plants_ws):
    with Store.open(plants_ws) as store:

        def load(name: str, version: int) -> ServedModel:
            real = load_served_model(store, name, version)
            return _Poisoned(**{f: getattr(real, f) for f in real.__dataclass_fields__})

        config = ServeConfig(port=free_port(), max_wait_ms=50, prediction_log=False)
        state = ServerState.open(config, f"{MODEL}:1", store=store, loader=load)
        server = uvicorn.Server(uvicorn.Config(create_app(state), port=config.port, log_level="warning"))
        thread = threading.Thread(target=server.run, daemon=True)
        thread.start()
        while not server.started:
            time.sleep(0.02)
        url = f"http://127.0.0.1:{config.port}/v1/predict"
        try:
            poison = plants_records(1)
            poison[0]["length"] = -999

            async def burst() -> list[httpx.Response]:
                async with httpx.AsyncClient(timeout=10) as http:
                    bad = http.post(url, json={"records": poison})
                    good = [http.post(url, json={"records": plants_records(2)}) for _ in range(3)]
                    return await asyncio.gather(bad, *good)

            answers = asyncio.run(burst())
            failed = [a for a in answers if a.status_code == 500]
            assert failed and all(a.json()["error"] == "BatchFailed" for a in failed)
            assert all(a.json()["request_id"] == a.headers["x-request-id"] for a in failed)
            assert {a.status_code for a in answers} <= {200, 500}
            after = [httpx.post(url, json={"records": plants_records(3)}, timeout=10) for _ in range(5)]
            assert [a.status_code for a in after] == [200] * 5
        finally:
            server.should_exit = True
            thread.join(30)
