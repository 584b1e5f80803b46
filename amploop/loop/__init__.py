"""The loop: the one layer that combines serving, monitoring, the registry and training.

- :mod:`~amploop.loop.policy`: when to retrain: trigger rules over window reports, and brakes.
- :mod:`~amploop.loop.retrain`: one retrain: labelled traffic → challenger → the same rows for
  both → gate → promote or reject, each step a stored decision.
- :mod:`~amploop.loop.demo`: the demo's whole story, serving and monitoring included.
"""

from __future__ import annotations
