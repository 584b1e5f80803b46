"""Monitoring: is the served model still right? Drift, label-free performance, alerts.

- :mod:`~amploop.monitor.profile`: reference and window profiles (fixed-edge histograms and
  category counts) that are computed once, stored, and merge across replicas.
- :mod:`~amploop.monitor.univariate`: per-column two-sample tests and distances, with a
  multiple-testing correction and the share of drifted columns.
- :mod:`~amploop.monitor.multivariate`: a domain classifier, MMD and BBSD on softmax outputs.
- :mod:`~amploop.monitor.estimate`: accuracy and F1 estimated from calibrated confidences, and
  realized from feedback labels.
- :mod:`~amploop.monitor.stream`: streaming change detectors (Page-Hinkley, ADWIN).
- :mod:`~amploop.monitor.reference`: a version's reference profile, built once and stored.
- :mod:`~amploop.monitor.windows`: the prediction log in windows, a DriftReport each, alerts;
  :mod:`~amploop.monitor.alerts`: the webhook.
- :mod:`~amploop.monitor.files`: ``amploop drift`` on two files; :mod:`~amploop.monitor.report`: its HTML.

``monitor`` reads the store; it never imports ``serve``.
"""

from __future__ import annotations

from amploop._lazy import lazy_exports

_EXPORTS = {
    "ColumnProfile": "amploop.monitor.profile",
    "Profile": "amploop.monitor.profile",
    "ColumnDrift": "amploop.monitor.univariate",
    "UnivariateReport": "amploop.monitor.univariate",
    "compare_profiles": "amploop.monitor.univariate",
    "MultivariateResult": "amploop.monitor.multivariate",
    "bbsd_test": "amploop.monitor.multivariate",
    "domain_classifier_test": "amploop.monitor.multivariate",
    "linear_mmd_test": "amploop.monitor.multivariate",
    "mmd_test": "amploop.monitor.multivariate",
    "PerformanceEstimate": "amploop.monitor.estimate",
    "RealizedPerformance": "amploop.monitor.estimate",
    "estimate_performance": "amploop.monitor.estimate",
    "realized_performance": "amploop.monitor.estimate",
    "ChangeMonitor": "amploop.monitor.stream",
    "StreamAlarm": "amploop.monitor.stream",
    "detect_changes": "amploop.monitor.stream",
    "FileDriftReport": "amploop.monitor.files",
    "drift_files": "amploop.monitor.files",
    "DriftReport": "amploop.monitor.windows",
    "MonitorResult": "amploop.monitor.windows",
    "monitor_model": "amploop.monitor.windows",
    "render_drift_html": "amploop.monitor.report",
}

__all__ = sorted(_EXPORTS)

__getattr__, __dir__ = lazy_exports(__name__, _EXPORTS)
