"""`amploop ui`: the dashboard on its own port."""

from __future__ import annotations

from typing import Annotated

import typer

from amploop.cli._common import app, command, out


@app.command("ui")
@command
def ui_command(
    host: Annotated[str, typer.Option(help="Address to listen on (127.0.0.1: this machine only).")] = "127.0.0.1",
    port: Annotated[int, typer.Option(min=1, max=65535, help="Port.")] = 8080,
) -> None:
    """Serve the dashboard: each model's health, versions, monitoring and loop decisions, until Ctrl-C."""
    from amploop.cli._common import state
    from amploop.registry import Store
    from amploop.ui.server import run_ui

    with Store.open() as store:
        run_ui(
            store,
            state.config(),
            host=host,
            port=port,
            on_ready=lambda url: out.print(f"dashboard at {url}/ — Ctrl-C stops it", highlight=False),
        )
