"""``amploop monitor NAME``: the prediction log in windows, a DriftReport each, and alerts.

The log of the served version is read in arrival order from where the last stored window
ended; each full window (``window`` rows, closed at a request boundary, or ``every_s`` seconds
of arrivals) is compared with the version's reference (:mod:`amploop.monitor.reference`):

- feature drift: each input column against the training rows (:mod:`amploop.monitor.univariate`);
- prediction drift: the calibrated probabilities against those on the validation rows, by BBSD
  (a KS test per class probability, Bonferroni; :func:`amploop.monitor.multivariate.bbsd_test`);
- estimated performance: accuracy and F1 from the calibrated confidences (CBPE), with no labels;
- realized performance: accuracy and F1 on the rows that have feedback labels;
- stream changes: ADWIN on the per-row error (labelled rows) and the confidence, in log order.

A report and the alerts it raises are stored together with the version; a window already
reported is never reported again, so running the monitor again continues where it stopped.
Alerts: ``feature_drift`` (half the columns or more drifted) and ``prediction_drift`` are
warnings; an estimated or realized accuracy below the reference's by more than
``performance_drop``, with the whole interval below the reference, and an error-rate change
found by ADWIN, are critical.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import datetime
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd

from amploop.config import MonitorConfig
from amploop.errors import Conflict, NotFound, UsageError
from amploop.monitor.estimate import estimate_performance, realized_performance
from amploop.monitor.multivariate import bbsd_test
from amploop.monitor.reference import Reference, _label_indices, reference_for
from amploop.monitor.stream import ChangeMonitor
from amploop.monitor.univariate import compare_profiles

if TYPE_CHECKING:
    from amploop.registry.records import PredictionRecord
    from amploop.registry.store import Store

__all__ = ["DriftReport", "MonitorResult", "monitor_model"]

PAGE_REQUESTS = 2000  # logged requests read per query


@dataclass(frozen=True)
class DriftReport:
    """One window of served traffic compared with the version's reference."""

    model: str  # NAME:VERSION
    window: dict[str, Any]  # first/last log id and time, first/last row (counted from the version's first), rows
    features: dict[str, Any]  # UnivariateReport.to_dict()
    predictions: dict[str, Any]  # BBSD result, and the binned output comparison
    estimated: dict[str, Any] | None
    realized: dict[str, Any] | None
    reference: dict[str, Any]  # accuracy and F1 on the validation rows, calibration record
    stream_alarms: list[dict[str, Any]]
    alerts: list[dict[str, Any]]
    id: int | None = None  # the stored report's id

    @property
    def drifted(self) -> bool:
        return bool(self.alerts)

    def to_dict(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "model": self.model,
            "window": self.window,
            "drifted": self.drifted,
            "features": self.features,
            "predictions": self.predictions,
            "estimated": self.estimated,
            "realized": self.realized,
            "reference": self.reference,
            "stream_alarms": self.stream_alarms,
            "alerts": self.alerts,
        }


@dataclass(frozen=True)
class MonitorResult:
    model: str
    windows: list[DriftReport]
    pending_rows: int  # logged rows after the last full window, waiting for it to fill
    skipped_windows: int  # windows another monitor stored first
    seconds: float
    alerts: list[dict[str, Any]] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        return {
            "model": self.model,
            "windows": [w.to_dict() for w in self.windows],
            "alerts": self.alerts,
            "pending_rows": self.pending_rows,
            "skipped_windows": self.skipped_windows,
            "seconds": self.seconds,
        }


def _served_version(store: Store, name: str, version: int | None) -> int:
    if version is not None:
        store.get_model_version(name, version)
        return version
    champion = store.alias_version(name, "champion")
    if champion is None:
        store.get_model_version(name)  # ModelNotFound with close matches when the name is wrong
        raise NotFound(f"model '{name}' has no champion; pass --version for the version that is served")
    return champion


def _requests(store: Store, name: str, version: int, after_id: int | None) -> Iterator[PredictionRecord]:
    while True:
        page = store.prediction_log(name, version=version, after_id=after_id, limit=PAGE_REQUESTS)
        yield from page
        if len(page) < PAGE_REQUESTS:
            return
        after_id = page[-1].id


