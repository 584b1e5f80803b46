"""`amploop train` (and its torchrun launch) and `amploop bench precision`."""

from __future__ import annotations

import dataclasses
import re
import sys
from pathlib import Path
from typing import Annotated, Any

import numpy as np
import typer
from rich.markup import escape
from rich.table import Table

from amploop.cli._common import JsonFlag, app, bench_app, command, out, print_json, report_error_object, state
from amploop.config import AmploopConfig
from amploop.data import builtin_names, open_dataset
from amploop.data.quality import check_quality
from amploop.errors import ConfigError, DatasetNotFound, QualityError, UsageError
from amploop.names import MAX_NAME_LENGTH, check_name
from amploop.registry import Store, dataset_record

# -- train -------------------------------------------------------------------------------------

_LAUNCHER_FLAGS = (
    "--nproc-per-node",
    "--nnodes",
    "--node-rank",
    "--rdzv-endpoint",
    "--rdzv-id",
    "--max-restarts",
)


def _without_launcher_flags(argv: list[str]) -> list[str]:
    kept, skip = [], False
    for arg in argv:
        if skip:
            skip = False
            continue
        name = arg.split("=", 1)[0]
        if name in _LAUNCHER_FLAGS:
            skip = "=" not in arg
            continue
        kept.append(arg)
    return kept


def check_process_count(processes: int, device: str) -> None:
    """Refuse more processes than this machine has devices for: one GPU per rank on CUDA, one core per rank on CPU."""
    import os

    import torch

    on_cuda = device.startswith("cuda") or (device == "auto" and torch.cuda.is_available())
    if on_cuda:
        available, what = torch.cuda.device_count(), "CUDA GPUs"
    else:
        available, what = os.cpu_count() or 1, "CPU cores"
    if processes > available:
        raise ConfigError(
            f"train.nproc_per_node: {processes} processes but this machine has {available} {what}; "
            f"use --nproc-per-node {available} or fewer"
        )


def default_model_name(dataset_name: str) -> str:
    """The dataset's name made into a valid model name (``my data.csv`` -> ``my-data``)."""
    cleaned = re.sub(r"[^A-Za-z0-9_.\-]+", "-", dataset_name).strip("-._")[:MAX_NAME_LENGTH]
    return cleaned or "model"


