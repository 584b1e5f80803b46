"""The worker side of ``tests.conftest.run_together``: a barrier, and an event log of critical sections.

A worker calls :func:`wait_for_all` once it has imported (and opened what it needs), then wraps
the work that must collide with the other workers' in ``with inside(sync_dir, index):``. The
log lets a test prove that the workers really overlapped instead of trusting that they did.
"""

import contextlib
import fcntl
import os
from collections.abc import Iterator
from pathlib import Path


def wait_for_all(sync_dir: str) -> None:
    """Say ready, then block until the test opens the gate (it does once every worker is ready)."""
    print("ready", flush=True)
    with open(Path(sync_dir) / "gate", "rb") as gate:
        fcntl.flock(gate, fcntl.LOCK_SH)  # the test holds LOCK_EX until all have said ready
        fcntl.flock(gate, fcntl.LOCK_UN)


def log_event(sync_dir: str, index: str, event: str) -> None:
    """Append one line; O_APPEND writes to one file are ordered, so the log's order is the real one."""
    fd = os.open(Path(sync_dir) / "events.log", os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
    try:
        os.write(fd, f"{index} {event}\n".encode())
    finally:
        os.close(fd)


@contextlib.contextmanager
def inside(sync_dir: str, index: str) -> Iterator[None]:
    """Log ``enter`` before the critical section and ``leave`` after it (only when it finished)."""
    log_event(sync_dir, index, "enter")
    yield
    log_event(sync_dir, index, "leave")
