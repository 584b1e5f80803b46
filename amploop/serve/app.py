"""The prediction server's HTTP face (FastAPI): parse, call the batcher or the store, render.

Routes: ``POST /v1/predict``, ``POST /v1/feedback`` (operator key), ``GET /v1/models``,
``POST /v1/admin/refresh`` (operator key), ``GET /health``, ``GET /ready``, ``GET /metrics``
and the OpenAPI schema at ``/openapi.json`` (docs at ``/docs``). Errors are the
:class:`~amploop.errors.AmploopError` JSON body with the class's HTTP status; every answer
carries an ``X-Request-ID``.

A small ASGI middleware in front of every route counts requests in flight (for the drain),
answers 503 while the server drains, and refuses bodies over ``serve.max_request_bytes``
with 413 while they stream in, before they are parsed.
"""

from __future__ import annotations

import logging
import time
import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

import numpy as np
from fastapi import FastAPI, Header, Request
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import JSONResponse, Response
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest
from pydantic import BaseModel, ConfigDict, Field, model_validator

from amploop import __version__
from amploop.errors import AmploopError, InputTooLarge, Unavailable
from amploop.serve.auth import require_role, token_from_headers
from amploop.serve.scoring import RecordErrors, Scores, record_json_schema, records_to_rows
from amploop.serve.state import ServerState

if TYPE_CHECKING:
    from amploop.registry.records import ApiKeyRecord

__all__ = ["create_app"]

log = logging.getLogger("amploop.serve")

_OPEN_PATHS = ("/health", "/metrics")  # answered even while draining


class PredictRequest(BaseModel):
    """One record (``record``) or many (``records``), each a JSON object of the model's columns."""

    model_config = ConfigDict(extra="forbid")
    record: dict[str, Any] | None = None
    records: list[dict[str, Any]] | None = Field(None, min_length=1)

    @model_validator(mode="after")
    def _one_of(self) -> PredictRequest:
        if (self.record is None) == (self.records is None):
            raise ValueError("send either 'record' (one object) or 'records' (a list of objects)")
        return self


class PredictResponse(BaseModel):
    request_id: str
    model_version: str
    predictions: list[Any]
    probabilities: list[dict[str, float]] | None = None
    confidence: list[float] | None = None


class FeedbackRequest(BaseModel):
    """The true label of one row (``label``, with ``row``, default 0) or of every row (``labels``)."""

    model_config = ConfigDict(extra="forbid")
    request_id: str = Field(min_length=1, max_length=64)
    row: int = Field(0, ge=0)
    label: str | int | float | bool | None = None
    labels: list[str | int | float | bool] | None = Field(None, min_length=1)

    @model_validator(mode="after")
    def _one_of(self) -> FeedbackRequest:
        if (self.label is None) == (self.labels is None):
            raise ValueError("send either 'label' (with 'row', default 0) or 'labels' (one per row)")
        return self


class FeedbackResponse(BaseModel):
    request_id: str
    recorded: int


_ERROR = {"description": "an AmploopError: {error, message, details}"}
_ERROR_RESPONSES: dict[int | str, dict[str, Any]] = {
    400: {"description": "the body is not JSON"},
    401: _ERROR,
    403: _ERROR,
    413: _ERROR,
    422: _ERROR,
    500: _ERROR,
    503: _ERROR,
}
_FEEDBACK_ERRORS = {**_ERROR_RESPONSES, 404: _ERROR, 409: _ERROR}


