"""The loop: the one layer that combines serving, monitoring, the registry and training.

- :mod:`~amploop.loop.demo`: the demo's whole story, serving and monitoring included.
"""

from __future__ import annotations
