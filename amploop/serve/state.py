"""What one server process holds: its model slots, batchers, prediction log, keys and metrics.

:meth:`ServerState.open` loads every model before the HTTP server starts, so a bad reference,
a refused precision or a damaged artifact is a one-line error and no port is ever opened.
The state holds nothing that another replica needs: versions come from the store's aliases,
logs and feedback go to the store, keys are checked against the store.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import random
import socket
import threading
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

from amploop.config import ServeConfig
from amploop.errors import ConfigError
from amploop.serve.auth import KeyVerifier
from amploop.serve.batcher import DynamicBatcher
from amploop.serve.models import ModelSlot, ServedModel, load_served_model
from amploop.serve.predlog import PredictionLogWriter

__all__ = ["Metrics", "ServerState"]

log = logging.getLogger("amploop.serve")


class Metrics:
    """The server's Prometheus metrics, in a registry of its own (several apps may share a process)."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        r = self.registry
        self.requests = Counter("amploop_http_requests", "HTTP requests answered", ["route", "status"], registry=r)
        self.latency = Histogram(
            "amploop_http_request_duration_seconds",
            "Time from request to response",
            ["route"],
            buckets=(0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10),
            registry=r,
        )
        self.batch_rows = Histogram(
            "amploop_batch_rows",
            "Rows per forward pass",
            buckets=(1, 2, 4, 8, 16, 32, 64, 128, 256, 512, 1024),
            registry=r,
        )
        self.batch_seconds = Histogram(
            "amploop_batch_duration_seconds",
            "Time of one forward pass",
            buckets=(0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 1),
            registry=r,
        )
        self.queue_rows = Gauge("amploop_queue_rows", "Rows waiting to be batched", registry=r)
        self.model_info = Gauge(
            "amploop_model_info",
            "The version each slot serves (1)",
            ["slot", "name", "version", "precision"],
            registry=r,
        )
        self.swaps = Counter("amploop_model_swaps", "Versions swapped in after an alias moved", registry=r)
        self.rejected = Counter("amploop_rejected_requests", "Requests refused", ["reason"], registry=r)
        self.log_dropped = Counter("amploop_prediction_log_dropped", "Log entries dropped: buffer full", registry=r)
        self.log_pending = Gauge("amploop_prediction_log_pending", "Log entries waiting to be written", registry=r)


@dataclass
class _Route:
    slot: ModelSlot
    batcher: DynamicBatcher | None = None


