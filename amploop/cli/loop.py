"""`amploop loop run | status | history`: the closed loop of one model, from the command line."""

from __future__ import annotations

import signal
from typing import Annotated, Any

import typer
from rich.table import Table

from amploop.cli._common import JsonFlag, app, command, err, out, print_json, state

loop_app = typer.Typer(help="The closed loop: watch, retrain, promote, roll back.", no_args_is_help=True)
app.add_typer(loop_app, name="loop")

NAME = Annotated[str, typer.Argument(help="The model whose loop it is.")]


def _versions(d: dict[str, Any]) -> str:
    return f"v{d['champion_version']}" + (f" → v{d['challenger_version']}" if d["challenger_version"] else "")


def _decision_line(d: dict[str, Any]) -> str:
    return f"{d['at'][:19]}  {d['kind']:<11} {_versions(d):<10} {'; '.join(d['reasons'])}"


def _print_step(step: Any) -> None:
    found = step.to_dict()
    if found["acted"] == "waiting":
        out.print(f"{step.model}: waiting; the lease is held by {found['lease_holder']}", highlight=False)
        return
    out.print(
        f"{step.model}: {found['acted']} (champion v{found['champion']}, {found['new_windows']} new "
        f"window{'' if found['new_windows'] == 1 else 's'}, "
        f"{found['seconds']:.1f} s)",
        highlight=False,
    )
    for d in found["decisions"]:
        out.print("  " + _decision_line(d), highlight=False)


@loop_app.command("run")
@command
def run_command(
    name: NAME,
    once: Annotated[bool, typer.Option("--once", help="One step, then exit.")] = False,
    interval: Annotated[
        float | None,
        typer.Option("--interval", min=0.01, help="Seconds between steps (default loop.check_interval_s)."),
    ] = None,
    as_json: JsonFlag = False,
) -> None:
    """Watch NAME's traffic and act: retrain, promote or roll back, as amploop.yaml's loop section says.

    SIGTERM or Ctrl-C lets the current step finish, then releases the model's lease; a second one
    abandons the step (the champion stays as it was).
    """
    from amploop.loop.controller import LoopController
    from amploop.registry import Store

    config = state.config()
    with Store.open() as store:
        controller = LoopController(store, name, config, progress=False)
        if not config.loop.enabled and not as_json:
            err.print(
                "loop.enabled is false: the loop watches and records what it would do, and changes nothing",
                highlight=False,
            )

        def stop(signum: int, frame: Any) -> None:
            if controller.stopping:
                raise KeyboardInterrupt
            controller.stop()
            err.print("stopping after this step (again to abandon it)", highlight=False)

        previous = {s: signal.signal(s, stop) for s in (signal.SIGTERM, signal.SIGINT)}
        try:
            steps = controller.run(once=once, interval_s=interval, on_step=None if as_json else _print_step)
        finally:
            for s, handler in previous.items():
                signal.signal(s, handler)
    if as_json:
        print_json({"model": name, "holder": controller.holder, "steps": [s.to_dict() for s in steps]})


@loop_app.command("status")
@command
def status_command(name: NAME, as_json: JsonFlag = False) -> None:
    """Where NAME's loop stands: champion, who holds its lease, the newest window, the last decisions."""
    from amploop.loop.controller import loop_status
    from amploop.registry import Store

    with Store.open() as store:
        found = loop_status(store, name, limit=5)
    if as_json:
        print_json(found)
        return
    lease = found["lease"]
    held = "nobody" if lease is None or not lease["active"] else f"{lease['holder']} until {lease['expires_at'][:19]}"
    out.print(f"{name}: champion v{found['champion']}; lease: {held}", highlight=False)
    window = found["newest_window"]
    if window is None:
        out.print("no window of its traffic reported yet", highlight=False)
    else:
        realized = window["realized"]
        measured = (
            "" if realized is None else f"; realized accuracy {realized['accuracy']:.3f} ({realized['n']} labels)"
        )
        out.print(
            f"newest window of v{found['champion']}'s traffic: its rows {window['rows'][0]:,}–{window['rows'][1]:,}, "
            f"{'drifted' if window['drifted'] else 'no drift'}{measured}",
            highlight=False,
        )
    for d in found["decisions"]:
        out.print("  " + _decision_line(d), highlight=False)


@loop_app.command("history")
@command
def history_command(
    name: NAME,
    limit: Annotated[int, typer.Option(min=1, help="The newest this many decisions.")] = 50,
    as_json: JsonFlag = False,
) -> None:
    """Every decision of NAME's loop, oldest first, with its reasons."""
    from amploop.registry import Store

    with Store.open() as store:
        store.get_model_version(name)
        decisions = [d.to_dict() for d in store.loop_decisions(name, limit=limit)]
    if as_json:
        print_json({"model": name, "decisions": decisions})
        return
    if not decisions:
        out.print(f"{name}: the loop has decided nothing yet", highlight=False)
        return
    table = Table("at", "decision", "versions", "why")
    for d in decisions:
        table.add_row(d["at"][:19], d["kind"], _versions(d), "; ".join(d["reasons"]))
    out.print(table)
