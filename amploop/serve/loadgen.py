"""A closed-loop HTTP load generator: N async clients, each sending its next request when answered.

Used by ``amploop demo`` to show the throughput a server reaches and by ``bench/serve_load.py``
to compare servers on equal terms. Latency is measured per request from send to answer.

Examples
--------
>>> LoadResult(requests=10, rows=40, seconds=2.0, statuses={200: 10}, errors=0,
...            latencies_ms=[1.0] * 10, concurrency=4).to_dict()["requests_per_s"]
5.0
"""

from __future__ import annotations

import asyncio
import time
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any

import httpx
import numpy as np

__all__ = ["CLIENTS_PER_POOL", "LoadResult", "drive", "run_load"]

CLIENTS_PER_POOL = 8


@dataclass(frozen=True)
class LoadResult:
    requests: int  # answered with 2xx
    rows: int  # rows in those requests
    seconds: float
    statuses: dict[int, int]
    errors: int  # transport failures (refused, reset, timed out)
    latencies_ms: list[float] = field(repr=False)
    concurrency: int = 1

    def percentile_ms(self, q: float) -> float:
        return float(np.percentile(self.latencies_ms, q)) if self.latencies_ms else float("nan")

    def to_dict(self) -> dict[str, Any]:
        return {
            "concurrency": self.concurrency,
            "requests": self.requests,
            "rows": self.rows,
            "seconds": round(self.seconds, 3),
            "requests_per_s": round(self.requests / self.seconds, 1) if self.seconds else 0.0,
            "rows_per_s": round(self.rows / self.seconds, 1) if self.seconds else 0.0,
            "p50_ms": round(self.percentile_ms(50), 2),
            "p95_ms": round(self.percentile_ms(95), 2),
            "p99_ms": round(self.percentile_ms(99), 2),
            "statuses": {str(k): v for k, v in sorted(self.statuses.items())},
            "errors": self.errors,
        }


async def drive(
    url: str,
    bodies: list[Any],
    *,
    concurrency: int,
    seconds: float,
    rows_per_body: int = 1,
    headers: dict[str, str] | None = None,
    warmup_s: float = 0.0,
) -> LoadResult:
    """POST ``bodies`` (JSON, in turn) to ``url`` from ``concurrency`` clients for ``seconds``.

    Requests that start during the first ``warmup_s`` are sent but not counted.
    """
    statuses: Counter[int] = Counter()
    latencies: list[float] = []
    errors = 0
    answered = 0
    start = time.perf_counter()
    counted_from = start + warmup_s
    deadline = counted_from + seconds

    async def client(http: httpx.AsyncClient, offset: int) -> None:
        nonlocal errors, answered
        turn = offset
        while (sent := time.perf_counter()) < deadline:
            body = bodies[turn % len(bodies)]
            turn += concurrency
            try:
                response = await http.post(url, json=body, headers=headers)
            except httpx.HTTPError:
                if sent >= counted_from:
                    errors += 1
                await asyncio.sleep(0.01)
                continue
            if sent < counted_from:
                continue
            statuses[response.status_code] += 1
            if response.is_success:
                answered += 1
                latencies.append((time.perf_counter() - sent) * 1000)

    # httpcore's pool does work over all its connections on every request, so one pool for 64
    # clients makes the generator the bottleneck (encode/httpx#3215): a pool per 8 clients.
    pools = [
        range(start, min(start + CLIENTS_PER_POOL, concurrency)) for start in range(0, concurrency, CLIENTS_PER_POOL)
    ]

    async def pool(members: range) -> None:
        limits = httpx.Limits(max_connections=len(members), max_keepalive_connections=len(members))
        async with httpx.AsyncClient(timeout=60, limits=limits) as http:
            await asyncio.gather(*(client(http, i) for i in members))

    await asyncio.gather(*(pool(members) for members in pools))
    elapsed = time.perf_counter() - counted_from
    return LoadResult(
        requests=answered,
        rows=answered * rows_per_body,
        seconds=elapsed,
        statuses=dict(statuses),
        errors=errors,
        latencies_ms=latencies,
        concurrency=concurrency,
    )


def run_load(url: str, bodies: list[Any], **options: Any) -> LoadResult:
    """:func:`drive` from synchronous code, also where an event loop already runs (a notebook)."""
    try:
        asyncio.get_running_loop()
    except RuntimeError:
        return asyncio.run(drive(url, bodies, **options))
    with ThreadPoolExecutor(max_workers=1) as pool:  # asyncio.run refuses to nest: a thread of its own
        return pool.submit(asyncio.run, drive(url, bodies, **options)).result()
