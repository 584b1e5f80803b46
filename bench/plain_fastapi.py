"""The hand-written contender of ``bench/serve_load.py``: the FastAPI app a user writes without amploop's server.

The model is loaded once with :func:`amploop.load_model` and each request is scored on its own:
``predictor.predict_outputs(pd.DataFrame(records))``, one forward pass per request, no batching,
no prediction log, no metrics. The endpoint is a plain ``def``, so FastAPI runs it in its
threadpool (40 threads) and several requests run the model at once: the most common shape of
such an app. uvicorn, one worker, warnings only, no access log (as amploop's server runs).

    AMPLOOP_HOME=... python bench/plain_fastapi.py --port 8001 [--model adult@champion]
"""

from __future__ import annotations

import argparse
import os
from typing import Any

import pandas as pd
import uvicorn
from fastapi import FastAPI
from pydantic import BaseModel

import amploop


class PredictRequest(BaseModel):
    records: list[dict[str, Any]]


def create_app(reference: str) -> FastAPI:
    predictor = amploop.load_model(reference)
    classes = [str(c) for c in predictor.bundle.classes]
    app = FastAPI()

    @app.post("/predict")
    def predict(body: PredictRequest) -> dict[str, Any]:
        outputs = predictor.predict_outputs(pd.DataFrame(body.records))
        return {
            "predictions": [classes[i] for i in outputs.argmax(axis=1)],
            "probabilities": [dict(zip(classes, map(float, row), strict=True)) for row in outputs],
        }

    @app.get("/health")
    def health() -> dict[str, str]:
        return {"status": "ok"}

    return app


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--model", default=os.environ.get("BENCH_MODEL", "adult@champion"))
    args = parser.parse_args()
    uvicorn.run(create_app(args.model), host="127.0.0.1", port=args.port, log_level="warning", access_log=False)


if __name__ == "__main__":
    main()
