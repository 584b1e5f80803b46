"""`amploop train` (and its torchrun launch) and `amploop bench precision`."""

from __future__ import annotations

import re
import sys
from typing import Annotated, Any

import typer
from rich.markup import escape
from rich.table import Table

from amploop.cli._common import JsonFlag, app, bench_app, command, out, print_json, report_error_object, state
from amploop.data import open_dataset
from amploop.errors import UsageError

# -- train -------------------------------------------------------------------------------------

DEFAULT_WIDTH, DEFAULT_DEPTH = 256, 2  # the mlp's own default hidden layers, when only one of the two is given

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
    seed: Annotated[int | None, typer.Option(help="Seeds initialisation and data order.")] = None,
    split_seed: Annotated[
        int | None, typer.Option(help="Seeds the train/validation/test split (default 0), apart from --seed.")
    ] = None,
    min_steps: Annotated[
        int | None, typer.Option(min=1, help="Without --epochs: optimizer steps a small table still gets (1000).")
    ] = None,
    width: Annotated[int | None, typer.Option(min=1, help="mlp/tabular: units per hidden layer.")] = None,
    depth: Annotated[int | None, typer.Option(min=1, max=64, help="mlp/tabular: hidden layers.")] = None,
    dropout: Annotated[float | None, typer.Option(min=0.0, max=0.95, help="mlp/tabular: dropout rate.")] = None,
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
    exclude_label_issues: Annotated[
        bool, typer.Option("--exclude-label-issues", help="Drop rows whose label looks wrong from training.")
    ] = False,
    exclude_outliers: Annotated[
        bool, typer.Option("--exclude-outliers", help="Drop outlier rows from training.")
    ] = False,
    exclude_suspicious: Annotated[
        bool, typer.Option("--exclude-suspicious", help="Both --exclude-label-issues and --exclude-outliers.")
    ] = False,
    as_json: JsonFlag = False,
) -> None:
    """Train a model, record the run, and register the result as a new model version."""
    from amploop.registry.training import train_version
    from amploop.train.distributed import check_process_count, in_torchrun, launch_torchrun

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
        "train.min_steps": min_steps,
        "data.split_seed": split_seed,
        "model.options.dropout": dropout,
        "train.device": device,
        "train.compile": compile,
        "train.max_steps": max_steps,
        "train.checkpoint_every_steps": checkpoint_every,
        "train.nproc_per_node": nproc_per_node,
    }
    if not re.fullmatch(r"[1-9]\d{0,3}(:[1-9]\d{0,3})?", nnodes):
        raise UsageError(f"--nnodes {nnodes[:40]!r}: give a number of machines, as 2, or a range, as 1:4")
    if width is not None or depth is not None:
        overrides["model.options.hidden"] = [width or DEFAULT_WIDTH] * (depth or DEFAULT_DEPTH)
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
    outcome = train_version(
        cfg,
        checkpoint_dir=checkpoint_dir,
        resume=resume,
        progress=not as_json,
        allow_quality_issues=allow_quality_issues,
        reason=reason,
        exclude_label_issues=exclude_label_issues or exclude_suspicious,
        exclude_outliers=exclude_outliers or exclude_suspicious,
    )
    if outcome is None:  # ranks other than 0 print nothing
        return
    if as_json:
        print_json(outcome.to_dict())
        return
    render_training(outcome.to_dict())


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
    for note in result.get("notes", []):
        out.print(note, highlight=False, markup=False)
    excluded = {kind: n for kind, n in result.get("excluded_rows", {}).items() if n}
    if excluded:
        out.print(
            "kept out of training: " + ", ".join(f"{n} {kind.replace('_', ' ')} rows" for kind, n in excluded.items()),
            highlight=False,
        )
    findings = result.get("findings", [])
    if findings:
        out.print("data findings (not blocking):", highlight=False)
        for line in findings:
            out.print(f"  - {line}", highlight=False, markup=False)


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
    from amploop.config import TrainConfig
    from amploop.train.compare import compare_precisions

    options = {"epochs": epochs, "batch_size": batch_size, "learning_rate": learning_rate, "seed": seed}
    checked = state.config({f"train.{k}": v for k, v in {**options, "device": device}.items()}).train  # same rules
    config = TrainConfig(**{k: getattr(checked, k) for k in (*options, "device")}, early_stopping_patience=None)
    wanted = [m.strip() for m in modes.split(",") if m.strip()]
    comparison = compare_precisions(open_dataset(dataset), architecture=model, modes=wanted, config=config)
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