def _windows(
    requests: Iterator[PredictionRecord], size: int, every_s: float | None
) -> Iterator[tuple[list[PredictionRecord], bool]]:
    """Requests grouped into windows; the flag says whether the window is complete."""
    current: list[PredictionRecord] = []
    rows = 0
    for request in requests:
        if every_s is not None and current and (request.at - current[0].at).total_seconds() >= every_s:
            yield current, True
            current, rows = [], 0
        current.append(request)
        rows += request.n_rows
        if every_s is None and rows >= size:
            yield current, True
            current, rows = [], 0
    if current:
        yield current, False


def _window_rows(
    reference: Reference, requests: list[PredictionRecord]
) -> tuple[pd.DataFrame, dict[str, np.ndarray], np.ndarray, list[tuple[str, int]]]:
    records = [record for r in requests for record in r.features]
    table = pd.DataFrame.from_records(records) if records else pd.DataFrame()
    arrays = {
        name: np.asarray([np.asarray(row[name], dtype=np.float64) for row in records])
        for name, kind in reference.kinds.items()
        if kind == "image"
    }
    for name, kind in reference.kinds.items():  # a text column a client left out, or a column always null
        if kind != "image" and name not in table.columns:
            table[name] = None
    probabilities = np.array(
        [[p[c] for c in reference.classes] for r in requests for p in r.outputs.get("probabilities", [])],
        dtype=np.float64,
    ).reshape(-1, max(len(reference.classes), 1))
    keys = [(r.request_id, i) for r in requests for i in range(r.n_rows)]
    return table, arrays, probabilities, keys


def _alerts(report: dict[str, Any], reference: Reference, config: MonitorConfig) -> list[dict[str, Any]]:
    alerts = []
    features = report["features"]
    if features["dataset_drift"]:
        alerts.append(
            {
                "kind": "feature_drift",
                "severity": "warning",
                "message": f"inputs changed: {features['summary']}",
                "details": {"drifted": features["drifted"], "share": features["share_drifted"]},
            }
        )
    bbsd = report["predictions"].get("bbsd")
    if bbsd and bbsd["drifted"]:
        alerts.append(
            {
                "kind": "prediction_drift",
                "severity": "warning",
                "message": f"the model's outputs changed (BBSD p = {bbsd['p_value']:.2g})",
                "details": {"p_value": bbsd["p_value"]},
            }
        )
    level = reference.accuracy
    for kind, found in (("estimated_performance", report["estimated"]), ("realized_performance", report["realized"])):
        if level is None or found is None:
            continue
        if found["accuracy"] < level - config.performance_drop and found["accuracy_high"] < level:
            word = "estimated" if kind.startswith("estimated") else "measured on labelled rows"
            alerts.append(
                {
                    "kind": kind,
                    "severity": "critical",
                    "message": f"accuracy {word} {found['accuracy']:.3f} "
                    f"({found['accuracy_low']:.3f}–{found['accuracy_high']:.3f}), was {level:.3f}",
                    "details": {"accuracy": found["accuracy"], "reference_accuracy": level, "n": found["n"]},
                }
            )
    for alarm in report["stream_alarms"]:
        if alarm["stream"] == "error":
            alerts.append(
                {
                    "kind": "error_rate_change",
                    "severity": "critical",
                    "message": f"the error rate changed at row {alarm['row']}: "
                    f"{alarm['value_before']:.3f} → {alarm['value_after']:.3f} (ADWIN)",
                    "details": alarm,
                }
            )
    return alerts


def _report_window(
    reference: Reference,
    requests: list[PredictionRecord],
    labels: dict[tuple[str, int], Any],
    changes: ChangeMonitor,
    first_row: int,
    config: MonitorConfig,
) -> dict[str, Any]:
    table, arrays, probabilities, keys = _window_rows(reference, requests)
    profile = reference.profile.empty().add(table, arrays)
    if reference.classes and len(probabilities) == len(table):
        profile.add_outputs(probabilities, reference.classes)
    options = {"alpha": config.drift_p_value, "correction": config.correction, "drift_share": config.drift_share}
    features = compare_profiles(reference.profile, profile, **options)
    predictions: dict[str, Any] = {}
    estimated = None
    stream_alarms: list[dict[str, Any]] = []
    realized = None
    if reference.classes and len(probabilities) == len(table) and len(table) >= 2:
        predictions["bbsd"] = bbsd_test(reference.probabilities, probabilities, alpha=config.drift_p_value).to_dict()
        predictions["outputs"] = compare_profiles(reference.profile, profile, outputs=True, **options).to_dict()
        estimated = estimate_performance(probabilities, calibration=reference.calibration).to_dict()
        predicted = probabilities.argmax(axis=1)
        truth = _label_indices([labels.get(k) for k in keys], reference.classes)
        labelled = np.flatnonzero(truth >= 0)
        if len(labelled) >= config.min_labels:
            realized = realized_performance(
                truth[labelled], predicted[labelled], len(reference.classes), window_rows=len(keys)
            ).to_dict()
        confidence = probabilities.max(axis=1)
        for i in range(len(keys)):
            for stream, value in (
                ("confidence", confidence[i]),
                ("error", None if truth[i] < 0 else float(predicted[i] != truth[i])),
            ):
                if value is None:
                    continue
                alarm = changes.update(stream, float(value))
                if alarm is not None:
                    stream_alarms.append({**alarm.to_dict(), "row": first_row + i})
    report = {
        "features": features.to_dict(),
        "predictions": predictions,
        "estimated": estimated,
        "realized": realized,
        "stream_alarms": stream_alarms,
    }
    report["alerts"] = _alerts(report, reference, config)
    return report