def run_training(
    cfg: AmploopConfig,
    *,
    checkpoint_dir: str | None = None,
    resume: bool = False,
    progress: bool = True,
    allow_quality_issues: bool = False,
    reason: str | None = None,
    exclude_suspicious: bool = False,
) -> dict[str, Any] | None:
    """Train as the config says; on rank 0 record the run, datasets and model version. Rank 0's result."""
    from amploop.train.checkpoint import CheckpointManager
    from amploop.train.distributed import setup_distributed, teardown_distributed
    from amploop.train.fit import bundle_from_fit, fit
    from amploop.train.loop import TrainSettings
    from amploop.workspace import Workspace, code_version

    if allow_quality_issues and not (reason and reason.strip()):
        raise ConfigError('--allow-quality-issues needs --reason "why this data may be used"; it goes to the audit log')
    source = cfg.data.source or "adult"
    try:
        dataset = open_dataset(source, target=cfg.data.target)
    except DatasetNotFound as exc:  # here the dataset is a setting: say which one
        raise ConfigError(f"data.source: {exc.message}", **exc.details) from None
    if source not in builtin_names():  # a file: record where it is, so any directory can find it again
        data = cfg.data.model_copy(update={"source": str(Path(source).expanduser().resolve())})
        cfg = cfg.model_copy(update={"data": data})
    name = check_name(cfg.model.name or default_model_name(dataset.name))  # before any path is built from it
    workspace = Workspace.from_env()
    checkpoints = workspace.home / "checkpoints"
    folder = Path(checkpoint_dir) if checkpoint_dir else checkpoints / name
    if not checkpoint_dir and folder.resolve().parent != checkpoints.resolve():
        raise ConfigError(f"model name {name!r} does not make a folder inside {checkpoints}; choose another name")
    if not resume:
        CheckpointManager(folder).check_owned()  # a folder with other files is refused, untouched
    fields = cfg.train.model_dump(exclude={"nproc_per_node"})
    settings = TrainSettings(**fields, checkpoint_dir=str(folder), resume=resume, progress=progress)
    quality = check_quality(
        dataset, slice_columns=cfg.data.slice_columns, label_issues=exclude_suspicious, seed=cfg.train.seed
    )
    if quality.blocking and not allow_quality_issues:
        first = quality.blocking[0]
        more = f" (and {len(quality.blocking) - 1} more)" if len(quality.blocking) > 1 else ""
        raise QualityError(
            f'training refused: {first.message}{more}; fix the data, or pass --allow-quality-issues --reason "..."',
            findings=[f.message for f in quality.blocking],
        )
    exclude = np.array([r.row for r in quality.suspicious_rows], dtype=np.int64) if exclude_suspicious else None
    ctx = setup_distributed(settings.device, timeout_s=settings.collective_timeout_s)
    store = Store.open(workspace) if ctx.is_main else None
    run = None
    try:
        if store is not None:
            run = store.start_run(
                "train",
                config=cfg.to_dict(),
                dataset_fingerprints={"source": dataset.fingerprint},
                code_version=code_version(),
            )
            if quality.blocking:  # allowed above, with a reason: keep both
                store.append_audit(
                    "train.quality_override",
                    f"dataset:{dataset.fingerprint}",
                    reason=reason or "",
                    details={"run_id": run.id, "findings": [f.message for f in quality.blocking]},
                )
        result = fit(
            dataset,
            architecture=cfg.model.architecture,
            settings=settings,
            options=cfg.model.options,
            validation_fraction=cfg.data.validation_fraction,
            test_fraction=cfg.data.test_fraction,
            impute_missing=cfg.data.impute_missing,
            ctx=ctx,
            exclude=exclude,
        )
        if store is None or run is None:
            return None
        trained = result.train_result
        for part in (dataset, result.splits.train, result.splits.validation, result.splits.test):
            store.record_dataset(dataset_record(part))
        fingerprints = {
            "source": dataset.fingerprint,
            "train": result.splits.train.fingerprint,
            "validation": result.splits.validation.fingerprint,
            "test": result.splits.test.fingerprint,
        }
        summary = {
            **result.metrics,
            "precision": trained.precision.mode,
            "precision_reason": trained.precision.reason,
            "samples_per_s": trained.throughput.samples_per_s,
            "quality": quality.counts(),
            "excluded_suspicious_rows": 0 if exclude is None else len(exclude),
        }
        with store.write() as session:  # the run's fingerprints are final only now
            from amploop.registry.tables import RunRow

            session.get(RunRow, run.id).dataset_fingerprints = fingerprints
        store.finish_run(run.id, metrics=summary, timings={"seconds": trained.seconds, **trained.throughput.to_dict()})
        bundle = bundle_from_fit(result)
        if result.task == "classification":  # temperature scaling, fitted on the validation rows
            from amploop.evaluate.calibration import temperature_for_fit

            bundle = dataclasses.replace(bundle, temperature=temperature_for_fit(result))
        version = store.register_model_version(name, bundle.to_files(), run_id=run.id, metrics=result.metrics)
        return {
            "run_id": run.id,
            "model": {"name": version.name, "version": version.version, "artifact_uri": version.artifact_uri},
            "metrics": result.metrics,
            "precision": trained.precision.to_dict(),
            "throughput": trained.throughput.to_dict(),
            "samples_per_s": trained.throughput.samples_per_s,
            "data": fingerprints,
            "quality": quality.counts(),
            "excluded_suspicious_rows": 0 if exclude is None else len(exclude),
            "train": trained.to_dict(),
        }
    except BaseException as exc:
        if store is not None and run is not None:
            store.finish_run(run.id, status="failed", error=f"{type(exc).__name__}: {exc}"[:2000])
        raise
    finally:
        if store is not None:
            store.close()
        teardown_distributed(ctx)


