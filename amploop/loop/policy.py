"""When should the loop retrain? Trigger rules over the monitor's window reports, with brakes.

The rules (``loop.triggers`` in ``amploop.yaml``) read the newest stored window reports of the
champion (:mod:`amploop.monitor.windows`); any rule that fires is a reason to retrain:

- ``drift_share``: at least this share of the input columns drifted in the newest window;
- ``prediction_drift``: the newest window's BBSD test found the outputs moved;
- ``estimated_drop`` / ``realized_drop``: the estimated (label-free) or the realized accuracy lies
  this far below the champion's validation accuracy, with its whole interval below it; the
  realized rule needs ``min_labels`` labelled rows in the window;
- ``schedule_s``: this long since the champion was trained or last retrained, whatever the evidence.

The brakes are checked after the rules and win over them: fewer than ``min_new_rows`` rows
logged since the last retrain, a retrain less than ``cooldown_s`` ago, or
``max_retrains_per_day`` reached in the last 24 hours. The decision keeps every number it used.

Examples
--------
>>> from datetime import datetime, timezone
>>> from amploop.config import LoopConfig
>>> now = datetime(2026, 11, 29, 12, tzinfo=timezone.utc)
>>> window = {"features": {"share_drifted": 0.75, "drifted": ["temperature", "dew_point", "visibility"]},
...           "predictions": {}, "estimated": None, "realized": None, "window": {"last_row": 999}}
>>> decision = decide_retrain([window], LoopConfig(), now=now, new_rows=1000, retrains=[],
...                           reference_accuracy=0.8, trained_at=now)
>>> decision.retrain, decision.reasons
(True, ['inputs drifted: 3 columns, share 0.75 >= 0.5 (temperature, dew_point, visibility)'])
>>> decide_retrain([window], LoopConfig(), now=now, new_rows=10, retrains=[],
...                reference_accuracy=0.8, trained_at=now).blocked
'only 10 new rows since the last retrain; loop.min_new_rows is 1000'
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, field
from datetime import datetime, timedelta
from typing import Any

from amploop.config import LoopConfig

__all__ = ["TriggerDecision", "decide_retrain"]


@dataclass(frozen=True)
class TriggerDecision:
    """Whether to retrain now: the rules that fired (``reasons``) and the brake that held (``blocked``)."""

    retrain: bool
    reasons: list[str]
    blocked: str | None
    evidence: dict[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def _performance_reason(
    kind: str, found: Mapping[str, Any] | None, level: float | None, drop: float | None
) -> str | None:
    if found is None or level is None or drop is None:
        return None
    if found["accuracy"] < level - drop and found["accuracy_high"] < level:
        return (
            f"{kind} accuracy {found['accuracy']:.3f} ({found['accuracy_low']:.3f}–{found['accuracy_high']:.3f}) "
            f"is more than {drop:g} below {level:.3f}"
        )
    return None


def decide_retrain(
    windows: Sequence[Mapping[str, Any]],
    config: LoopConfig,
    *,
    now: datetime,
    new_rows: int,
    retrains: Sequence[datetime],
    reference_accuracy: float | None,
    trained_at: datetime,
) -> TriggerDecision:
    """Apply ``config``'s rules to the newest of ``windows`` (DriftReport dicts, oldest first), then its brakes.

    ``new_rows``: rows logged since the last retrain (or since the champion was promoted);
    ``retrains``: when earlier retrains started; ``trained_at``: when the champion was trained.
    """
    triggers = config.triggers
    reasons: list[str] = []
    newest = windows[-1] if windows else None
    evidence: dict[str, Any] = {"new_rows": new_rows, "reference_accuracy": reference_accuracy}
    if newest is not None:
        features = newest["features"]
        evidence.update(window_last_row=newest["window"]["last_row"], share_drifted=features["share_drifted"])
        if (
            triggers.drift_share is not None
            and features["drifted"]
            and features["share_drifted"] >= triggers.drift_share
        ):
            named = ", ".join(features["drifted"][:5]) + (", ..." if len(features["drifted"]) > 5 else "")
            reasons.append(
                f"inputs drifted: {len(features['drifted'])} columns, share {features['share_drifted']:.2f} "
                f">= {triggers.drift_share:g} ({named})"
            )
        bbsd = newest["predictions"].get("bbsd")
        if triggers.prediction_drift and bbsd and bbsd["drifted"]:
            reasons.append(f"the outputs moved (BBSD p = {bbsd['p_value']:.2g})")
        estimated = _performance_reason("estimated", newest["estimated"], reference_accuracy, triggers.estimated_drop)
        if estimated:
            reasons.append(estimated)
        realized = newest["realized"]
        if realized is not None and realized["n"] >= triggers.min_labels:
            found = _performance_reason("realized", realized, reference_accuracy, triggers.realized_drop)
            if found:
                reasons.append(f"{found} ({realized['n']} labels)")
    last = max(retrains, default=None)
    since = now - (last or trained_at)
    if triggers.schedule_s is not None and since.total_seconds() >= triggers.schedule_s:
        reasons.append(
            f"scheduled: {since.total_seconds():.0f} s since the last training, every {triggers.schedule_s:g} s"
        )
    today = [t for t in retrains if now - t < timedelta(days=1)]
    evidence.update(
        retrains_last_day=len(today), seconds_since_last_retrain=None if last is None else since.total_seconds()
    )
    blocked = None
    if reasons:
        if new_rows < config.min_new_rows:
            blocked = f"only {new_rows} new rows since the last retrain; loop.min_new_rows is {config.min_new_rows}"
        elif last is not None and since.total_seconds() < config.cooldown_s:
            blocked = (
                f"the last retrain was {since.total_seconds():.0f} s ago; loop.cooldown_s is {config.cooldown_s:g}"
            )
        elif len(today) >= config.max_retrains_per_day:
            most = config.max_retrains_per_day
            blocked = f"{len(today)} retrains in the last 24 hours; loop.max_retrains_per_day is {most}"
    return TriggerDecision(
        retrain=bool(reasons) and blocked is None, reasons=reasons, blocked=blocked, evidence=evidence
    )
