"""Release gates: a policy of thresholds turned into a verdict with one line per rule.

A rule names a gate metric and a bound (``min`` or ``max``), as a mapping such as
``{"metric": "ece", "max": 0.05}`` or as an :class:`amploop.config.GateRuleConfig`. Its outcome
is ``pass``, ``fail``, or ``skipped`` when the value cannot be computed (no champion to compare
with, say); a skipped rule does not fail the gate, and the verdict says why it was skipped.

A value measured on a sample comes with its bootstrap interval, and the rule is judged on the
interval: a ``min`` rule fails only when even the interval's upper end is below the threshold,
a ``max`` rule only when even its lower end is above it. A model is failed for what the rows
show, not for the noise of a small test set: 114 rows cannot tell an ECE of 0.051 from 0.03.
A value without an interval is judged as it is.

The default gate (:data:`DEFAULT_GATE`), and why each threshold:

- ``baseline_margin >= 0.05``: balanced accuracy at least 5 points above the best trivial
  baseline (majority class, prior), or RMSE at least 5% below predicting the training mean. A
  model that always answers the majority class scores a margin of exactly 0.
- ``ece <= 0.05``: a stated confidence within 5 points of the observed accuracy on average
  (Guo et al. report 0.01-0.05 for well-calibrated networks after scaling).
- ``parity_agreement >= 0.98``: every served precision (bf16, fp16, int8) gives the fp32 answer
  on at least 98% of rows. Rounding flips rows whose two best classes are within rounding error
  of each other (0.8% of adult's rows under int8); a precision that changes one answer in 50
  is a different model.
- ``mild_corruption_drop <= 0.10``: 10% of values blanked, or noise of 0.1 standard deviations,
  costs at most 10 points of accuracy (regression: an RMSE rise of 10% of the mean predictor's
  RMSE). Lost information costs any model something (1 point on adult, 3 to 6 on a four-column
  table whose every column matters); a model that leans on exact values (an ID, a leak, an
  overfit boundary) falls further. The suite's harsher levels are reported but not gated:
  noise of a whole standard deviation costs every model that uses its features.
- ``champion_delta >= -0.005``: no more than half a point worse than the champion on the
  same rows (the interval is of the paired difference).

Examples
--------
>>> verdict = apply_gate([{"metric": "accuracy", "min": 0.84}, {"metric": "ece", "max": 0.05}],
...                      {"accuracy": 0.852, "ece": 0.071})
>>> verdict.passed, [(r.metric, r.outcome) for r in verdict.rules]
(False, [('accuracy', 'pass'), ('ece', 'fail')])
>>> [r.metric for r in verdict.failed_rules()]
['ece']
>>> small = apply_gate([{"metric": "ece", "max": 0.05}], {"ece": 0.071}, intervals={"ece": (0.012, 0.094)})
>>> small.passed, small.rules[0].judged_on
(True, 'interval')
>>> small.rules[0].reason
'ece = 0.0710 (95% interval 0.0120 to 0.0940): above <= 0.05, but within the interval, so not shown to miss it'
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
    "mild_corruption_drop": "largest drop at each corruption's mildest level (regression: RMSE rise / the mean's RMSE)",
    "baseline_margin": "balanced accuracy above the best trivial baseline (regression: 1 - RMSE / mean predictor's)",
    "champion_delta": "this version's metric minus the champion's, on the same holdout",
}

DEFAULT_GATE: list[dict[str, Any]] = [  # the module docstring says why each threshold
    {"metric": "baseline_margin", "min": 0.05},
    {"metric": "ece", "max": 0.05},
    {"metric": "parity_agreement", "min": 0.98},
    {"metric": "mild_corruption_drop", "max": 0.10},
    {"metric": "champion_delta", "min": -0.005},
]


@dataclass(frozen=True)
class RuleOutcome:
    metric: str
    comparison: str  # ">=" or "<="
    threshold: float
    value: float | None
    lower: float | None  # the value's interval (None: no interval, judged on the value)
    upper: float | None
    judged_on: str  # interval, value, or none (skipped)
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
    intervals: dict[str, tuple[float, float] | None] = field(default_factory=dict)  # bootstrap intervals
    confidence_level: float = 0.95  # of the intervals

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
            "intervals": {k: list(v) if v is not None else None for k, v in self.intervals.items()},
            "confidence_level": self.confidence_level,
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


def _judge(
    metric: str, value: float, comparison: str, threshold: float, interval: tuple[float, float] | None, level: float
) -> tuple[str, str]:
    """(outcome, reason) for one rule with a value."""
    meets = value >= threshold if comparison == ">=" else value <= threshold
    shown = f"{metric} = {value:.4f}"
    if interval is None:
        return ("pass" if meets else "fail"), f"{shown} {'meets' if meets else 'misses'} {comparison} {threshold:g}"
    lower, upper = interval
    shown += f" ({100 * level:g}% interval {lower:.4f} to {upper:.4f})"
    if meets:
        return "pass", f"{shown} meets {comparison} {threshold:g}"
    reaches = upper >= threshold if comparison == ">=" else lower <= threshold
    if reaches:
        side = "below" if comparison == ">=" else "above"
        return "pass", f"{shown}: {side} {comparison} {threshold:g}, but within the interval, so not shown to miss it"
    end = "upper" if comparison == ">=" else "lower"
    return "fail", f"{shown} misses {comparison} {threshold:g}: even the interval's {end} end does"


def apply_gate(
    rules: Sequence[Any],
    values: Mapping[str, float | None],
    skipped_reasons: Mapping[str, str] | None = None,
    *,
    intervals: Mapping[str, tuple[float, float] | None] | None = None,
    confidence_level: float = 0.95,
) -> GateVerdict:
    """Judge ``values`` by ``rules``, on each value's interval where ``intervals`` has one.

    A rule whose value is missing or NaN is skipped, with the reason given in ``skipped_reasons``.
    """
    check_policy(rules)
    intervals = dict(intervals or {})
    outcomes = []
    for rule in rules:
        metric, low, high = _rule_fields(rule)
        comparison, threshold = (">=", float(low)) if low is not None else ("<=", float(high))  # type: ignore[arg-type]
        value = values.get(metric)
        if value is None or value != value:  # missing or NaN
            reason = (skipped_reasons or {}).get(metric, f"{metric} could not be computed for this model")
            outcomes.append(RuleOutcome(metric, comparison, threshold, None, None, None, "none", "skipped", reason))
            continue
        interval = intervals.get(metric)
        outcome, reason = _judge(metric, float(value), comparison, threshold, interval, confidence_level)
        lower, upper = interval if interval is not None else (None, None)
        judged_on = "interval" if interval is not None else "value"
        outcomes.append(
            RuleOutcome(metric, comparison, threshold, float(value), lower, upper, judged_on, outcome, reason)
        )
    return GateVerdict(
        passed=all(o.outcome != "fail" for o in outcomes),
        rules=outcomes,
        values=dict(values),
        intervals=intervals,
        confidence_level=confidence_level,
    )
