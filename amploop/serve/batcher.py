"""Dynamic batching on asyncio: requests that arrive close together share one forward pass.

A request carries some rows. The batcher takes requests in arrival order until the batch holds
``max_batch_rows`` rows, or until the oldest request has waited ``max_wait_ms`` — whichever
comes first — and runs the batch in a worker thread, so the event loop keeps accepting requests
while the model computes. While one batch runs, the next one gathers: under load, batches fill
without waiting; when the server holds no other request, a lone one runs at once.

Rows, not requests, are counted (a request of 50 rows fills most of a 64-row batch); a request
larger than a batch runs alone. Waiting rows are bounded by ``max_queue_rows``: beyond it,
:meth:`DynamicBatcher.submit` raises :class:`~amploop.errors.Unavailable` at once (HTTP 503 with
Retry-After) instead of letting latency grow without bound. A request that is not answered
within its timeout is abandoned (its rows leave the queue if they had not started). An
exception while running a batch fails only that batch's requests, as :class:`BatchFailed`;
the batcher keeps serving the next ones.

Examples
--------
>>> import asyncio
>>> async def main():
...     batcher = DynamicBatcher(lambda items: [sum(x) for x in items], max_batch_rows=8, max_wait_ms=20)
...     await batcher.start()
...     answers = await asyncio.gather(*(batcher.submit([i, i], rows=2) for i in range(4)))
...     await batcher.stop()
...     return answers, batcher.batches_run
>>> asyncio.run(main())
([0, 2, 4, 6], 1)
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections import deque
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any

from amploop.errors import AmploopError, Unavailable

__all__ = ["BatchFailed", "DynamicBatcher"]


class BatchFailed(AmploopError):
    """The batch this request was part of raised while running; ``details["error"]`` says what."""


@dataclass(eq=False)
class _Pending:
    payload: Any
    rows: int
    future: asyncio.Future[Any]
    enqueued: float = field(default_factory=time.monotonic)
    abandoned: bool = False


class DynamicBatcher:
    """Merge concurrent :meth:`submit` calls into calls of ``run_batch(payloads) -> results``.

    ``run_batch`` gets the payloads of one batch, in arrival order, and returns one result per
    payload; it runs in a single worker thread. ``on_batch(rows, requests, seconds)`` is called
    after each batch (for metrics). ``arriving()`` is how many requests the server has accepted
    for this batcher and not answered yet: when all of them are already queued, nothing can join
    the batch and it runs at once, so a lone request does not wait ``max_wait_ms`` for company.
    """

    def __init__(
        self,
        run_batch: Callable[[list[Any]], Sequence[Any]],
        *,
        max_batch_rows: int = 64,
        max_wait_ms: float = 5.0,
        max_queue_rows: int = 1024,
        timeout_s: float = 10.0,
        on_batch: Callable[[int, int, float], None] | None = None,
        arriving: Callable[[], int] | None = None,
    ) -> None:
        self.run_batch = run_batch
        self.arriving = arriving
        self.max_batch_rows = max_batch_rows
        self.max_wait_ms = max_wait_ms
        self.max_queue_rows = max_queue_rows
        self.timeout_s = timeout_s
        self.on_batch = on_batch
        self.batches_run = 0
        self.queued_rows = 0  # rows waiting, not yet in a running batch
        self.running_rows = 0
        self.running_requests = 0
        self._queue: deque[_Pending] = deque()
        self._wakeup = asyncio.Event()
        self._executor: ThreadPoolExecutor | None = None
        self._worker: asyncio.Task[None] | None = None
        self._closing = False
        self._seconds_per_row = 0.0  # smoothed, for Retry-After

    async def start(self) -> None:
        # One thread: the model uses the cores through torch's own intra-op threads.
        self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="amploop-batch")
        self._worker = asyncio.create_task(self._run(), name="amploop-batcher")

    async def stop(self) -> None:
        """Finish what is queued, then stop the worker."""
        self._closing = True
        self._wakeup.set()
        if self._worker is not None:
            await self._worker
        if self._executor is not None:
            self._executor.shutdown(wait=True)

    @property
    def busy(self) -> bool:
        return bool(self._queue) or self.running_rows > 0

    async def submit(self, payload: Any, *, rows: int, timeout_s: float | None = None) -> Any:
        """Queue ``payload`` (``rows`` rows) and wait for its result."""
        if self._closing:
            raise Unavailable(
                "the server is shutting down; retry on another replica", retry_after_s=1, reason="draining"
            )
        if self.queued_rows > 0 and self.queued_rows + rows > self.max_queue_rows:
            retry = max(1, round(self.queued_rows * self._seconds_per_row + 0.5))
            raise Unavailable(
                f"the server is at capacity ({self.queued_rows} rows waiting); retry in {retry} s",
                retry_after_s=retry,
                reason="overload",
            )
        item = _Pending(payload, rows, asyncio.get_running_loop().create_future())
        self._queue.append(item)
        self.queued_rows += rows
        self._wakeup.set()
        timeout = self.timeout_s if timeout_s is None else timeout_s
        try:
            return await asyncio.wait_for(asyncio.shield(item.future), timeout)
        except TimeoutError:
            item.abandoned = True
            raise Unavailable(
                f"the request was not answered within its timeout of {timeout:g} s; the server is busy, retry later",
                retry_after_s=1,
                reason="timeout",
            ) from None
        except asyncio.CancelledError:  # the client went away
            item.abandoned = True
            raise

    async def _run(self) -> None:
        loop = asyncio.get_running_loop()
        while True:
            self._drop_abandoned()
            if not self._queue:
                if self._closing:
                    return
                self._wakeup.clear()
                await self._wakeup.wait()
                continue
            deadline = self._queue[0].enqueued + self.max_wait_ms / 1000
            while self.queued_rows < self.max_batch_rows and not self._closing and self._more_coming():
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    break
                self._wakeup.clear()
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._wakeup.wait(), remaining)
            batch = self._take()
            if not batch:
                continue
            rows = sum(item.rows for item in batch)
            self.running_rows, self.running_requests = rows, len(batch)
            started = time.perf_counter()
            try:
                results = await loop.run_in_executor(self._executor, self.run_batch, [i.payload for i in batch])
                if len(results) != len(batch):
                    raise RuntimeError(f"run_batch returned {len(results)} results for {len(batch)} requests")
            except Exception as exc:  # noqa: BLE001 - any failure fails this batch only, as BatchFailed
                failure = BatchFailed(
                    f"the batch this request was part of failed: {type(exc).__name__}: {exc}".strip()[:500],
                    error=type(exc).__name__,
                )
                for item in batch:
                    if not item.future.done():
                        item.future.set_exception(failure)
                        item.future.exception()  # retrieved here, so an abandoned one logs no warning
            else:
                for item, result in zip(batch, results, strict=True):
                    if not item.future.done():
                        item.future.set_result(result)
            finally:
                self.running_rows = self.running_requests = 0
            seconds = time.perf_counter() - started
            self.batches_run += 1
            self._seconds_per_row = 0.8 * self._seconds_per_row + 0.2 * seconds / max(rows, 1)
            if self.on_batch is not None:
                self.on_batch(rows, len(batch), seconds)

    def _more_coming(self) -> bool:
        """Whether waiting can fill the batch: requests the server holds that have not reached the queue.

        Without ``arriving`` (a count from the server) the batcher always waits up to max_wait_ms.
        """
        return self.arriving is None or self.arriving() > len(self._queue) + self.running_requests

    def _drop_abandoned(self) -> None:
        while self._queue and self._queue[0].abandoned:
            self.queued_rows -= self._queue.popleft().rows

    def _take(self) -> list[_Pending]:
        """Requests from the front while their rows fit in a batch; at least one."""
        batch: list[_Pending] = []
        rows = 0
        while self._queue:
            item = self._queue[0]
            if item.abandoned:
                self.queued_rows -= self._queue.popleft().rows
                continue
            if batch and rows + item.rows > self.max_batch_rows:
                break
            self._queue.popleft()
            self.queued_rows -= item.rows
            batch.append(item)
            rows += item.rows
        return batch