@app.command("train")
@command
def train_command(
    dataset: Annotated[str | None, typer.Option(help="Built-in dataset name or data file.")] = None,
    target: Annotated[str | None, typer.Option(help="Label column of a file.")] = None,
    model: Annotated[str | None, typer.Option(help="Architecture: mlp, tabular, cnn, resnet, gpt.")] = None,
    name: Annotated[str | None, typer.Option(help="Registered model name (default: the dataset's).")] = None,
    precision: Annotated[str | None, typer.Option(help="auto, fp32, tf32, bf16 or fp16.")] = None,
    epochs: Annotated[int | None, typer.Option()] = None,
    batch_size: Annotated[int | None, typer.Option(help="Per process.")] = None,
    learning_rate: Annotated[float | None, typer.Option()] = None,
    seed: Annotated[int | None, typer.Option()] = None,
    device: Annotated[str | None, typer.Option(help="auto, cpu, cuda or cuda:N.")] = None,
    compile: Annotated[str | None, typer.Option(help="torch.compile: auto (CUDA only), on, off.")] = None,
    max_steps: Annotated[int | None, typer.Option(help="Stop after this many optimizer steps.")] = None,
    checkpoint_every: Annotated[int | None, typer.Option(help="Checkpoint every N steps.")] = None,
    checkpoint_dir: Annotated[str | None, typer.Option(help="Default: AMPLOOP_HOME/checkpoints/NAME.")] = None,
    resume: Annotated[bool, typer.Option("--resume", help="Continue from the latest checkpoint.")] = False,
    nproc_per_node: Annotated[int | None, typer.Option(help="Processes per machine (torchrun).")] = None,
    nnodes: Annotated[str, typer.Option(help="Machines (torchrun), e.g. 2 or 1:4.")] = "1",
    node_rank: Annotated[int | None, typer.Option(min=0, help="This machine's rank (static rendezvous).")] = None,
    rdzv_endpoint: Annotated[str | None, typer.Option(help="host:port of the rendezvous.")] = None,
    rdzv_id: Annotated[str | None, typer.Option(help="Job id shared by all machines.")] = None,
    max_restarts: Annotated[int, typer.Option(min=0, max=100, help="torchrun restarts after a failure.")] = 0,
    allow_quality_issues: Annotated[
        bool, typer.Option("--allow-quality-issues", help="Train despite blocking data findings (needs --reason).")
    ] = False,
    reason: Annotated[str | None, typer.Option(help="Why; recorded in the audit log.")] = None,
    exclude_suspicious: Annotated[
        bool, typer.Option("--exclude-suspicious", help="Drop label issues and outliers from the training rows.")
    ] = False,
    as_json: JsonFlag = False,
) -> None:
    """Train a model, record the run, and register the result as a new model version."""
    from amploop.train.distributed import in_torchrun, launch_torchrun

    overrides = {
        "data.source": dataset,
        "data.target": target,
        "model.architecture": model,
        "model.name": name,
        "train.precision": precision,
        "train.epochs": epochs,
        "train.batch_size": batch_size,
        "train.learning_rate": learning_rate,
        "train.seed": seed,
        "train.device": device,
        "train.compile": compile,
        "train.max_steps": max_steps,
        "train.checkpoint_every_steps": checkpoint_every,
        "train.nproc_per_node": nproc_per_node,
    }
    if not re.fullmatch(r"[1-9]\d{0,3}(:[1-9]\d{0,3})?", nnodes):
        raise UsageError(f"--nnodes {nnodes[:40]!r}: give a number of machines, as 2, or a range, as 1:4")
    cfg = state.config(overrides)
    processes = cfg.train.nproc_per_node
    if processes > 1 and not in_torchrun():
        check_process_count(processes, cfg.train.device)
    if (processes > 1 or nnodes != "1") and not in_torchrun():
        outcome = launch_torchrun(
            _without_launcher_flags(sys.argv[1:]),
            nproc_per_node=processes,
            nnodes=nnodes,
            node_rank=node_rank,
            rdzv_endpoint=rdzv_endpoint,
            rdzv_id=rdzv_id,
            max_restarts=max_restarts,
        )
        if outcome.error is not None:  # the failing worker's error, printed once for the whole job
            raise typer.Exit(report_error_object(outcome.error["error"], outcome.error["exit_code"], as_json))
        raise typer.Exit(outcome.exit_code)
    result = run_training(
        cfg,
        checkpoint_dir=checkpoint_dir,
        resume=resume,
        progress=not as_json,
        allow_quality_issues=allow_quality_issues,
        reason=reason,
        exclude_suspicious=exclude_suspicious,
    )
    if result is None:  # ranks other than 0 print nothing
        return
    if as_json:
        print_json(result)
        return
    render_training(result)