def create_app(state: ServerState) -> FastAPI:
    """The FastAPI app over a loaded :class:`ServerState` (see :func:`amploop.serve.server.serve`)."""
    config, metrics = state.config, state.metrics

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        await state.start()
        try:
            yield
        finally:
            await state.stop()

    app = FastAPI(
        title="amploop prediction server",
        version=__version__,
        description=f"Serves {state.reference}. Predictions are logged for monitoring.",
        lifespan=lifespan,
    )
    app.add_middleware(_Guard, state=state)

    @app.exception_handler(AmploopError)
    async def _amploop_error(request: Request, exc: AmploopError) -> JSONResponse:
        body = exc.to_dict()
        request_id = getattr(request.state, "request_id", None)
        if request_id:
            body["request_id"] = request_id
        headers = {"X-Request-ID": request_id} if request_id else {}
        if isinstance(exc, Unavailable):
            headers["Retry-After"] = str(exc.details.get("retry_after_s", 1))
        if "errors" in exc.details:  # per-field problems, in FastAPI's own shape
            body["detail"] = exc.details["errors"]
        return JSONResponse(body, status_code=exc.http_status, headers=headers)

    @app.exception_handler(Exception)
    async def _unexpected(request: Request, exc: Exception) -> JSONResponse:
        request_id = getattr(request.state, "request_id", "")
        log.exception("request %s failed", request_id)
        body = {
            "error": "InternalError",
            "message": f"internal error ({type(exc).__name__}); the server log has the details",
            "details": {},
            "request_id": request_id,
        }
        return JSONResponse(body, status_code=500, headers={"X-Request-ID": request_id})

    def authorize(authorization: str | None, x_api_key: str | None, role: str) -> ApiKeyRecord:
        token = token_from_headers(authorization, x_api_key)
        return require_role(state.keys.verify(token), role)

    @app.post("/v1/predict", response_model=PredictResponse, responses=_ERROR_RESPONSES)
    async def predict(
        body: PredictRequest,
        request: Request,
        authorization: str | None = Header(None),
        x_api_key: str | None = Header(None),
    ) -> Any:
        started = request.state.started  # when the request reached the server, before its body was read
        at = datetime.now(UTC)
        request_id = request.state.request_id
        if config.require_key_for_predict:
            await run_in_threadpool(authorize, authorization, x_api_key, "reader")
        records = body.records if body.records is not None else [body.record]
        if len(records) > config.max_rows_per_request:
            metrics.rejected.labels("too_many_rows").inc()
            raise InputTooLarge(
                f"{len(records)} records in one request; the limit is serve.max_rows_per_request "
                f"= {config.max_rows_per_request}: split the request"
            )
        route = state.choose_route()
        model = route.slot.current
        if model is None or route.batcher is None:
            raise Unavailable("no model is loaded yet; retry shortly", retry_after_s=1)
        target = model.predictor.bundle.target
        inputs = records_to_rows(model.predictor.schema_, records, target=target)
        remaining_s = config.request_timeout_s - (time.perf_counter() - started)
        try:
            scores = await route.batcher.submit(inputs, rows=len(records), timeout_s=max(remaining_s, 0.001))
        except Unavailable as exc:
            metrics.rejected.labels(exc.details.get("reason", "overload")).inc()
            raise
        _check_finite(scores)
        answer = scores.to_dict()
        answer["request_id"] = request_id
        latency_ms = (time.perf_counter() - started) * 1000
        name, _, version = scores.version.rpartition(":")
        entry = {
            "request_id": request_id,
            "model_name": name,
            "version": int(version),
            "role": "served",
            "at": at,
            "n_rows": len(records),
            "features": records,
            "outputs": {k: v for k, v in answer.items() if k not in ("request_id", "model_version")},
            "latency_ms": latency_ms,
            "replica": state.replica,
        }
        state.log_request(entry)
        if state.shadow is not None:
            state.score_shadow(inputs, entry)
        return JSONResponse(answer, headers={"X-Request-ID": request_id})

    @app.post("/v1/feedback", response_model=FeedbackResponse, status_code=201, responses=_FEEDBACK_ERRORS)
    async def feedback(
        body: FeedbackRequest,
        authorization: str | None = Header(None),
        x_api_key: str | None = Header(None),
    ) -> Any:
        key = await run_in_threadpool(authorize, authorization, x_api_key, "operator")
        labels = dict(enumerate(body.labels)) if body.labels is not None else {body.row: body.label}
        actor = f"key:{key.id}"  # who gave the labels, for the audit of realized performance
        recorded = await run_in_threadpool(state.store.record_feedback, body.request_id, labels, actor=actor)
        return FeedbackResponse(request_id=body.request_id, recorded=len(recorded))

    @app.get("/v1/models", responses=_ERROR_RESPONSES)
    async def models(authorization: str | None = Header(None), x_api_key: str | None = Header(None)) -> Any:
        if config.require_key_for_predict:
            await run_in_threadpool(authorize, authorization, x_api_key, "reader")
        return state.describe()

    @app.post("/v1/admin/refresh", responses=_ERROR_RESPONSES)
    async def refresh(authorization: str | None = Header(None), x_api_key: str | None = Header(None)) -> Any:
        """Look at the store's aliases now instead of at the next poll; swap in what moved."""
        await run_in_threadpool(authorize, authorization, x_api_key, "operator")
        swapped = await state.refresh_models()
        return {"swapped": swapped, **state.describe()}

    @app.get("/health")
    async def health() -> Any:
        return {"status": "ok"}

    @app.get("/ready", responses={503: _ERROR})
    async def ready() -> Any:
        if state.draining:
            raise Unavailable("the server is draining; send requests to another replica", retry_after_s=1)
        if state.primary.slot.current is None:
            raise Unavailable("no model is loaded yet", retry_after_s=1)
        return {"ready": True, "model_version": state.primary.slot.current.reference}

    @app.get("/metrics", response_class=Response, responses={200: {"content": {"text/plain": {}}}})
    async def prometheus() -> Response:
        return Response(generate_latest(metrics.registry), media_type=CONTENT_TYPE_LATEST)

    app.openapi = lambda: _openapi_with_records(app, state)  # type: ignore[method-assign]
    return app


