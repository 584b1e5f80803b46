"""The loop: the one layer that combines serving, monitoring, the registry and training.

- :mod:`~amploop.loop.policy`: when to retrain: trigger rules over window reports, and brakes.
- :mod:`~amploop.loop.retrain`: one retrain: labelled traffic → challenger → the same rows for
  both → gate → promote or reject, each step a stored decision.
- :mod:`~amploop.loop.controller`: the controller: lease, recover, watch, judge the last promotion
  (confirm or roll back), decide; ``amploop loop run``.
- :mod:`~amploop.loop.ci`: one CI run: data check → train → evaluate → gate, as an exit code.
- :mod:`~amploop.loop.report`: the loop's story as an HTML page with the accuracy chart.
- :mod:`~amploop.loop.demo`: the demo's whole story on rainfall, serving and monitoring included.
"""

from __future__ import annotations
