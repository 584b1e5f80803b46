"""What each dashboard page shows: read through the lower layers' functions, shaped for a template.

Each function takes the store and the configuration (and the page's path parameters) and
returns the template's context; none of them writes.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from markupsafe import Markup

from amploop.config import AmploopConfig
from amploop.errors import ModelNotFound

if TYPE_CHECKING:
    from amploop.registry.store import Store

__all__ = ["confirm_move", "evaluation", "loop", "model", "monitoring", "overview"]

MONITOR_WINDOWS = 200  # the newest windows a monitoring page draws
DECISIONS_SHOWN = 200


def overview(store: Store, config: AmploopConfig) -> dict[str, Any]:
    from amploop.loop.health import health_overview

    return {"models": health_overview(store)}


def model(store: Store, config: AmploopConfig, name: str) -> dict[str, Any]:
    from amploop.loop.health import model_health
    from amploop.registry.aliases import alias_history
    from amploop.registry.lineage import lineage
    from amploop.registry.overview import main_metric, model_overview

    found = model_overview(store, name)
    champion = found["aliases"].get("champion")
    versions = []
    for v in reversed(found["versions"]):  # newest first
        metric, value = main_metric(v["metrics"])
        aliases = sorted(a for a, at in found["aliases"].items() if at == v["version"])
        versions.append({**v, "metric": metric, "value": value, "alias_names": aliases})
    traced = lineage(store, name, champion) if champion is not None else None
    return {
        "name": name,
        "champion": champion,
        "health": model_health(store, name).to_dict(),
        "versions": versions,
        "moves": [m.to_dict() for m in reversed(alias_history(store, name))],
        "lineage": traced,
        "decisions": [d.to_dict() for d in reversed(store.loop_decisions(name, limit=5))],
        "rollback_to": _rollback_target(store, name, champion),
    }


def evaluation(store: Store, config: AmploopConfig, name: str, version: int) -> dict[str, Any]:
    from amploop.evaluate.report import report_charts

    store.get_model_version(name, version)
    evaluations = store.list_evaluations(name, version)
    if not evaluations:
        raise ModelNotFound(f"{name}:{version} was never evaluated; `amploop evaluate {name}:{version}` does it")
    latest = evaluations[-1]
    report = latest.report
    charts = {k: Markup(v) for k, v in report_charts(report).items()}  # SVG built from numbers by evaluate/
    metrics = {k: v for k, v in report["metrics"].items() if isinstance(v, float)}
    return {
        "name": name,
        "version": version,
        "evaluation": latest.to_dict(),
        "report": report,
        "charts": charts,
        "metrics": metrics,
        "intervals": (report.get("intervals") or {}).get("metrics") or {},
    }


def monitoring(store: Store, config: AmploopConfig, name: str) -> dict[str, Any]:
    from amploop.loop.health import model_health, monitoring_series
    from amploop.ui.charts import series_chart

    store.get_model_version(name)
    series = monitoring_series(store, name, limit=MONITOR_WINDOWS)
    labels = [f"v{w['version']} {str(w['last_at'])[5:16].replace('T', ' ')}" for w in series]  # version, MM-DD HH:MM
    reference = next((w["reference_accuracy"] for w in reversed(series) if w["reference_accuracy"]), None)
    accuracy = series_chart(
        "Accuracy per window: realized from labels, estimated from confidences",
        labels,
        [
            ("realized", "realized", [tuple(w["realized"]) if w["realized"] else None for w in series]),
            ("estimated", "estimated", [tuple(w["estimated"]) if w["estimated"] else None for w in series]),
        ],
        low=min([0.4, *(w["realized"][1] for w in series if w["realized"])]),
        reference=reference,
    )
    drift = series_chart(
        "Share of input columns that drifted, per window",
        labels,
        [("drifted share", "drift", [(w["share_drifted"],) * 3 for w in series])],
        reference=config.monitor.drift_share,
    )
    return {
        "name": name,
        "health": model_health(store, name).to_dict(),
        "windows": list(reversed(series)),
        "accuracy_chart": Markup(accuracy),  # built from numbers and escaped labels
        "drift_chart": Markup(drift),
        "alarms": [(w, a) for w in reversed(series) for a in w["alerts"]][:100],
    }


def loop(store: Store, config: AmploopConfig, name: str) -> dict[str, Any]:
    from amploop.loop.controller import loop_status

    status = loop_status(store, name, limit=DECISIONS_SHOWN)
    return {"name": name, "status": status, "decisions": list(reversed(status["decisions"]))}


def _rollback_target(store: Store, name: str, champion: int | None) -> int | None:
    """The version a rollback goes to, as :func:`~amploop.registry.aliases.rollback` chooses it: the one
    the champion moved from, the last time it came to its current version."""
    from amploop.registry.aliases import alias_history

    if champion is None:
        return None
    return next(
        (
            m.from_version
            for m in reversed(alias_history(store, name, "champion"))
            if m.to_version == champion and m.from_version is not None and m.from_version != champion
        ),
        None,
    )


def confirm_move(store: Store, name: str, version: int | None) -> dict[str, Any]:
    """What a promotion (``version``) or a rollback (None) would change, before it is done."""
    champion = store.alias_version(name, "champion")
    if version is None:
        if champion is None:
            raise ModelNotFound(f"model '{name}' has no champion to roll back")
        target = _rollback_target(store, name, champion)
        if target is None:
            raise ModelNotFound(f"{name}@champion has no earlier version to roll back to")
    else:
        store.get_model_version(name, version)
        target = version
    evaluations = store.list_evaluations(name, target)
    return {
        "name": name,
        "champion": champion,
        "target": target,
        "evaluated": bool(evaluations),
        "passed": evaluations[-1].passed if evaluations else None,
    }
