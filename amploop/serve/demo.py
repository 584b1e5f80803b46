"""The demo, continued into serving: score a file, serve the champion, send it traffic.

:func:`run_demo` runs :func:`amploop.registry.demo.run_demo` (data → quality → train → evaluate
→ promote → card), then scores a file of adult rows with ``amploop predict``'s function, starts
the prediction server on a free local port, drives it with concurrent clients for a few seconds
and stops it with a drain. Each stage is handed to ``on_stage`` as it finishes.
"""

from __future__ import annotations

import contextlib
import dataclasses
import socket
import threading
import time
from collections.abc import Callable, Iterator
from typing import TYPE_CHECKING, Any

from amploop.config import AmploopConfig
from amploop.data import load_builtin
from amploop.registry.demo import DemoResult
from amploop.registry.demo import run_demo as run_registry_demo
from amploop.registry.store import Store

if TYPE_CHECKING:
    from amploop.serve.state import ServerState

__all__ = ["DEMO_TRAFFIC_S", "background_server", "run_demo"]

DEMO_SCORED_ROWS = 20_000  # rows of the file the demo scores
DEMO_TRAFFIC_S = 3.0  # how long the demo's clients send requests
DEMO_CLIENTS = 16


def run_demo(
    config: AmploopConfig | None = None,
    *,
    progress: bool = False,
    on_stage: Callable[[str, Any], None] | None = None,
) -> DemoResult:
    """Every stage that exists, serving included; ``on_stage(name, result)`` as each finishes."""
    started = time.perf_counter()
    config = config or AmploopConfig()
    tell = on_stage or (lambda stage, result: None)
    result = run_registry_demo(config, progress=progress, on_stage=on_stage)
    trained = next(s for s in result.stages if s["stage"] == "train")["model"]
    promoted = any(s["stage"] == "promote" and "to_version" in s for s in result.stages)
    reference = f"{trained['name']}@champion" if promoted else f"{trained['name']}:{trained['version']}"
    stages = list(result.stages)
    with Store.open() as store:
        scored = _score_file(store, reference, tell)
        stages.append({"stage": "predict", **scored.to_dict()})
        stages.append({"stage": "serve", **_serve_and_drive(store, config, reference, tell)})
    return dataclasses.replace(result, stages=stages, seconds=round(time.perf_counter() - started, 2))


def _score_file(store: Store, reference: str, tell: Callable[[str, Any], None]) -> Any:
    from amploop.serve.predict import predict_file

    folder = store.workspace.home / "demo"
    folder.mkdir(parents=True, exist_ok=True)
    adult = load_builtin("adult").table
    rows = adult.sample(n=DEMO_SCORED_ROWS, replace=len(adult) < DEMO_SCORED_ROWS, random_state=0)
    source = folder / "adult-to-score.csv"
    rows.drop(columns=["income"]).reset_index(drop=True).to_csv(source, index=False)
    scored = predict_file(reference, source, folder / "adult-scored.parquet", store=store)
    tell("predict", scored)
    return scored


@contextlib.contextmanager
def background_server(store: Store, config: AmploopConfig, reference: str) -> Iterator[tuple[str, ServerState]]:
    """Serve ``reference`` on a free local port from a thread; drained and stopped on exit."""
    import uvicorn

    from amploop.serve.app import create_app
    from amploop.serve.state import ServerState

    serve_config = config.serve.model_copy(update={"host": "127.0.0.1", "port": _free_port()})
    state = ServerState.open(serve_config, reference, store=store)
    server = uvicorn.Server(
        uvicorn.Config(
            create_app(state), host="127.0.0.1", port=serve_config.port, log_level="warning", access_log=False
        )
    )
    thread = threading.Thread(target=server.run, name="amploop-demo-server", daemon=True)
    thread.start()
    while not server.started and thread.is_alive():
        time.sleep(0.02)
    try:
        yield f"http://127.0.0.1:{serve_config.port}", state
    finally:
        state.draining = True
        server.should_exit = True
        thread.join(60)


def _serve_and_drive(
    store: Store, config: AmploopConfig, reference: str, tell: Callable[[str, Any], None]
) -> dict[str, Any]:
    from amploop.serve.loadgen import run_load
    from amploop.serve.scoring import table_to_records

    with background_server(store, config, reference) as (url, state):
        served = state.primary.slot.current
        assert served is not None
        tell("serve", {"url": url, "version": served.reference, "precision": served.precision})
        records = table_to_records(load_builtin("adult").table.drop(columns=["income"]).head(512))
        load = run_load(
            f"{url}/v1/predict",
            [{"records": [r]} for r in records],
            concurrency=DEMO_CLIENTS,
            seconds=DEMO_TRAFFIC_S,
            warmup_s=0.5,
        )
    tell("traffic", load)
    return {
        "url": url,
        "version": served.reference,
        "traffic": load.to_dict(),
        "logged": state.log.written if state.log else 0,
    }


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])
