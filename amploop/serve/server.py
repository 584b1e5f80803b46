"""Run the prediction server: load, bind, serve, and drain on SIGTERM.

SIGTERM (or Ctrl-C) starts a drain instead of an abrupt stop: ``/ready`` answers 503 at once and
new requests get 503 with ``Retry-After`` and ``Connection: close``, so a load balancer moves
traffic to other replicas; requests already accepted finish (up to ``serve.drain_s``), the
batcher empties, the prediction log is flushed, and the process exits 0. A second signal stops
at once. The server stays up at least :data:`MIN_DRAIN_S` after the signal, so a balancer that
polls ``/ready`` sees the change.
"""

from __future__ import annotations

import signal
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import asdict, dataclass
from types import FrameType
from typing import Any

import uvicorn

from amploop.config import ServeConfig
from amploop.errors import ConfigError
from amploop.serve.app import create_app
from amploop.serve.state import ServerState

__all__ = ["MIN_DRAIN_S", "ServeSummary", "serve"]

MIN_DRAIN_S = 1.0
_LOCAL_HOSTS = ("127.0.0.1", "localhost", "::1")


@dataclass(frozen=True)
class ServeSummary:
    """What a server did, printed when it stops."""

    reference: str
    url: str
    served: list[str]  # versions served, in order
    swaps: int
    drained: bool
    log_written: int
    log_dropped: int

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


class _DrainingServer(uvicorn.Server):
    def __init__(self, config: uvicorn.Config, state: ServerState) -> None:
        super().__init__(config)
        self.state = state
        self.drained = False

    def handle_exit(self, sig: int, frame: FrameType | None) -> None:
        # uvicorn's own handler would stop accepting at once and re-raise the signal at exit.
        if self.state.draining:
            self.should_exit = True
            self.force_exit = sig == signal.SIGINT
            return
        self.state.draining = True
        threading.Thread(target=self._drain, name="amploop-drain", daemon=True).start()

    def _drain(self) -> None:
        start = time.monotonic()
        deadline = start + self.state.config.drain_s
        time.sleep(min(MIN_DRAIN_S, self.state.config.drain_s))
        while not self.state.idle and time.monotonic() < deadline:
            time.sleep(0.01)
        self.drained = self.state.idle
        self.should_exit = True


def serve(
    reference: str,
    config: ServeConfig,
    *,
    store: Any,
    on_ready: Callable[[str, ServerState], None] | None = None,
    loader: Callable[..., Any] | None = None,
    mounts: Mapping[str, Any] | None = None,
) -> ServeSummary:
    """Load ``reference`` (and any canary or shadow), then serve until SIGTERM or Ctrl-C.

    Every model is loaded and checked before the port is bound, so a wrong reference or a
    refused precision is an :class:`~amploop.errors.AmploopError` and nothing listens.
    """
    if config.host not in _LOCAL_HOSTS and not config.require_key_for_predict:
        import logging

        logging.getLogger("amploop.serve").warning(
            "serving on %s without a key for predict: anyone who can reach it can use the model "
            "(set serve.require_key_for_predict to require one)",
            config.host,
        )
    state = ServerState.open(config, reference, store=store, loader=loader)
    app = create_app(state)
    for path, mounted in (mounts or {}).items():  # more ASGI apps beside the API (the dashboard at /ui)
        app.mount(path, mounted)
    uv_config = uvicorn.Config(
        app,
        host=config.host,
        port=config.port,
        log_level="warning",
        access_log=False,  # one line per request costs throughput; /metrics counts them
        timeout_graceful_shutdown=max(int(config.drain_s), 1),
        lifespan="on",
    )
    server = _DrainingServer(uv_config, state)
    url = f"http://{config.host}:{config.port}"
    served: list[str] = []

    def watch_startup() -> None:
        while not server.started and not server.should_exit:
            time.sleep(0.02)
        if server.started and on_ready is not None:
            on_ready(url, state)

    threading.Thread(target=watch_startup, name="amploop-ready", daemon=True).start()
    if state.primary.slot.current is not None:
        served.append(state.primary.slot.current.reference)
    try:
        server.run()
    except (OSError, SystemExit):  # uvicorn exits 1 when the port is taken or the address is not ours
        raise ConfigError(
            f"cannot listen on {config.host}:{config.port} (in use, or not an address of this host); "
            "choose another --port or --host"
        ) from None
    if not server.started:
        raise ConfigError(f"the server could not start on {config.host}:{config.port}; is the port in use?")
    current = state.primary.slot.current
    if current is not None and current.reference not in served:
        served.append(current.reference)
    log = state.log
    return ServeSummary(
        reference=reference,
        url=url,
        served=served,
        swaps=sum(slot.swaps for slot in state.slots()),
        drained=server.drained,
        log_written=log.written if log else 0,
        log_dropped=log.dropped if log else 0,
    )
