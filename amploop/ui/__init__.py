"""The dashboard: pages over the store for the owner who never opens a terminal.

- :mod:`~amploop.ui.app`: the FastAPI app (``amploop ui``; mounted at ``/ui`` by ``amploop serve``).
- :mod:`~amploop.ui.pages`: what each page shows, read through the lower layers' functions.
- :mod:`~amploop.ui.session`: API-key sign-in, signed session cookies, CSRF tokens.
- :mod:`~amploop.ui.charts`: inline SVG charts over monitored windows.
"""

from __future__ import annotations
