"""Run the dashboard with uvicorn: in the foreground (``amploop ui``) or from a thread (the demo)."""

from __future__ import annotations

import contextlib
import signal
import threading
import time
from collections.abc import Callable, Iterator
from typing import TYPE_CHECKING

import uvicorn

from amploop.config import AmploopConfig
from amploop.errors import ConfigError

if TYPE_CHECKING:
    from types import FrameType

    from amploop.registry.store import Store

__all__ = ["background_ui", "run_ui"]


class _Server(uvicorn.Server):
    def handle_exit(self, sig: int, frame: FrameType | None) -> None:
        # uvicorn's own handler re-raises the signal at exit; Ctrl-C or SIGTERM here is a normal stop
        self.force_exit = self.force_exit or (sig == signal.SIGINT and self.should_exit)  # a second Ctrl-C
        self.should_exit = True


def _server(store: Store, config: AmploopConfig, host: str, port: int) -> uvicorn.Server:
    from amploop.ui.app import create_ui_app

    return _Server(
        uvicorn.Config(create_ui_app(store, config), host=host, port=port, log_level="warning", access_log=False)
    )


def run_ui(
    store: Store,
    config: AmploopConfig,
    *,
    host: str = "127.0.0.1",
    port: int = 8080,
    on_ready: Callable[[str], None] | None = None,
) -> None:
    """Serve the dashboard until Ctrl-C or SIGTERM; a port in use is a one-line ConfigError."""
    import socket

    with socket.socket() as probe:  # before uvicorn, which would log its own error line first
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            probe.bind((host, port))
        except OSError:
            raise ConfigError(f"cannot listen on {host}:{port} (in use?); choose another --port") from None
    server = _server(store, config, host, port)
    url = f"http://{host}:{port}"

    def watch() -> None:
        while not server.started and not server.should_exit:
            time.sleep(0.02)
        if server.started and on_ready is not None:
            on_ready(url)

    threading.Thread(target=watch, name="amploop-ui-ready", daemon=True).start()
    try:
        server.run()
    except (OSError, SystemExit):
        raise ConfigError(f"cannot listen on {host}:{port} (in use?); choose another --port") from None
    if not server.started:
        raise ConfigError(f"the dashboard could not start on {host}:{port}; is the port in use?")


@contextlib.contextmanager
def background_ui(store: Store, config: AmploopConfig, *, host: str = "127.0.0.1", port: int = 0) -> Iterator[str]:
    """The dashboard from a thread on ``port`` (0: a free one); its URL; stopped on exit."""
    import socket

    if port == 0:
        with socket.socket() as probe:
            probe.bind((host, 0))
            port = probe.getsockname()[1]
    server = _server(store, config, host, port)
    thread = threading.Thread(target=server.run, name="amploop-ui", daemon=True)
    thread.start()
    while not server.started and thread.is_alive():
        time.sleep(0.02)
    if not server.started:
        raise ConfigError(f"the dashboard could not start on {host}:{port}; is the port in use?")
    try:
        yield f"http://{host}:{port}"
    finally:
        server.should_exit = True
        thread.join(30)
