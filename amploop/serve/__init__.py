"""Serving: batch scoring of files, and an HTTP prediction server with dynamic batching.

- :mod:`~amploop.serve.scoring`: what a model answers for a table, the same for files and requests.
- :mod:`~amploop.serve.predict`: ``amploop predict``, a file scored in bounded-memory chunks.
- :mod:`~amploop.serve.batcher`: asyncio dynamic batching by rows, with back-pressure.
- :mod:`~amploop.serve.models`: the served model, its precision check, hot swap, shadow and canary.
- :mod:`~amploop.serve.predlog`: the prediction log, written off the request path.
- :mod:`~amploop.serve.auth`: API keys, hashed in the store, with roles.
- :mod:`~amploop.serve.state`: what one server process holds (slots, batchers, log, metrics).
- :mod:`~amploop.serve.app`: the FastAPI app; :mod:`~amploop.serve.server`: uvicorn with a drain.
- :mod:`~amploop.serve.loadgen`: a closed-loop load generator; :mod:`~amploop.serve.demo`: the demo.

``serve`` reads the registry and the store; it never imports ``monitor``.
"""

from __future__ import annotations

from amploop._lazy import lazy_exports

_EXPORTS = {
    "Scores": "amploop.serve.scoring",
    "score": "amploop.serve.scoring",
    "Rows": "amploop.serve.scoring",
    "records_to_rows": "amploop.serve.scoring",
    "table_to_records": "amploop.serve.scoring",
    "PredictFileResult": "amploop.serve.predict",
    "predict_file": "amploop.serve.predict",
    "DynamicBatcher": "amploop.serve.batcher",
    "ServerState": "amploop.serve.state",
    "create_app": "amploop.serve.app",
    "ServeSummary": "amploop.serve.server",
    "serve": "amploop.serve.server",
    "CreatedKey": "amploop.serve.auth",
    "create_api_key": "amploop.serve.auth",
    "LoadResult": "amploop.serve.loadgen",
    "run_load": "amploop.serve.loadgen",
}

__all__ = sorted(_EXPORTS)

__getattr__, __dir__ = lazy_exports(__name__, _EXPORTS)
