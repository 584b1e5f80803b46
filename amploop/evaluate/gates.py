"""Release gates: a policy of thresholds turned into a verdict with one line per rule.

A rule names a gate metric and a bound (``min`` or ``max``), as a mapping such as
``{"metric": "ece", "max": 0.05}`` or as an :class:`amploop.config.GateRuleConfig`. Its outcome
is ``pass``, ``fail``, or ``skipped`` when the value cannot be computed (no champion to compare
with, say); a skipped rule does not fail the gate, and the verdict says why it was skipped.

Examples
--------
>>> verdict = apply_gate([{"metric": "accuracy", "min": 0.84}, {"metric": "ece", "max": 0.05}],
...                      {"accuracy": 0.852, "ece": 0.071})
>>> verdict.passed, [(r.metric, r.outcome) for r in verdict.rules]
(False, [('accuracy', 'pass'), ('ece', 'fail')])
>>> [r.metric for r in verdict.failed_rules()]
['ece']
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, field
from typing import Any

from amploop.errors import ConfigError

__all__ = ["DEFAULT_GATE", "GATE_METRICS", "GateVerdict", "RuleOutcome", "apply_gate", "check_policy"]

GATE_METRICS: dict[str, str] = {
    "accuracy": "share of correct predictions",
    "balanced_accuracy": "mean recall over classes",
    "f1_macro": "F1 averaged over classes",
    "roc_auc": "area under the ROC curve (one-vs-rest, macro)",
    "pr_auc": "average precision (one-vs-rest, macro)",
    "log_loss": "negative log-likelihood of the served (calibrated) probabilities",
    "brier": "Brier score of the served probabilities",
    "mae": "mean absolute error (regression)",
    "rmse": "root mean squared error (regression)",
    "r2": "coefficient of determination (regression)",
    "mape": "mean absolute percentage error (regression)",
    "ece": "expected calibration error of the served probabilities (after temperature scaling)",
    "ece_uncalibrated": "expected calibration error before temperature scaling",
    "mce": "maximum calibration error of the served probabilities",
    "worst_slice_gap": "overall metric minus the worst adequately sized slice's",
    "parity_agreement": "lowest agreement with fp32 over the served precisions",
    "parity_metric_delta": "most negative metric change of a served precision against fp32",
    "corruption_drop": "largest metric drop under the corruption suite",
    "champion_delta": "this version's metric minus the champion's, on the same holdout",
}

DEFAULT_GATE: list[dict[str, Any]] = [
    {"metric": "ece", "max": 0.05},
    {"metric": "parity_agreement", "min": 0.99},
    {"metric": "champion_delta", "min": -0.005},
]


@dataclass(frozen=True)
class RuleOutcome:
    metric: str
    comparison: str  # ">=" or "<="
    threshold: float
    value: float | None
    outcome: str  # pass, fail, skipped
    reason: str

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass(frozen=True)
class GateVerdict:
    """The gate's outcome: one :class:`RuleOutcome` per rule, and the values they were judged on."""

    passed: bool
    rules: list[RuleOutcome]
    values: dict[str, float | None] = field(default_factory=dict)  # every gate metric computed (None: skipped)

    @property
    def verdict(self) -> str:
        return "pass" if self.passed else "fail"

    def failed_rules(self) -> list[RuleOutcome]:
        return [r for r in self.rules if r.outcome == "fail"]

    def skipped_rules(self) -> list[RuleOutcome]:
        return [r for r in self.rules if r.outcome == "skipped"]

    def to_dict(self) -> dict[str, Any]:
        return {
            "passed": self.passed,
            "verdict": self.verdict,
            "rules": [r.to_dict() for r in self.rules],
            "values": dict(self.values),
        }


def _rule_fields(rule: Any) -> tuple[str, float | None, float | None]:
    if isinstance(rule, Mapping):
        return str(rule.get("metric")), rule.get("min"), rule.get("max")
    return str(rule.metric), rule.min, rule.max


def check_policy(rules: Sequence[Any]) -> None:
    """Raise ConfigError for a rule naming an unknown metric (listing the valid ones)."""
    for position, rule in enumerate(rules):
        metric, low, high = _rule_fields(rule)
        if metric not in GATE_METRICS:
            raise ConfigError(
                f"evaluate.gate.{position}.metric: unknown gate metric '{metric}'; valid: {', '.join(GATE_METRICS)}"
            )
        if (low is None) == (high is None):
            raise ConfigError(f"evaluate.gate.{position}: give exactly one of min or max")


def apply_gate(
    rules: Sequence[Any], values: Mapping[str, float | None], skipped_reasons: Mapping[str, str] | None = None
) -> GateVerdict:
    """Judge ``values`` by ``rules``; a rule whose value is missing or NaN is skipped, with the reason given."""
    check_policy(rules)
    outcomes = []
    for rule in rules:
        metric, low, high = _rule_fields(rule)
        comparison, threshold = (">=", float(low)) if low is not None else ("<=", float(high))  # type: ignore[arg-type]
        value = values.get(metric)
        if value is None or value != value:  # missing or NaN
            reason = (skipped_reasons or {}).get(metric, f"{metric} could not be computed for this model")
            outcomes.append(RuleOutcome(metric, comparison, threshold, None, "skipped", reason))
            continue
        ok = value >= threshold if comparison == ">=" else value <= threshold
        reason = f"{metric} = {value:.4f} {'meets' if ok else 'misses'} {comparison} {threshold:g}"
        outcomes.append(RuleOutcome(metric, comparison, threshold, float(value), "pass" if ok else "fail", reason))
    return GateVerdict(passed=all(o.outcome != "fail" for o in outcomes), rules=outcomes, values=dict(values))