def render_training(result: dict[str, Any]) -> None:
    m, p, t = result["metrics"], result["precision"], result["throughput"]
    acc = m.get("test_accuracy")
    quality = f"test accuracy {acc:.4f}" if acc is not None else f"test RMSE {m.get('test_rmse', 0):.4f}"
    out.print(
        f"[bold]{escape(result['model']['name'])}[/] version {result['model']['version']}: {quality}",
        highlight=False,
        markup=True,
    )
    out.print(
        f"precision {p['mode']} ({p['reason']}); {t['samples_per_s']:,.0f} samples/s, "
        f"step {t['step_time_ms']} ms, data wait {t['data_wait_fraction']:.1%}",
        highlight=False,
    )


@bench_app.command("precision")
@command
def bench_precision(
    dataset: Annotated[str, typer.Option(help="Built-in dataset name or data file.")] = "mnist5k",
    model: Annotated[str, typer.Option(help="Architecture.")] = "cnn",
    modes: Annotated[str, typer.Option(help="Comma-separated: fp32, tf32, bf16, fp16.")] = "fp32,bf16",
    epochs: Annotated[int, typer.Option()] = 8,
    batch_size: Annotated[int, typer.Option()] = 128,
    learning_rate: Annotated[float, typer.Option()] = 2e-3,
    seed: Annotated[int, typer.Option()] = 0,
    device: Annotated[str, typer.Option(help="auto, cpu, cuda.")] = "auto",
    as_json: JsonFlag = False,
) -> None:
    """Train the same model under several precisions and compare speed, memory, accuracy, agreement."""
    from amploop.train.compare import compare_precisions
    from amploop.train.loop import TrainSettings

    options = {"epochs": epochs, "batch_size": batch_size, "learning_rate": learning_rate, "seed": seed}
    checked = state.config({f"train.{k}": v for k, v in {**options, "device": device}.items()}).train  # same rules
    settings = TrainSettings(
        epochs=checked.epochs,
        batch_size=checked.batch_size,
        learning_rate=checked.learning_rate,
        seed=checked.seed,
        device=checked.device,
        early_stopping_patience=None,
    )
    wanted = [m.strip() for m in modes.split(",") if m.strip()]
    comparison = compare_precisions(open_dataset(dataset), architecture=model, modes=wanted, settings=settings)
    if as_json:
        print_json(comparison.to_dict())
        return
    table = Table(
        title=f"{comparison.dataset} / {comparison.architecture} on {comparison.device}, "
        f"seed {comparison.seed}, {comparison.steps} steps"
    )
    for column in (
        "mode",
        "samples/s",
        "vs fp32",
        "peak memory",
        "final loss",
        "val acc",
        "test acc",
        "agreement",
        "note",
    ):
        table.add_column(column)
    for r in comparison.rows:
        memory = f"{r.peak_memory_bytes / 2**20:,.0f} MiB" if r.peak_memory_bytes else "n/a (CPU)"
        table.add_row(
            r.mode,
            f"{r.samples_per_s:,.0f}",
            f"{r.speed_vs_fp32:.2f}x",
            memory,
            f"{r.final_loss:.4f}",
            percent(r.validation_accuracy),
            percent(r.test_accuracy),
            percent(r.agreement_with_fp32),
            r.note,
        )
    out.print(table)


def percent(value: float | None) -> str:
    return "" if value is None else f"{100 * value:.2f}%"