class ServerState:
    """Everything one server process serves with; built by :meth:`open`, started by the app's lifespan."""

    def __init__(self, config: ServeConfig, store: Any, reference: str, loader: Callable[..., ServedModel]) -> None:
        self.config = config
        self.store = store
        self.reference = reference
        self.replica = f"{socket.gethostname()}:{os.getpid()}"
        self.metrics = Metrics()
        self.keys = KeyVerifier(store)
        self.primary = _Route(ModelSlot(store, reference, loader))
        self.canary = _Route(ModelSlot(store, config.canary, loader)) if config.canary else None
        self.shadow = ModelSlot(store, config.shadow, loader) if config.shadow else None
        self.log: PredictionLogWriter | None = None
        self.draining = False
        self.in_flight = 0
        self.predicting = 0  # /v1/predict requests accepted and not yet answered (parsing included)
        self.started_at = datetime.now(UTC)
        self._watcher: asyncio.Task[None] | None = None
        self._shadow_executor: ThreadPoolExecutor | None = None
        self._shadow_slots = threading.BoundedSemaphore(64)  # shadow scorings waiting at most
        self._random = random.Random()

    @classmethod
    def open(
        cls,
        config: ServeConfig,
        reference: str,
        *,
        store: Any,
        loader: Callable[..., ServedModel] | None = None,
    ) -> ServerState:
        """Load every slot's model now (errors here stop the server before it binds a port)."""
        if config.canary and config.canary_percent <= 0:
            raise ConfigError(
                "serve.canary is set but serve.canary_percent is 0; give the share of requests it answers"
            )

        def load(name: str, version: int) -> ServedModel:
            return load_served_model(
                store,
                name,
                version,
                precision=config.precision,
                runtime=config.runtime,
                min_agreement=config.min_precision_agreement,
            )

        state = cls(config, store, reference, loader or load)
        for slot in state.slots():
            slot.refresh()
        return state

    def slots(self) -> list[ModelSlot]:
        found = [self.primary.slot] + ([self.canary.slot] if self.canary else [])
        return found + ([self.shadow] if self.shadow else [])

    def model_slot_name(self, slot: ModelSlot) -> str:
        if slot is self.primary.slot:
            return "primary"
        return "canary" if self.canary and slot is self.canary.slot else "shadow"

    # -- lifecycle (the app's lifespan) --------------------------------------------------------

    async def start(self) -> None:
        config, metrics = self.config, self.metrics

        def observe(rows: int, requests: int, seconds: float) -> None:
            metrics.batch_rows.observe(rows)
            metrics.batch_seconds.observe(seconds)

        for route in filter(None, (self.primary, self.canary)):
            route.batcher = DynamicBatcher(
                self._runner(route.slot),
                max_batch_rows=config.max_batch_size,
                max_wait_ms=config.max_wait_ms,
                max_queue_rows=config.max_queue_rows,
                timeout_s=config.request_timeout_s,
                on_batch=observe,
                arriving=lambda: self.predicting,
            )
            await route.batcher.start()
        metrics.queue_rows.set_function(lambda: sum(r.batcher.queued_rows for r in self._routes() if r.batcher))
        if config.prediction_log:
            self.log = PredictionLogWriter(
                self.store, max_buffer=config.log_buffer_rows, on_drop=lambda n: metrics.log_dropped.inc(n)
            ).start()
            metrics.log_pending.set_function(lambda: self.log.pending if self.log else 0)
        if self.shadow is not None:
            self._shadow_executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="amploop-shadow")
        self._show_models()
        self._watcher = asyncio.create_task(self._watch_aliases(), name="amploop-alias-watch")

    async def stop(self) -> None:
        """Finish queued batches, stop watching, flush the prediction log."""
        if self._watcher is not None:
            self._watcher.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._watcher
        for route in self._routes():
            if route.batcher is not None:
                await route.batcher.stop()
        if self._shadow_executor is not None:
            self._shadow_executor.shutdown(wait=True)
        if self.log is not None:
            await asyncio.get_running_loop().run_in_executor(None, self.log.close)

    def _routes(self) -> list[_Route]:
        return [r for r in (self.primary, self.canary) if r is not None]

    @property
    def idle(self) -> bool:
        return self.in_flight == 0 and not any(r.batcher and r.batcher.busy for r in self._routes())

    # -- serving -------------------------------------------------------------------------------

    def choose_route(self) -> _Route:
        """The canary for ``canary_percent`` of requests, else the primary."""
        if self.canary is not None and self._random.random() * 100 < self.config.canary_percent:
            return self.canary
        return self.primary

    def log_request(self, entry: dict[str, Any]) -> None:
        if self.log is not None:
            self.log.add(entry)

    def score_shadow(self, inputs: tuple[Any, Any], entry: dict[str, Any]) -> None:
        """Score the same rows with the shadow model off the request path; log them as role shadow."""
        if self.shadow is None or self._shadow_executor is None or self.shadow.current is None:
            return
        if not self._shadow_slots.acquire(blocking=False):  # the shadow falls behind: skip, never slow serving
            self.metrics.rejected.labels("shadow_skipped").inc()
            return
        model = self.shadow.current

        def run() -> None:
            try:
                started = time.perf_counter()
                scores = model.run([inputs])[0]
                shadow_entry = dict(entry, role="shadow", model_name=model.name, version=model.version)
                shadow_entry["outputs"] = _outputs(scores)
                shadow_entry["latency_ms"] = (time.perf_counter() - started) * 1000
                self.log_request(shadow_entry)
            except Exception as exc:  # noqa: BLE001 - a failing challenger must never affect serving
                log.warning("shadow model %s failed: %s", model.reference, exc)
            finally:
                self._shadow_slots.release()

        self._shadow_executor.submit(run)

    def _runner(self, slot: ModelSlot) -> Callable[[list[Any]], list[Any]]:
        def run_batch(payloads: list[Any]) -> list[Any]:
            model = slot.current  # read once: a swap during this batch does not touch it
            assert model is not None
            return model.run(payloads)

        return run_batch

    # -- hot swap ------------------------------------------------------------------------------

    async def _watch_aliases(self) -> None:
        loop = asyncio.get_running_loop()
        while True:
            await asyncio.sleep(self.config.alias_poll_s)
            await self.refresh_models(loop)

    async def refresh_models(self, loop: asyncio.AbstractEventLoop | None = None) -> list[str]:
        """Ask the store where each slot's reference points now; load and swap in what moved."""
        loop = loop or asyncio.get_running_loop()
        swapped = []
        for slot in self.slots():
            before = slot.current
            if await loop.run_in_executor(None, slot.refresh):
                swapped.append(slot.reference)
                self.metrics.swaps.inc()
                self._show_models()
                after = slot.current
                await loop.run_in_executor(None, self._audit_swap, slot, before, after)
        return swapped

    def _audit_swap(self, slot: ModelSlot, before: ServedModel | None, after: ServedModel | None) -> None:
        self.store.append_audit(
            "serve.swap",
            after.reference if after else slot.reference,
            reason=f"{slot.reference} moved",
            details={
                "replica": self.replica,
                "slot": self.model_slot_name(slot),
                "from": before.reference if before else None,
                "to": after.reference if after else None,
            },
            actor=f"server:{self.replica}",
        )

    def _show_models(self) -> None:
        self.metrics.model_info.clear()
        for slot in self.slots():
            if slot.current is not None:
                m = slot.current
                self.metrics.model_info.labels(self.model_slot_name(slot), m.name, str(m.version), m.precision).set(1)

    def describe(self) -> dict[str, Any]:
        out: dict[str, Any] = {"replica": self.replica, "started_at": self.started_at.isoformat(), "models": []}
        for slot in self.slots():
            entry = {"slot": self.model_slot_name(slot), "reference": slot.reference, "swaps": slot.swaps}
            entry["serving"] = slot.current.describe() if slot.current is not None else None
            entry["last_error"] = slot.last_error
            if slot is getattr(self.canary, "slot", None):
                entry["percent"] = self.config.canary_percent
            out["models"].append(entry)
        return out


def _outputs(scores: Any) -> dict[str, Any]:
    body = scores.to_dict()
    body.pop("model_version", None)
    return body
