"""`amploop demo`: every stage that exists, on the built-in data."""

from __future__ import annotations

from typing import Any

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
    elif stage == "monitor":
        from amploop.cli.monitor import print_monitor
        from amploop.loop.demo import DEMO_TRAINING_ROWS

        print_monitor(result, alerts=False, row_offset=DEMO_TRAINING_ROWS)  # rows of the rainfall series
        return
    elif stage == "alarm":
        row = result["first_alarm_row"]
        if row is None:
            out.print("no critical alarm in the rainfall traffic", highlight=False)
        else:
            out.print(
                f"[bold red]first alarm[/] at rainfall row {row:,} (the series changes near row 12,000): "
                f"{result['first_alarm']['message']}",
                highlight=False,
                markup=True,
            )
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


@app.command("demo")
@command
def demo(as_json: JsonFlag = False) -> None:
    """Run every stage that exists on the built-in data, end to end: serving, then rainfall traffic monitored."""
    from amploop.loop.demo import run_demo  # torch, scipy and the whole pipeline: only when the demo runs

    result = run_demo(state.config(), progress=not as_json, on_stage=None if as_json else _render_stage)
    if as_json:
        print_json(result.to_dict())
        return
    out.print(
        f"[bold green]demo finished[/] in {result.seconds} s: stages run: "
        f"{', '.join(s['stage'] for s in result.stages)}; state in {result.store['db_url']}",
        highlight=False,
        markup=True,
    )
