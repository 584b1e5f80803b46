"""`amploop demo`: every stage that exists, on the built-in data."""

from __future__ import annotations

from typing import Annotated, Any

import typer
from rich.markup import escape

from amploop.cli._common import JsonFlag, app, command, out, print_json, state
from amploop.cli.data import render_quality, render_summary
from amploop.cli.evaluate import render_evaluation
from amploop.cli.train import render_training

# -- demo --------------------------------------------------------------------------------------


def _render_stage(stage: str, result: Any) -> None:
    if stage == "dataset":
        render_summary(result)
    elif stage == "quality":
        render_quality(result, limit=6)
    elif stage == "train":
        render_training(result.to_dict())
        return
    elif stage == "evaluate":
        render_evaluation(result)
        return
    elif stage == "promote":
        out.print(
            f"promoted {result.name}:{result.to_version} to champion (was {result.from_version})", highlight=False
        )
        return
    elif stage == "card":
        out.print(f"model card: {result.uri}", highlight=False)
        return
    elif stage == "predict":
        out.print(
            f"scored {result.rows:,} rows of {result.source} with {result.model_version} "
            f"({result.rows_per_second:,.0f} rows/s) → {result.output}",
            highlight=False,
        )
        return
    elif stage == "serve":
        out.print(f"serving {result['version']} at {result['url']} ({result['precision']})", highlight=False)
        return
    elif stage == "window":
        render_window(result)
        return
    elif stage == "story":
        render_story(result)
        return
    elif stage == "traffic":
        t = result.to_dict()
        out.print(
            f"{t['concurrency']} clients for {t['seconds']:.1f} s: {t['requests_per_s']:,.0f} requests/s, "
            f"p50 {t['p50_ms']:.1f} ms, p95 {t['p95_ms']:.1f} ms, p99 {t['p99_ms']:.1f} ms"
            + (f", {t['errors']} errors" if t["errors"] else ""),
            highlight=False,
        )
        return
    out.print()


def render_window(w: dict[str, Any]) -> None:
    """One line of the loop's timeline: rows, who served them, accuracy, alarms, decisions."""
    alarms = [a for a in w["alerts"] if a["severity"] == "critical"]
    line = f"rows {w['first_row']:>6,}–{w['last_row']:<6,} {', '.join(w['served_by']):<11} accuracy {w['accuracy']:.3f}"
    if alarms:
        line += f"  [bold red]alarm[/] {escape(alarms[0]['kind'])}"
    for d in w["decisions"]:
        if d["kind"] == "retrain":
            line += f"  → retrain (v{d['champion_version']})"
        elif d["kind"] in ("promoted", "rejected"):
            recent = (d["accuracy"] or {}).get("recent", {})
            scores = f" recent {recent['challenger']:.3f} vs {recent['champion']:.3f}" if recent else ""
            style = "bold green" if d["kind"] == "promoted" else "yellow"
            line += f"  → [{style}]v{d['challenger_version']} {d['kind']}[/]{scores}"
        elif d["kind"] == "blocked":
            line += f"  → held back: {escape(d['reasons'][-1])}"
        else:
            line += f"  → {d['kind']}"
    out.print(line, highlight=False, markup=True)


def render_story(story: dict[str, Any]) -> None:
    accuracy = story["accuracy"]

    def show(value: float | None) -> str:
        return "–" if value is None else f"{value:.3f}"

    alarm = story["first_alarm_row"]
    promoted = story["first_promotion_row"]
    out.print(
        f"[bold]rainfall:[/] first alarm at row {alarm:,} " if alarm is not None else "[bold]rainfall:[/] no alarm; ",
        end="",
        highlight=False,
        markup=True,
    )
    out.print(
        f"(the data changes at row {story['change_row']:,}); {story['retrains']} retrains, "
        + (f"a new champion from row {promoted:,} (now v{story['champion']})" if promoted else "no promotion")
        + f"; accuracy {show(accuracy['before_change'])} before the change, "
        f"{show(accuracy['after_change_before_promotion'])} after it, {show(accuracy['after_promotion'])} "
        f"with the new model",
        highlight=False,
    )
    out.print(f"the story as a page: {story['html']}", highlight=False)


@app.command("demo")
@command
def demo(
    short: Annotated[
        bool, typer.Option("--short", help="Stop the rainfall traffic at row 14,500 (the change and the retrain).")
    ] = False,
    no_ui: Annotated[
        bool, typer.Option("--no-ui", help="End when the story ends, without the dashboard (for CI; --json too).")
    ] = False,
    ui_port: Annotated[
        int, typer.Option(min=0, max=65535, help="The dashboard's port (0 or in use: a free one).")
    ] = 8080,
    as_json: JsonFlag = False,
) -> None:
    """Run every stage on the built-in data: train, evaluate, register, serve, the closed loop on rainfall;
    then keep the dashboard up until Ctrl-C."""
    from amploop.loop.demo import run_demo  # torch, scipy and the whole pipeline: only when the demo runs

    result = run_demo(state.config(), progress=not as_json, short=short, on_stage=None if as_json else _render_stage)
    if as_json:
        print_json(result.to_dict())
        return
    out.print(
        f"[bold green]demo finished[/] in {result.seconds} s: stages run: "
        f"{', '.join(s['stage'] for s in result.stages)}; state in {result.store['db_url']}",
        highlight=False,
        markup=True,
    )
    if not no_ui:
        _dashboard(ui_port)


def _dashboard(port: int) -> None:
    """The dashboard over the demo's store, in the foreground until Ctrl-C."""
    import socket

    from amploop.registry import Store
    from amploop.ui.server import run_ui

    for wanted in (port, 0):  # a busy port is not a reason to end the demo in an error: take a free one
        with socket.socket() as probe:
            try:
                probe.bind(("127.0.0.1", wanted))
            except OSError:
                continue
            port = probe.getsockname()[1]
            break
    with Store.open() as store:
        run_ui(
            store,
            state.config(),
            port=port,
            on_ready=lambda url: out.print(
                f"[bold]dashboard[/] at {url}/ — the owner's view of every model; Ctrl-C stops it",
                highlight=False,
                markup=True,
            ),
        )
