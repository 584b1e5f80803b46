"""The demo: every stage that exists, end to end, on the built-in data.

Record the built-in datasets with their datasheets → check adult's quality → train a model on
it → evaluate it against its release gate → promote it when the gate passes → write its model
card. ``amploop demo`` renders each stage as it finishes through the ``on_stage`` callback.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from amploop.config import AmploopConfig
from amploop.data import builtin_info, builtin_names, load_builtin
from amploop.data.quality import check_quality
from amploop.registry.aliases import promote
from amploop.registry.cards import write_model_card
from amploop.registry.evaluations import evaluate_version
from amploop.registry.records import dataset_record
from amploop.registry.store import Store
from amploop.registry.training import train_version

__all__ = ["DemoResult", "run_demo"]

DEMO_EPOCHS = 3  # enough for adult's MLP to pass the default gate in seconds on a laptop


@dataclass(frozen=True)
class DemoResult:
    project: str
    stages: list[dict[str, Any]]
    datasets: list[dict[str, Any]]
    store: dict[str, Any]
    seconds: float

    def to_dict(self) -> dict[str, Any]:
        return dict(self.__dict__)


def run_demo(
    config: AmploopConfig | None = None,
    *,
    progress: bool = False,
    on_stage: Callable[[str, Any], None] | None = None,
) -> DemoResult:
    """Run every stage; ``on_stage(name, result)`` is called as each finishes (for display)."""
    started = time.perf_counter()
    config = config or AmploopConfig()
    tell = on_stage or (lambda stage, result: None)
    stages: list[dict[str, Any]] = []
    with Store.open() as store:
        summaries = []
        for name in builtin_names():
            dataset, info = load_builtin(name), builtin_info(name)
            sheet = {**info.datasheet, "licence": info.licence, "attribution": info.attribution}
            store.record_dataset(dataset_record(dataset, datasheet=sheet))
            summaries.append(dataset.summary())
            tell("dataset", summaries[-1])
        stages.append(
            {
                "stage": "data",
                "datasets": [s.name for s in summaries],
                "recorded": [r.name for r in store.list_datasets()],
            }
        )
        quality = check_quality(load_builtin("adult"), slice_columns=builtin_info("adult").slice_columns)
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
        tell("quality", quality)
        trained = train_version(
            config.model_copy(
                update={
                    "data": config.data.model_copy(update={"source": "adult"}),
                    "train": config.train.model_copy(update={"epochs": DEMO_EPOCHS}),
                }
            ),
            store=store,
            progress=progress,
        )
        assert trained is not None  # the demo runs as one process: rank 0
        summary = trained.to_dict()
        stages.append(
            {
                "stage": "train",
                "model": summary["model"],
                "metrics": summary["metrics"],
                "precision": summary["precision"]["mode"],
                "precision_reason": summary["precision"]["reason"],
                "samples_per_s": summary["samples_per_s"],
            }
        )
        tell("train", trained)
        evaluated = evaluate_version(trained.reference, config, store=store)
        report = evaluated.to_dict()
        stages.append(
            {
                "stage": "evaluate",
                "verdict": report["verdict"]["verdict"],
                "ece_before": report["calibration"]["ece_before"],
                "ece_after": report["calibration"]["ece_after"],
                "worst_slice": report["slices"].get("worst"),
                "report": evaluated.stored.html_uri,
            }
        )
        tell("evaluate", evaluated)
        version = evaluated.version
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
            tell("promote", move)
        else:
            stages.append({"stage": "promote", "alias": "champion", "skipped": "the release gate failed"})
        card = write_model_card(store, version.name, version.version, config=config, fmt="html")
        stages[-1]["card"] = card.uri
        tell("card", card)
        info = store.info()
    return DemoResult(
        project=config.project.name,
        stages=stages,
        datasets=[{"name": s.name, "rows": s.rows, "fingerprint": s.fingerprint} for s in summaries],
        store=info.to_dict(),
        seconds=round(time.perf_counter() - started, 2),
    )