def monitor_model(
    name: str,
    *,
    version: int | None = None,
    window: int | None = None,
    every_s: float | None = None,
    store: Store | None = None,
    config: MonitorConfig | None = None,
    max_windows: int | None = None,
) -> MonitorResult:
    """Report every full window of ``name``'s prediction log not reported yet; store each report and its alerts.

    ``version`` defaults to the champion; ``window`` (rows, default ``monitor.window_size``) or
    ``every_s`` (seconds of arrivals) sets the windows. Alerts go to ``monitor.webhook_url`` when set.
    """
    from amploop.monitor.alerts import deliver_alerts
    from amploop.registry.store import Store as StoreClass

    if store is None:
        with StoreClass.open() as opened:
            return monitor_model(
                name,
                version=version,
                window=window,
                every_s=every_s,
                store=opened,
                config=config,
                max_windows=max_windows,
            )
    config = config or MonitorConfig()
    size = window or config.window_size
    if size < 1 or (every_s is not None and every_s <= 0):
        raise UsageError("a window needs at least 1 row (or a positive number of seconds)")
    started = time.perf_counter()
    version = _served_version(store, name, version)
    reference = reference_for(store, name, version, sample_size=config.reference_sample_size)
    previous = store.drift_reports(name, version=version, limit=1)
    after_id = previous[-1].last_log_id if previous else None
    first_row = previous[-1].report["window"]["last_row"] + 1 if previous else 0
    changes = ChangeMonitor()
    reports: list[DriftReport] = []
    pending, skipped = 0, 0
    model = f"{name}:{version}"
    for requests, complete in _windows(_requests(store, name, version, after_id), size, every_s):
        n_rows = sum(r.n_rows for r in requests)
        if not complete or (max_windows is not None and len(reports) >= max_windows):
            pending += n_rows
            continue
        ids = [r.request_id for r in requests]
        labels = {(f.request_id, f.row): f.label for f in store.feedback(ids)}
        found = _report_window(reference, requests, labels, changes, first_row, config)
        window_info = {
            "first_log_id": requests[0].id,
            "last_log_id": requests[-1].id,
            "first_at": requests[0].at,
            "last_at": requests[-1].at,
            "n_rows": n_rows,
            "n_requests": len(requests),
            "first_row": first_row,
            "last_row": first_row + n_rows - 1,
        }
        reference_info = {
            k: reference.profile.meta.get(k) for k in ("accuracy", "f1", "f1_kind", "validation_rows", "calibration")
        }
        report = DriftReport(model=model, window=_jsonable(window_info), reference=reference_info, **found)
        try:
            stored, alerts = store.record_drift_report(
                name, version, window=window_info, drifted=report.drifted, report=report.to_dict(), alerts=report.alerts
            )
        except Conflict:
            skipped += 1
            first_row += n_rows
            continue
        reports.append(DriftReport(**{**report.__dict__, "id": stored.id}))
        if alerts and config.webhook_url:
            deliver_alerts(store, alerts, url=config.webhook_url, model=model, timeout_s=config.webhook_timeout_s)
        first_row += n_rows
    return MonitorResult(
        model=model,
        windows=reports,
        pending_rows=pending,
        skipped_windows=skipped,
        seconds=round(time.perf_counter() - started, 3),
        alerts=[{**a, "window_first_row": r.window["first_row"]} for r in reports for a in r.alerts],
    )


def _jsonable(values: dict[str, Any]) -> dict[str, Any]:
    return {k: v.isoformat() if isinstance(v, datetime) else v for k, v in values.items()}
