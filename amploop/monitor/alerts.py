"""Alert delivery: a POST of each alert to the configured webhook, retried, never blocking the monitor.

Alerts are rows in the store first (written with their report); the webhook is a courtesy on
top. Each batch is sent from a background thread, tried up to ``ATTEMPTS`` times with backoff,
and the outcome (``delivered``, or the last error) is written back to each alert's row. A
monitor that is about to exit waits for pending deliveries for at most their timeout
(:func:`wait_for_deliveries`), so a slow receiver can delay it by seconds, never stop it.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Sequence
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from amploop.registry.records import AlertRecord
    from amploop.registry.store import Store

__all__ = ["deliver_alerts", "wait_for_deliveries"]

ATTEMPTS = 3
BACKOFF_S = 0.5  # then 1 s
_pending: list[threading.Thread] = []


def _post(store: Store, alerts: Sequence[AlertRecord], url: str, model: str, timeout_s: float) -> None:
    import httpx

    body = {"model": model, "alerts": [a.to_dict() for a in alerts]}
    outcome = "not delivered"
    for attempt in range(ATTEMPTS):
        try:
            response = httpx.post(url, json=body, timeout=timeout_s)
            if response.status_code < 300:
                outcome = "delivered"
                break
            outcome = f"not delivered: HTTP {response.status_code}"
            if response.status_code < 500 and response.status_code != 429:
                break  # the receiver refused the body; sending it again changes nothing
        except httpx.HTTPError as exc:
            outcome = f"not delivered: {type(exc).__name__}"
        time.sleep(BACKOFF_S * 2**attempt)
    for alert in alerts:
        store.set_alert_delivery(alert.id, f"{outcome} ({url})" if outcome != "delivered" else "delivered")


def deliver_alerts(
    store: Store, alerts: Sequence[AlertRecord], *, url: str, model: str, timeout_s: float = 5.0
) -> threading.Thread:
    """POST ``alerts`` to ``url`` from a background thread; the thread is returned for callers that wait."""
    thread = threading.Thread(
        target=_post, args=(store, list(alerts), url, model, timeout_s), name="amploop-webhook", daemon=True
    )
    thread.start()
    _pending.append(thread)
    return thread


def wait_for_deliveries(timeout_s: float = 10.0) -> None:
    """Wait up to ``timeout_s`` in all for deliveries still in flight (before a process exits)."""
    deadline = time.monotonic() + timeout_s
    while _pending:
        _pending.pop().join(max(0.0, deadline - time.monotonic()))
