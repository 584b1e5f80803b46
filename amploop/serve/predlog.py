"""The prediction log, written off the request path: a bounded buffer and one writer thread.

A request handler calls :meth:`PredictionLogWriter.add` (a lock and an append: microseconds);
the writer thread wakes every ``flush_every_s`` or when ``flush_rows`` entries wait, and writes
them in one transaction (:meth:`~amploop.registry.store.Store.log_predictions`). When the
store is slow or down, entries stay buffered and the write is retried with back-off; when the
buffer is full, new entries are dropped and *counted* (``dropped``, a metric and a warning),
never silently lost. :meth:`close` flushes everything left, so a drained server's log holds
one row per answered request.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING, Any

from amploop.errors import StoreError

if TYPE_CHECKING:
    from amploop.registry.store import Store

__all__ = ["PredictionLogWriter"]

log = logging.getLogger("amploop.serve")


class PredictionLogWriter:
    """Buffer logged requests and write them to the store in batches from one background thread."""

    def __init__(
        self,
        store: Store,
        *,
        max_buffer: int = 100_000,
        flush_every_s: float = 0.5,
        flush_rows: int = 500,
        on_drop: Callable[[int], None] | None = None,
    ) -> None:
        self.store = store
        self.max_buffer = max_buffer
        self.flush_every_s = flush_every_s
        self.flush_rows = flush_rows
        self.on_drop = on_drop
        self.written = 0
        self.dropped = 0
        self.failed_writes = 0
        self._buffer: list[Mapping[str, Any]] = []
        self._lock = threading.Lock()
        self._wake = threading.Condition(self._lock)
        self._closing = False
        self._thread = threading.Thread(target=self._loop, name="amploop-prediction-log", daemon=True)

    def start(self) -> PredictionLogWriter:
        self._thread.start()
        return self

    @property
    def pending(self) -> int:
        return len(self._buffer)

    def add(self, entry: Mapping[str, Any]) -> bool:
        """Queue one entry; False (and counted in ``dropped``) when the buffer is full."""
        with self._lock:
            if len(self._buffer) >= self.max_buffer:
                self.dropped += 1
                dropped = self.dropped
            else:
                self._buffer.append(entry)
                if len(self._buffer) >= self.flush_rows:
                    self._wake.notify()
                return True
        if self.on_drop is not None:
            self.on_drop(1)
        if dropped == 1 or dropped % 1000 == 0:
            log.warning("prediction log buffer full (%d entries): %d entries dropped so far", self.max_buffer, dropped)
        return False

    def close(self, timeout_s: float = 30.0) -> None:
        """Write everything buffered (retrying for up to ``timeout_s``), then stop the thread."""
        with self._lock:
            self._closing = True
            self._wake.notify()
        if self._thread.is_alive():
            self._thread.join(timeout_s)
        if self._buffer:
            log.error("prediction log: %d entries could not be written before shutdown", len(self._buffer))

    def _loop(self) -> None:
        backoff_s = self.flush_every_s
        while True:
            with self._lock:
                if not self._closing and len(self._buffer) < self.flush_rows:
                    self._wake.wait(self.flush_every_s)
                batch = self._buffer[: max(self.flush_rows, 1) * 4]
                closing = self._closing
            if batch:
                try:
                    self.store.log_predictions(batch)
                except StoreError as exc:
                    self.failed_writes += 1
                    log.warning("prediction log: write of %d entries failed (%s); retrying", len(batch), exc.message)
                    if closing and backoff_s > 8:
                        return  # the store stays down at shutdown: close() reports what is left
                    time.sleep(backoff_s)
                    backoff_s = min(backoff_s * 2, 10.0)
                    continue
                backoff_s = self.flush_every_s
                with self._lock:
                    del self._buffer[: len(batch)]
                    self.written += len(batch)
                continue
            if closing:
                return
