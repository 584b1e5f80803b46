"""Evaluation: metrics, calibration, slices, robustness, precision parity and release gates.

:func:`evaluate_model` runs every check of one model version on one dataset and returns an
:class:`EvaluationReport` (typed parts; ``to_dict()`` is its JSON form); :func:`render_html`
turns that form into a self-contained page. The parts are usable on their own: metric and
calibration functions on plain NumPy arrays (:func:`decide_temperature` keeps a temperature
only where it helps on held-out rows), the trivial baselines, :func:`bootstrap_intervals`,
:func:`evaluate_slices` and :func:`discover_slices`, :func:`corruption_results` and
:func:`precision_parity`, :func:`apply_gate` with :data:`DEFAULT_GATE`, and for new rows
:func:`compare_rows` (do they look like the training rows?) and :func:`compare_with_holdout`.

Names are imported on first use (PEP 562): ``import amploop.evaluate`` loads neither torch nor
pandas, and importing one submodule does not pull in the others.

>>> from amploop.evaluate import apply_gate
>>> apply_gate([{"metric": "accuracy", "min": 0.8}], {"accuracy": 0.85}).verdict
'pass'
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from amploop._lazy import lazy_exports

_EXPORTS = {
    # the whole evaluation and its report
    "ChampionComparison": "amploop.evaluate.evaluation",
    "EvaluationReport": "amploop.evaluate.evaluation",
    "evaluate_model": "amploop.evaluate.evaluation",
    # baselines, intervals, and new rows against the training rows and the version's own test result
    "Baseline": "amploop.evaluate.baselines",
    "BaselineReport": "amploop.evaluate.baselines",
    "classification_baselines": "amploop.evaluate.baselines",
    "regression_baselines": "amploop.evaluate.baselines",
    "bootstrap_intervals": "amploop.evaluate.bootstrap",
    "ColumnShift": "amploop.evaluate.shift",
    "ShiftReport": "amploop.evaluate.shift",
    "compare_rows": "amploop.evaluate.shift",
    "HoldoutComparison": "amploop.evaluate.comparison",
    "MetricComparison": "amploop.evaluate.comparison",
    "compare_with_holdout": "amploop.evaluate.comparison",
    # calibration
    "CalibrationSummary": "amploop.evaluate.calibration",
    "TemperatureDecision": "amploop.evaluate.calibration",
    "apply_temperature": "amploop.evaluate.calibration",
    "calibration_summary": "amploop.evaluate.calibration",
    "classwise_ece": "amploop.evaluate.calibration",
    "decide_temperature": "amploop.evaluate.calibration",
    "expected_calibration_error": "amploop.evaluate.calibration",
    "fit_temperature": "amploop.evaluate.calibration",
    "max_calibration_error": "amploop.evaluate.calibration",
    "reliability_bins": "amploop.evaluate.calibration",
    "softmax": "amploop.evaluate.calibration",
    "temperature_for_fit": "amploop.evaluate.calibration",
    # metrics on NumPy arrays
    "CLASSIFICATION_METRICS": "amploop.evaluate.metrics",
    "REGRESSION_METRICS": "amploop.evaluate.metrics",
    "accuracy": "amploop.evaluate.metrics",
    "balanced_accuracy": "amploop.evaluate.metrics",
    "brier_score": "amploop.evaluate.metrics",
    "classification_metrics": "amploop.evaluate.metrics",
    "confusion_matrix": "amploop.evaluate.metrics",
    "log_loss": "amploop.evaluate.metrics",
    "mae": "amploop.evaluate.metrics",
    "mape": "amploop.evaluate.metrics",
    "pr_auc": "amploop.evaluate.metrics",
    "precision_recall_f1": "amploop.evaluate.metrics",
    "r2": "amploop.evaluate.metrics",
    "regression_metrics": "amploop.evaluate.metrics",
    "rmse": "amploop.evaluate.metrics",
    "roc_auc": "amploop.evaluate.metrics",
    # slices
    "DiscoveredSlice": "amploop.evaluate.slices",
    "SliceReport": "amploop.evaluate.slices",
    "SliceResult": "amploop.evaluate.slices",
    "discover_slices": "amploop.evaluate.slices",
    "evaluate_slices": "amploop.evaluate.slices",
    "slice_labels": "amploop.evaluate.slices",
    # robustness and precision parity
    "CorruptionResult": "amploop.evaluate.robustness",
    "ParityResult": "amploop.evaluate.robustness",
    "RobustnessReport": "amploop.evaluate.robustness",
    "corruption_results": "amploop.evaluate.robustness",
    "precision_parity": "amploop.evaluate.robustness",
    # release gates
    "DEFAULT_GATE": "amploop.evaluate.gates",
    "GATE_METRICS": "amploop.evaluate.gates",
    "GateVerdict": "amploop.evaluate.gates",
    "RuleOutcome": "amploop.evaluate.gates",
    "apply_gate": "amploop.evaluate.gates",
    "check_policy": "amploop.evaluate.gates",
    # the HTML page
    "render_html": "amploop.evaluate.report",
}

__all__ = [
    "Baseline",
    "BaselineReport",
    "CLASSIFICATION_METRICS",
    "CalibrationSummary",
    "ChampionComparison",
    "ColumnShift",
    "CorruptionResult",
    "DEFAULT_GATE",
    "DiscoveredSlice",
    "EvaluationReport",
    "GATE_METRICS",
    "GateVerdict",
    "HoldoutComparison",
    "MetricComparison",
    "ParityResult",
    "REGRESSION_METRICS",
    "RobustnessReport",
    "RuleOutcome",
    "ShiftReport",
    "SliceReport",
    "SliceResult",
    "TemperatureDecision",
    "accuracy",
    "apply_gate",
    "apply_temperature",
    "balanced_accuracy",
    "bootstrap_intervals",
    "brier_score",
    "calibration_summary",
    "check_policy",
    "classification_baselines",
    "classification_metrics",
    "classwise_ece",
    "compare_rows",
    "compare_with_holdout",
    "confusion_matrix",
    "corruption_results",
    "decide_temperature",
    "discover_slices",
    "evaluate_model",
    "evaluate_slices",
    "expected_calibration_error",
    "fit_temperature",
    "log_loss",
    "mae",
    "mape",
    "max_calibration_error",
    "pr_auc",
    "precision_parity",
    "precision_recall_f1",
    "r2",
    "regression_baselines",
    "regression_metrics",
    "reliability_bins",
    "render_html",
    "rmse",
    "roc_auc",
    "slice_labels",
    "softmax",
    "temperature_for_fit",
]


__getattr__, __dir__ = lazy_exports(__name__, _EXPORTS)


if TYPE_CHECKING:  # pragma: no cover - for type checkers and IDEs only
    from amploop.evaluate.baselines import (
        Baseline,
        BaselineReport,
        classification_baselines,
        regression_baselines,
    )
    from amploop.evaluate.bootstrap import bootstrap_intervals
    from amploop.evaluate.calibration import (
        CalibrationSummary,
        TemperatureDecision,
        apply_temperature,
        calibration_summary,
        classwise_ece,
        decide_temperature,
        expected_calibration_error,
        fit_temperature,
        max_calibration_error,
        reliability_bins,
        softmax,
        temperature_for_fit,
    )
    from amploop.evaluate.comparison import HoldoutComparison, MetricComparison, compare_with_holdout
    from amploop.evaluate.evaluation import ChampionComparison, EvaluationReport, evaluate_model
    from amploop.evaluate.gates import DEFAULT_GATE, GATE_METRICS, GateVerdict, RuleOutcome, apply_gate, check_policy
    from amploop.evaluate.metrics import (
        CLASSIFICATION_METRICS,
        REGRESSION_METRICS,
        accuracy,
        balanced_accuracy,
        brier_score,
        classification_metrics,
        confusion_matrix,
        log_loss,
        mae,
        mape,
        pr_auc,
        precision_recall_f1,
        r2,
        regression_metrics,
        rmse,
        roc_auc,
    )
    from amploop.evaluate.report import render_html
    from amploop.evaluate.robustness import (
        CorruptionResult,
        ParityResult,
        RobustnessReport,
        corruption_results,
        precision_parity,
    )
    from amploop.evaluate.shift import ColumnShift, ShiftReport, compare_rows
    from amploop.evaluate.slices import (
        DiscoveredSlice,
        SliceReport,
        SliceResult,
        discover_slices,
        evaluate_slices,
        slice_labels,
    )
