"""Monitoring: is the served model still right? Drift, label-free performance, alerts.

- :mod:`~amploop.monitor.profile`: reference and window profiles (fixed-edge histograms and
  category counts) that are computed once, stored, and merge across replicas.
- :mod:`~amploop.monitor.univariate`: per-column two-sample tests and distances, with a
  multiple-testing correction and the share of drifted columns.
- :mod:`~amploop.monitor.multivariate`: a domain classifier, MMD and BBSD on softmax outputs.
- :mod:`~amploop.monitor.estimate`: accuracy and F1 estimated from calibrated confidences, and
  realized from feedback labels.
- :mod:`~amploop.monitor.stream`: streaming change detectors (Page-Hinkley, ADWIN).
- :mod:`~amploop.monitor.windows`: the prediction log in windows, a DriftReport each, alerts.

``monitor`` reads the store; it never imports ``serve``.
"""

from __future__ import annotations

from amploop._lazy import lazy_exports

_EXPORTS: dict[str, str] = {}

__all__ = sorted(_EXPORTS)

__getattr__, __dir__ = lazy_exports(__name__, _EXPORTS)
