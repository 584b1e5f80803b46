"""`amploop demo`: every stage that exists, on the built-in data."""

from __future__ import annotations

import time
from typing import Any

from amploop.cli._common import JsonFlag, app, command, out, print_json, state
from amploop.cli.data import render_quality, render_summary
from amploop.cli.evaluate import render_evaluation, run_evaluation
from amploop.cli.models import write_model_card
from amploop.cli.train import render_training, run_training
from amploop.data import builtin_info, builtin_names, load_builtin
from amploop.data.quality import check_quality
from amploop.registry import Store, dataset_record

# -- demo --------------------------------------------------------------------------------------


@app.command("demo")
@command
def demo(as_json: JsonFlag = False) -> None:
    """Run every stage that exists on the built-in data, end to end."""
    started = time.perf_counter()
    cfg = state.config()
    stages: list[dict[str, Any]] = []
    recorded = []
    with Store.open() as store:
        for name in builtin_names():
            dataset = load_builtin(name)
            info = builtin_info(name)
            sheet = {**info.datasheet, "licence": info.licence, "attribution": info.attribution}
            store.record_dataset(dataset_record(dataset, datasheet=sheet))
            recorded.append(dataset.summary())
            if not as_json:
                render_summary(recorded[-1])
                out.print()
        stages.append(
            {
                "stage": "data",
                "datasets": [s.name for s in recorded],
                "recorded": [r.name for r in store.list_datasets()],
            }
        )
    adult = load_builtin("adult")
    quality = check_quality(adult, slice_columns=builtin_info("adult").slice_columns)
    stages.append(
        {
            "stage": "quality",
            "dataset": "adult",
            "counts": quality.counts(),
            "findings": [f"{f.severity}: {f.check}: {f.message}" for f in quality.findings],
            "suspicious_rows": len(quality.suspicious_rows),
            "seconds": quality.seconds,
        }
    )
    if not as_json:
        render_quality(quality, limit=6)
        out.print()
    trained = run_training(
        cfg.model_copy(
            update={
                "data": cfg.data.model_copy(update={"source": "adult"}),
                "train": cfg.train.model_copy(update={"epochs": 3}),
            }
        ),
        progress=not as_json,
    )
    assert trained is not None  # the demo runs as one process: rank 0
    stages.append(
        {
            "stage": "train",
            "model": trained["model"],
            "metrics": trained["metrics"],
            "precision": trained["precision"]["mode"],
            "precision_reason": trained["precision"]["reason"],
            "samples_per_s": trained["samples_per_s"],
        }
    )
    if not as_json:
        render_training(trained)
    evaluated = run_evaluation(cfg, f"{trained['model']['name']}:{trained['model']['version']}")
    stages.append(
        {
            "stage": "evaluate",
            "verdict": evaluated.report.verdict["verdict"],
            "ece_before": evaluated.report.calibration["ece_before"],
            "ece_after": evaluated.report.calibration["ece_after"],
            "worst_slice": evaluated.report.slices.get("worst"),
            "report": evaluated.stored.html_uri,
        }
    )
    if not as_json:
        render_evaluation(evaluated)
    version = evaluated.version
    with Store.open() as store:
        from amploop.registry.aliases import promote

        if evaluated.report.passed:
            move = promote(store, version.name, version.version, reason="demo: passed its release gate")
            stages.append(
                {
                    "stage": "promote",
                    "alias": "champion",
                    "from_version": move.from_version,
                    "to_version": move.to_version,
                }
            )
            if not as_json:
                out.print(
                    f"promoted {version.name}:{version.version} to champion (was {move.from_version})", highlight=False
                )
        else:
            stages.append({"stage": "promote", "alias": "champion", "skipped": "the release gate failed"})
        _, card_uri = write_model_card(store, cfg, version.name, version.version, "html")
        stages[-1]["card"] = card_uri
        if not as_json:
            out.print(f"model card: {card_uri}", highlight=False)
        info_store = store.info()
    result = {
        "project": cfg.project.name,
        "stages": stages,
        "datasets": [{"name": s.name, "rows": s.rows, "fingerprint": s.fingerprint} for s in recorded],
        "store": info_store.to_dict(),
        "seconds": round(time.perf_counter() - started, 2),
    }
    if as_json:
        print_json(result)
        return
    out.print(
        f"[bold green]demo finished[/] in {result['seconds']} s: stages run: "
        f"{', '.join(s['stage'] for s in stages)}; state in {info_store.db_url}",
        highlight=False,
        markup=True,
    )