def _openapi_with_records(app: FastAPI, state: ServerState) -> dict[str, Any]:
    """FastAPI's OpenAPI document, with a record described by the served model's own columns."""
    if app.openapi_schema is not None:
        return app.openapi_schema
    from fastapi.openapi.utils import get_openapi

    document = get_openapi(title=app.title, version=app.version, description=app.description, routes=app.routes)
    schemas = document["components"]["schemas"]
    model = state.primary.slot.current
    if model is not None:
        schemas["Record"] = record_json_schema(model.predictor.schema_, target=model.predictor.bundle.target)
    record = {"$ref": "#/components/schemas/Record"} if model is not None else {"type": "object"}
    # "exactly one of" is a model validator in pydantic; here it is spelled out for clients and test tools
    schemas["PredictRequest"] = {
        "title": "PredictRequest",
        "description": PredictRequest.__doc__,
        "oneOf": [
            _object({"record": record}),
            _object(
                {
                    "records": {
                        "type": "array",
                        "items": record,
                        "minItems": 1,
                        # a size limit, not a shape: more rows are answered 413, which JSON Schema cannot say
                        "description": f"at most {state.config.max_rows_per_request} records (more: HTTP 413)",
                    }
                }
            ),
        ],
    }
    request_id = schemas["FeedbackRequest"]["properties"]["request_id"]
    label = {"anyOf": [{"type": "string"}, {"type": "number"}, {"type": "boolean"}]}
    schemas["FeedbackRequest"] = {
        "title": "FeedbackRequest",
        "description": FeedbackRequest.__doc__,
        "oneOf": [
            _object({"request_id": request_id, "label": label}, optional={"row": {"type": "integer", "minimum": 0}}),
            _object({"request_id": request_id, "labels": {"type": "array", "items": label, "minItems": 1}}),
        ],
    }
    app.openapi_schema = document
    return document


def _check_finite(scores: Scores) -> None:
    """A row whose answer is not a finite number (inputs far outside anything seen) is the caller's 422."""
    values = scores.probabilities if scores.probabilities is not None else np.asarray(scores.predictions, dtype=float)
    finite = np.isfinite(values).reshape(len(scores), -1).all(axis=1)
    if not finite.all():
        rows = np.flatnonzero(~finite)
        message = "the model's answer is not a finite number: inputs far outside the range it was trained on"
        raise RecordErrors([{"loc": ["records", int(r)], "msg": message, "type": "value_out_of_range"} for r in rows])


def _object(required: dict[str, Any], *, optional: dict[str, Any] | None = None) -> dict[str, Any]:
    return {
        "type": "object",
        "properties": {**required, **(optional or {})},
        "required": list(required),
        "additionalProperties": False,
    }


class _Guard:
    """Pure ASGI middleware: request ids, in-flight count, drain refusal, body size limit, metrics."""

    def __init__(self, app: Any, state: ServerState) -> None:
        self.app, self.state = app, state

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        state, path = self.state, scope["path"]
        request_id = uuid.uuid4().hex
        started = time.perf_counter()
        scope.setdefault("state", {}).update(request_id=request_id, started=started)
        status = {"code": 500}

        async def send_counted(message: dict[str, Any]) -> None:
            if message["type"] == "http.response.start":
                status["code"] = message["status"]
            await send(message)

        if state.draining and path not in _OPEN_PATHS and path != "/ready":
            state.metrics.rejected.labels("draining").inc()
            await _refuse(send, Unavailable("the server is draining; retry on another replica", retry_after_s=1))
            return
        declared = _content_length(scope)
        limit = state.config.max_request_bytes
        if declared is not None and declared > limit:
            state.metrics.rejected.labels("too_large").inc()
            await _refuse(send, _too_large(limit), request_id)
            return
        received = 0

        async def receive_limited() -> dict[str, Any]:
            nonlocal received
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > limit:
                    raise _BodyTooLarge
            return message

        predicting = path == "/v1/predict"
        state.in_flight += 1
        state.predicting += predicting
        try:
            await self.app(scope, receive_limited, send_counted)
        except _BodyTooLarge:
            state.metrics.rejected.labels("too_large").inc()
            await _refuse(send, _too_large(limit), request_id)
            status["code"] = 413
        finally:
            state.in_flight -= 1
            state.predicting -= predicting
            route = path if path.startswith(("/v1/", "/health", "/ready", "/metrics")) else "other"
            state.metrics.requests.labels(route, str(status["code"])).inc()
            state.metrics.latency.labels(route).observe(time.perf_counter() - started)


class _BodyTooLarge(Exception):
    pass


def _too_large(limit: int) -> InputTooLarge:
    return InputTooLarge(f"the request body is larger than serve.max_request_bytes = {limit:,} bytes; split it")


def _content_length(scope: dict[str, Any]) -> int | None:
    for key, value in scope.get("headers", []):
        if key == b"content-length":
            try:
                return int(value)
            except ValueError:
                return None  # the HTTP server refuses a malformed Content-Length before it gets here
    return None


async def _refuse(send: Any, exc: AmploopError, request_id: str | None = None) -> None:
    import json

    body = exc.to_dict()
    headers = [(b"content-type", b"application/json")]
    if request_id:
        body["request_id"] = request_id
        headers.append((b"x-request-id", request_id.encode()))
    if isinstance(exc, Unavailable):
        headers += [(b"retry-after", str(exc.details.get("retry_after_s", 1)).encode()), (b"connection", b"close")]
    data = json.dumps(body).encode()
    headers.append((b"content-length", str(len(data)).encode()))
    await send({"type": "http.response.start", "status": exc.http_status, "headers": headers})
    await send({"type": "http.response.body", "body": data})
