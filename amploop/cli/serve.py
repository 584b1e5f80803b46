"""`amploop serve`: the prediction server."""

from __future__ import annotations

from typing import TYPE_CHECKING, Annotated, Any

import typer

from amploop.cli._common import JsonFlag, app, command, err, out, print_json, state

if TYPE_CHECKING:
    from amploop.serve.state import ServerState


@app.command("serve")
@command
def serve_command(
    model: Annotated[str, typer.Argument(help="NAME@ALIAS (followed as it moves), NAME:VERSION or NAME.")],
    host: Annotated[str | None, typer.Option(help="Address to bind (default 127.0.0.1: this machine only).")] = None,
    port: Annotated[int | None, typer.Option(help="Port (default 8000).")] = None,
    precision: Annotated[str | None, typer.Option(help="auto, fp32, bf16, fp16 or int8.")] = None,
    runtime: Annotated[str | None, typer.Option(help="torch or onnx (int8 always runs on ONNX Runtime).")] = None,
    max_batch_size: Annotated[int | None, typer.Option(help="Most rows in one forward pass.")] = None,
    max_wait_ms: Annotated[float | None, typer.Option(help="Longest a request waits to be batched.")] = None,
    prediction_log: Annotated[
        bool | None, typer.Option("--prediction-log/--no-prediction-log", help="Log each answered request.")
    ] = None,
    require_key: Annotated[
        bool | None, typer.Option("--require-key/--open", help="Predict needs an API key (reader or operator).")
    ] = None,
    shadow: Annotated[str | None, typer.Option(help="A challenger that also scores each request; logged only.")] = None,
    canary: Annotated[str | None, typer.Option(help="A version that answers --canary-percent of requests.")] = None,
    canary_percent: Annotated[float | None, typer.Option(help="Share of requests the canary answers (0-100).")] = None,
    ui: Annotated[bool, typer.Option("--ui/--no-ui", help="The dashboard at /ui beside the API.")] = True,
    as_json: JsonFlag = False,
) -> None:
    """Serve a model over HTTP with dynamic batching, until SIGTERM or Ctrl-C (which drain first)."""
    from amploop.registry.store import Store
    from amploop.serve.server import serve

    flags: dict[str, Any] = {
        "serve.host": host,
        "serve.port": port,
        "serve.precision": precision,
        "serve.runtime": runtime,
        "serve.max_batch_size": max_batch_size,
        "serve.max_wait_ms": max_wait_ms,
        "serve.prediction_log": prediction_log,
        "serve.require_key_for_predict": require_key,
        "serve.shadow": shadow,
        "serve.canary": canary,
        "serve.canary_percent": canary_percent,
    }
    settings = state.config({k: v for k, v in flags.items() if v is not None})
    config = settings.serve

    def ready(url: str, server: ServerState) -> None:
        served = server.primary.slot.current
        assert served is not None
        if as_json:
            print_json({"event": "ready", "url": url, **server.describe()})
            return
        out.print(
            f"serving {served.reference} ({model}) at {url} — {served.precision} on {served.runtime}, "
            f"batches up to {config.max_batch_size} rows within {config.max_wait_ms:g} ms",
            highlight=False,
        )
        if served.parity is not None:
            p = served.parity
            out.print(
                f"  {p.precision} agrees with fp32 on {p.agreement:.2%} of {p.rows} holdout rows", highlight=False
            )
        for slot in server.slots()[1:]:
            if slot.current is not None:
                out.print(f"  {server.model_slot_name(slot)}: {slot.current.reference}", highlight=False)
        out.print(f"  API docs at {url}/docs, metrics at {url}/metrics; Ctrl-C drains and stops", highlight=False)
        if ui:
            out.print(f"  dashboard at {url}/ui/", highlight=False)

    with Store.open() as store:
        mounts = {}
        if ui:
            from amploop.ui.app import create_ui_app

            mounts["/ui"] = create_ui_app(store, settings)
        summary = serve(model, config, store=store, on_ready=ready, mounts=mounts)
    if as_json:
        print_json({"event": "stopped", **summary.to_dict()})
    else:
        err.print(
            f"stopped: served {', '.join(summary.served)}; {summary.log_written:,} requests logged"
            + (f", {summary.log_dropped:,} dropped from the log (buffer full)" if summary.log_dropped else ""),
            highlight=False,
        )
