"""The BentoML contender of ``bench/serve_load.py``: the same amploop model behind BentoML's adaptive batching.

It runs in a virtualenv of its own (BentoML pins its own web stack), where amploop's source is
importable (a ``.pth`` line naming the checkout) with the dependencies :func:`amploop.load_model`
needs; the model is loaded from the same ``AMPLOOP_HOME`` as the amploop servers, so it is the
same bundle: weights, encoder, temperature. Each batch is one
``predictor.predict_outputs(pd.DataFrame(records))`` call, as the hand-written FastAPI app does
per request.

    AMPLOOP_HOME=... /tmp/bentovenv/bin/bentoml serve bentoml_service:AdultService \\
        --working-dir bench --host 127.0.0.1 --port 8002

``BENCH_BENTO_MAX_BATCH_SIZE`` (default 64, amploop's ``serve.max_batch_size``) and
``BENCH_BENTO_MAX_LATENCY_MS`` (default 1000) set the batching. BentoML's ``max_latency_ms`` is
not a wait: it is the latency budget past which its dispatcher answers 503 instead of queueing,
and the wait for a batch to fill is tuned by the dispatcher itself from measured batch times.
"""

from __future__ import annotations

import os
from typing import Any

import bentoml
import pandas as pd

MAX_BATCH_SIZE = int(os.environ.get("BENCH_BENTO_MAX_BATCH_SIZE", "64"))
MAX_LATENCY_MS = int(os.environ.get("BENCH_BENTO_MAX_LATENCY_MS", "1000"))


# one worker, no access log: as the amploop and hand-written servers run
@bentoml.service(workers=1, traffic={"timeout": 60}, logging={"access": {"enabled": False}})
class AdultService:
    def __init__(self) -> None:
        import amploop

        self.predictor = amploop.load_model(os.environ.get("BENCH_MODEL", "adult@champion"))
        self.classes = [str(c) for c in self.predictor.bundle.classes]

    @bentoml.api(batchable=True, max_batch_size=MAX_BATCH_SIZE, max_latency_ms=MAX_LATENCY_MS)
    def predict(self, records: list[dict[str, Any]]) -> list[dict[str, Any]]:
        outputs = self.predictor.predict_outputs(pd.DataFrame(records))
        return [
            {
                "prediction": self.classes[int(row.argmax())],
                "probabilities": dict(zip(self.classes, map(float, row), strict=True)),
            }
            for row in outputs
        ]
