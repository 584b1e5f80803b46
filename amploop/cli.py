"""The ``amploop`` command line: a thin layer that calls stage functions and renders results.

Every command takes ``--json`` and then prints exactly its result object as JSON on stdout.
Errors print one line on stderr (and, under ``--json``, the error object on stdout) and exit
with the error class's code (see :mod:`amploop.errors`).
"""

from __future__ import annotations

import dataclasses
import functools
import json
import os
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Any, TypeVar

import numpy as np
import typer
from rich.console import Console
from rich.markup import escape
from rich.table import Table

from amploop import __version__
from amploop.config import AmploopConfig, load_config
from amploop.data import builtin_info, builtin_names, load_builtin, open_dataset
from amploop.data.dataset import DatasetSummary
from amploop.data.quality import QualityReport, check_quality
from amploop.errors import AmploopError, ConfigError, DatasetNotFound, GateFailed, QualityError
from amploop.registry import Store, dataset_record

app = typer.Typer(
    name="amploop",
    help="Train, evaluate, register, serve, watch and retrain models on one path.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)
data_app = typer.Typer(help="Look at datasets: built-in names or files.", no_args_is_help=True)
store_app = typer.Typer(help="The metadata store and artifact storage.", no_args_is_help=True)
config_app = typer.Typer(help="The effective configuration.", no_args_is_help=True)
app.add_typer(data_app, name="data")
app.add_typer(store_app, name="store")
app.add_typer(config_app, name="config")
bench_app = typer.Typer(help="Measure trade-offs side by side.", no_args_is_help=True)
models_app = typer.Typer(help="Registered models: versions, aliases and their history.", no_args_is_help=True)
app.add_typer(models_app, name="models")
app.add_typer(bench_app, name="bench")

out = Console(soft_wrap=True, markup=False)  # data is printed as is; markup=True where styled
err = Console(stderr=True, soft_wrap=True)

JsonFlag = Annotated[bool, typer.Option("--json", help="Print the result as JSON on stdout.")]
F = TypeVar("F", bound=Callable[..., Any])


@dataclass
class _State:
    config_path: Path | None = None

    def config(self, overrides: dict[str, Any] | None = None) -> AmploopConfig:
        return load_config(self.config_path, overrides=overrides)


_state = _State()


def _print_json(obj: Any) -> None:
    sys.stdout.write(json.dumps(obj, indent=2, default=str) + "\n")


def command(func: F) -> F:
    """Turn an AmploopError into one readable line and the error class's exit code."""

    @functools.wraps(func)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return func(*args, **kwargs)
        except AmploopError as exc:
            if kwargs.get("as_json"):
                _print_json(exc.to_dict())
            err.print(f"[bold red]error:[/] {escape(exc.message)}", highlight=False, markup=True)
            raise typer.Exit(exc.exit_code) from None

    return wrapper  # type: ignore[return-value]


def _version(value: bool) -> None:
    if value:
        out.print(f"amploop {__version__}", highlight=False)
        raise typer.Exit()


@app.callback()
def _main(
    config: Annotated[Path | None, typer.Option("--config", help="Path to amploop.yaml.")] = None,
    version: Annotated[
        bool, typer.Option("--version", callback=_version, is_eager=True, help="Print the version and exit.")
    ] = False,
) -> None:
    _state.config_path = config


# -- datasets ----------------------------------------------------------------------------------


@app.command("datasets")
@command
def datasets_command(as_json: JsonFlag = False) -> None:
    """List the built-in datasets."""
    rows = []
    for name in builtin_names():
        info, dataset = builtin_info(name), load_builtin(name)
        rows.append(
            {
                "name": name,
                "title": info.title,
                "rows": dataset.n_rows,
                "columns": dataset.n_columns,
                "target": dataset.target,
                "task": dataset.task,
                "splits": {k: len(v) for k, v in dataset.splits.items()},
                "licence": info.licence,
                "fingerprint": dataset.fingerprint,
            }
        )
    if as_json:
        _print_json({"datasets": rows})
        return
    table = Table(title="Built-in datasets")
    for column in ("name", "rows", "columns", "target", "task", "licence"):
        table.add_column(column, justify="right" if column in ("rows", "columns") else "left")
    for row in rows:
        table.add_row(row["name"], f"{row['rows']:,}", str(row["columns"]), row["target"], row["task"], row["licence"])
    out.print(table)


@data_app.command("show")
@command
def data_show(
    ref: Annotated[str, typer.Argument(help="A built-in dataset name or a CSV/Parquet/NumPy file.")],
    target: Annotated[str | None, typer.Option(help="The label column of a file.")] = None,
    as_json: JsonFlag = False,
) -> None:
    """Describe a dataset: shape, schema, missing values, label balance and fingerprint."""
    summary = open_dataset(ref, target=target).summary()
    if as_json:
        _print_json(summary.to_dict())
        return
    _render_summary(summary)


@data_app.command("check")
@command
def data_check(
    ref: Annotated[str, typer.Argument(help="A built-in dataset name or a data file.")],
    target: Annotated[str | None, typer.Option(help="The label column of a file.")] = None,
    against: Annotated[str | None, typer.Option(help="The training data, to check for leakage into it.")] = None,
    label_issues: Annotated[bool, typer.Option(help="Run confident learning for label issues.")] = True,
    as_json: JsonFlag = False,
) -> None:
    """Check data quality; exit non-zero when a finding blocks training."""
    cfg = _state.config()
    dataset = open_dataset(ref, target=target)
    reference = open_dataset(against, target=target or dataset.target) if against else None
    slice_columns = cfg.data.slice_columns or (
        builtin_info(dataset.name).slice_columns if dataset.name in builtin_names() else []
    )
    report = check_quality(dataset, against=reference, slice_columns=slice_columns, label_issues=label_issues)
    if as_json:
        _print_json(report.to_dict())
    else:
        _render_quality(report)
    if report.blocking:
        raise typer.Exit(QualityError.exit_code)


@data_app.command("datasheet")
@command
def data_datasheet(
    ref: Annotated[str, typer.Argument(help="A built-in dataset name or a data file.")],
    target: Annotated[str | None, typer.Option(help="The label column of a file.")] = None,
    fmt: Annotated[str, typer.Option("--format", help="markdown or html.")] = "markdown",
    output: Annotated[Path | None, typer.Option(help="Write here instead of stdout.")] = None,
    as_json: JsonFlag = False,
) -> None:
    """Render a dataset's datasheet from stored facts and the datasheet text in amploop.yaml."""
    from amploop.registry.cards import render_datasheet

    if fmt not in ("markdown", "html"):
        raise ConfigError(f"--format {fmt!r}: use markdown or html")
    cfg = _state.config()
    dataset = open_dataset(ref, target=target)
    sections: dict[str, Any] = {}
    if dataset.name in builtin_names():
        info = builtin_info(dataset.name)
        sections.update(info.datasheet, licence=info.licence, attribution=info.attribution, citation=info.citation)
    sections.update({k: v for k, v in cfg.data.datasheet.items() if v})
    quality = check_quality(dataset, label_issues=False)
    with Store.open() as store:
        record = store.record_dataset(dataset_record(dataset, datasheet=sections))
    text = render_datasheet(record, sections=sections, quality=quality.to_dict(), fmt=fmt)
    if output is not None:
        _write_atomically(output, text.encode())
    if as_json:
        _print_json(
            {
                "dataset": record.to_dict(),
                "format": fmt,
                "output": str(output) if output else None,
                "text": None if output else text,
            }
        )
    elif output is None:
        sys.stdout.write(text)
    else:
        out.print(f"datasheet written to {output}", highlight=False)


def _write_atomically(path: Path, data: bytes) -> None:
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_bytes(data)
    os.replace(tmp, path)


def _render_quality(report: QualityReport, *, limit: int = 20) -> None:
    counts = report.counts()
    out.print(
        f"{report.dataset['name']}: {report.dataset['rows']:,} rows, {counts['block']} blocking, "
        f"{counts['warn']} warnings, {counts['info']} notes ({report.seconds:.1f} s)",
        highlight=False,
    )
    for finding in report.findings[:limit]:
        out.print(f"  {finding.severity:>5}  {finding.check}: {finding.message}", highlight=False)
    if report.suspicious_rows:
        top = ", ".join(str(r.row) for r in report.suspicious_rows[:10])
        out.print(f"  suspicious rows (most first): {top} … {len(report.suspicious_rows)} in all", highlight=False)


def _render_summary(summary: DatasetSummary) -> None:
    splits = ", ".join(f"{k} {v:,}" for k, v in summary.splits.items())
    out.print(
        f"[bold]{escape(summary.name)}[/]  {summary.rows:,} rows × {summary.columns} columns"
        + (f"  (splits: {splits})" if splits else ""),
        highlight=False,
        markup=True,
    )
    out.print(f"source {summary.source}   fingerprint {summary.fingerprint[:16]}…", highlight=False)
    if summary.target:
        balance = ", ".join(f"{k}: {v:,}" for k, v in summary.class_balance.items())
        out.print(
            f"target [bold]{escape(summary.target)}[/] ({summary.task})" + (f"  {balance}" if balance else ""),
            highlight=False,
            markup=True,
        )
    table = Table(show_edge=False)
    for column in ("column", "kind", "missing", "distinct", "range / top values"):
        table.add_column(column)
    for c in summary.column_summaries:
        if c.kind == "numeric":
            detail = f"{c.minimum:g} … {c.maximum:g}, mean {c.mean:g}" if c.minimum is not None else ""
        elif c.kind == "image":
            detail = f"shape {c.shape}, values {c.minimum:g} … {c.maximum:g}"
        else:
            detail = ", ".join(f"{t[0]} ({t[1]:,})" for t in (c.top or [])[:3])
        table.add_row(c.name, c.kind, f"{c.missing:,}", "" if c.distinct is None else f"{c.distinct:,}", detail)
    out.print(table)


# -- store -------------------------------------------------------------------------------------


@store_app.command("info")
@command
def store_info(as_json: JsonFlag = False) -> None:
    """Where state lives, the schema revision, and how many rows each table holds."""
    with Store.open() as store:
        info = store.info()
    if as_json:
        _print_json(info.to_dict())
        return
    out.print(f"database   {info.db_url}  ({info.server})", highlight=False)
    out.print(f"artifacts  {info.artifacts_url}", highlight=False)
    out.print(f"schema     revision {info.schema_revision}", highlight=False)
    out.print("rows       " + ", ".join(f"{k} {v}" for k, v in info.counts.items()), highlight=False)


# -- config ------------------------------------------------------------------------------------


@config_app.command("show")
@command
def config_show(as_json: JsonFlag = False) -> None:
    """Print the configuration after file, environment and flags are merged and validated."""
    cfg = _state.config()
    if as_json:
        _print_json(cfg.to_dict())
        return
    import yaml

    out.print(yaml.safe_dump(cfg.to_dict(), sort_keys=False).rstrip(), highlight=False)


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
    from amploop.train.distributed import setup_distributed, teardown_distributed
    from amploop.train.fit import bundle_from_fit, fit
    from amploop.train.loop import TrainSettings
    from amploop.workspace import Workspace, code_version

    source = cfg.data.source or "adult"
    try:
        dataset = open_dataset(source, target=cfg.data.target)
    except DatasetNotFound as exc:  # here the dataset is a setting: say which one
        raise ConfigError(f"data.source: {exc.message}", **exc.details) from None
    name = cfg.model.name or dataset.name
    workspace = Workspace.from_env()
    fields = cfg.train.model_dump(exclude={"nproc_per_node"})
    settings = TrainSettings(
        **fields,
        checkpoint_dir=checkpoint_dir or str(workspace.home / "checkpoints" / name),
        resume=resume,
        progress=progress,
    )
    if allow_quality_issues and not (reason and reason.strip()):
        raise ConfigError('--allow-quality-issues needs --reason "why this data may be used"; it goes to the audit log')
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
    node_rank: Annotated[int | None, typer.Option(help="This machine's rank (static rendezvous).")] = None,
    rdzv_endpoint: Annotated[str | None, typer.Option(help="host:port of the rendezvous.")] = None,
    rdzv_id: Annotated[str | None, typer.Option(help="Job id shared by all machines.")] = None,
    max_restarts: Annotated[int, typer.Option(help="torchrun restarts after a failure.")] = 0,
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
    cfg = _state.config(overrides)
    processes = cfg.train.nproc_per_node
    if (processes > 1 or nnodes != "1") and not in_torchrun():
        code = launch_torchrun(
            _without_launcher_flags(sys.argv[1:]),
            nproc_per_node=processes,
            nnodes=nnodes,
            node_rank=node_rank,
            rdzv_endpoint=rdzv_endpoint,
            rdzv_id=rdzv_id,
            max_restarts=max_restarts,
        )
        raise typer.Exit(code)
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
        _print_json(result)
        return
    _render_training(result)


def _render_training(result: dict[str, Any]) -> None:
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

    settings = TrainSettings(
        epochs=epochs,
        batch_size=batch_size,
        learning_rate=learning_rate,
        seed=seed,
        device=device,
        early_stopping_patience=None,
    )
    wanted = [m.strip() for m in modes.split(",") if m.strip()]
    comparison = compare_precisions(open_dataset(dataset), architecture=model, modes=wanted, settings=settings)
    if as_json:
        _print_json(comparison.to_dict())
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
            _pct(r.validation_accuracy),
            _pct(r.test_accuracy),
            _pct(r.agreement_with_fp32),
            r.note,
        )
    out.print(table)


def _pct(value: float | None) -> str:
    return "" if value is None else f"{100 * value:.2f}%"


# -- evaluate ----------------------------------------------------------------------------------


def run_evaluation(cfg: AmploopConfig, reference: str, *, data: str | None = None) -> Any:
    from amploop.registry.evaluations import evaluate_version

    e = cfg.evaluate
    with Store.open() as store:
        return evaluate_version(
            store,
            reference,
            data=data,
            slice_columns=cfg.data.slice_columns,
            gate=[r.model_dump() for r in e.gate] if e.gate is not None else None,
            min_slice_size=e.min_slice_size,
            bootstrap_samples=e.bootstrap_samples,
            confidence_level=e.confidence_level,
            parity_precisions=tuple(e.parity_precisions),
            robustness=e.robustness,
        )


@app.command("evaluate")
@command
def evaluate_command(
    model: Annotated[str, typer.Argument(help="NAME, NAME:VERSION or NAME@ALIAS.")],
    data: Annotated[str | None, typer.Option(help="Evaluate on this data instead of the version's test rows.")] = None,
    gate: Annotated[bool, typer.Option("--gate", help="Exit non-zero when the release gate fails.")] = False,
    as_json: JsonFlag = False,
) -> None:
    """Evaluate a model version: metrics, calibration, slices, robustness, parity, and the gate verdict."""
    outcome = run_evaluation(_state.config(), model, data=data)
    if as_json:
        _print_json(outcome.to_dict())
    else:
        _render_evaluation(outcome)
    if gate and not outcome.report.passed:
        failed = [r["metric"] for r in outcome.report.verdict["rules"] if r["outcome"] == "fail"]
        err.print(f"[bold red]gate failed:[/] {', '.join(failed)}", highlight=False)
        raise typer.Exit(GateFailed.exit_code)


def _render_evaluation(outcome: Any) -> None:
    report = outcome.report
    verdict = report.verdict
    colour = "green" if verdict["passed"] else "red"
    out.print(
        f"[bold]{escape(report.model['name'])}:{report.model['version']}[/] on {escape(report.dataset['name'])} "
        f"({report.dataset['rows']:,} rows): [bold {colour}]{verdict['verdict'].upper()}[/]",
        highlight=False,
        markup=True,
    )
    for rule in verdict["rules"]:
        out.print(f"  {rule['outcome']:>7}  {rule['reason']}", highlight=False)
    m = report.metrics
    if report.task == "classification":
        out.print(
            f"accuracy {m['accuracy']:.4f}, ROC AUC {m['roc_auc']:.4f}, log loss {m['log_loss']:.4f}", highlight=False
        )
        c = report.calibration
        out.print(
            f"ECE {c['ece_before']:.4f} before, {c['ece_after']:.4f} after temperature scaling "
            f"(T = {c['temperature']:.3f})",
            highlight=False,
        )
    worst = report.slices.get("worst")
    if worst:
        out.print(
            f"worst slice {worst['column']} = {worst['value']}: {worst['metric']:.4f} "
            f"({report.slices['worst_gap']:.4f} below overall)",
            highlight=False,
        )
    for found in report.slices.get("discovered", [])[:3]:
        out.print(
            f"found: {' and '.join(found['conditions'])} ({found['size']} rows) error rate "
            f"{found['error_rate']:.3f} vs {found['overall_error_rate']:.3f}",
            highlight=False,
        )
    out.print(f"report: {outcome.stored.html_uri}", highlight=False)


# -- models and audit ----------------------------------------------------------------------------


def _version_ref(text: str) -> tuple[str, int]:
    from amploop.registry.evaluations import parse_model_ref

    ref = parse_model_ref(text)
    if ref.version is None:
        raise ConfigError(f"'{text}': name a version, as NAME:VERSION")
    return ref.name, ref.version


@models_app.command("list")
@command
def models_list(as_json: JsonFlag = False) -> None:
    """Every registered model with its newest version and its aliases."""
    from amploop.registry.aliases import list_aliases

    with Store.open() as store:
        versions = store.list_model_versions()
        names = sorted({v.name for v in versions})
        rows = []
        for name in names:
            mine = [v for v in versions if v.name == name and v.status == "ready"]
            rows.append(
                {
                    "name": name,
                    "versions": len(mine),
                    "latest": max((v.version for v in mine), default=None),
                    "aliases": list_aliases(store, name),
                }
            )
    if as_json:
        _print_json({"models": rows})
        return
    table = Table(title="Registered models")
    for column in ("name", "versions", "latest", "aliases"):
        table.add_column(column)
    for row in rows:
        aliases = ", ".join(f"{a}={v}" for a, v in sorted(row["aliases"].items()))
        table.add_row(row["name"], str(row["versions"]), str(row["latest"]), aliases)
    out.print(table)


@models_app.command("show")
@command
def models_show(
    model: Annotated[str, typer.Argument(help="NAME, NAME:VERSION or NAME@ALIAS.")], as_json: JsonFlag = False
) -> None:
    """A model's versions, or one version with its metrics, files and evaluations."""
    from amploop.registry.aliases import list_aliases
    from amploop.registry.evaluations import parse_model_ref, resolve_version

    ref = parse_model_ref(model)
    with Store.open() as store:
        if ref.version is None and ref.alias is None:
            store.get_model_version(ref.name)  # ModelNotFound with close matches
            versions = [v.to_dict() for v in store.list_model_versions(ref.name)]
            result: dict[str, Any] = {"name": ref.name, "aliases": list_aliases(store, ref.name), "versions": versions}
        else:
            record = resolve_version(store, ref)
            evaluations = [
                {"id": e.id, "passed": e.passed, "created_at": e.created_at.isoformat(), "html_uri": e.html_uri}
                for e in store.list_evaluations(record.name, record.version)
            ]
            result = {
                **record.to_dict(),
                "aliases": [a for a, v in list_aliases(store, record.name).items() if v == record.version],
                "evaluations": evaluations,
            }
    _print_json(result) if as_json else out.print_json(data=result)


@models_app.command("promote")
@command
def models_promote(
    model: Annotated[str, typer.Argument(help="NAME:VERSION")],
    reason: Annotated[str, typer.Option(help="Why; kept in the alias history and the audit log.")],
    alias: Annotated[str, typer.Option(help="champion, challenger, or your own.")] = "champion",
    force: Annotated[bool, typer.Option("--force", help="Promote although the release gate failed.")] = False,
    as_json: JsonFlag = False,
) -> None:
    """Point an alias at a version (a version that failed its gate needs --force)."""
    from amploop.registry.aliases import promote

    name, version = _version_ref(model)
    with Store.open() as store:
        move = promote(store, name, version, alias=alias, reason=reason, force=force)
    _print_json(move.to_dict()) if as_json else out.print(
        f"{name}@{alias}: {move.from_version} -> {move.to_version} ({move.reason})", highlight=False
    )


@models_app.command("rollback")
@command
def models_rollback(
    name: Annotated[str, typer.Argument(help="Model name.")],
    reason: Annotated[str, typer.Option(help="Why; kept in the alias history and the audit log.")],
    to: Annotated[int | None, typer.Option(help="Version to go back to (default: the previous one).")] = None,
    alias: Annotated[str, typer.Option()] = "champion",
    as_json: JsonFlag = False,
) -> None:
    """Move an alias back to the version it held before (or to --to)."""
    from amploop.registry.aliases import rollback

    with Store.open() as store:
        move = rollback(store, name, alias=alias, to=to, reason=reason)
    _print_json(move.to_dict()) if as_json else out.print(
        f"{name}@{alias}: {move.from_version} -> {move.to_version} ({move.reason})", highlight=False
    )


@models_app.command("history")
@command
def models_history(
    name: Annotated[str, typer.Argument(help="Model name.")],
    alias: Annotated[str | None, typer.Option(help="Only this alias.")] = None,
    at: Annotated[str | None, typer.Option(help="ISO time: which version held --alias then.")] = None,
    as_json: JsonFlag = False,
) -> None:
    """Every alias move, with time, actor and reason; or, with --at, the version held at that moment."""
    from datetime import datetime

    from amploop.registry.aliases import alias_at, alias_history

    with Store.open() as store:
        store.get_model_version(name)
        if at is not None:
            try:
                moment = datetime.fromisoformat(at)
            except ValueError:
                raise ConfigError(f"--at {at!r} is not an ISO time such as 2026-11-26T14:00:00+00:00") from None
            if moment.tzinfo is None:
                raise ConfigError("--at needs a time zone, e.g. 2026-11-26T14:00:00+00:00")
            version = alias_at(store, name, alias or "champion", moment)
            result: Any = {"name": name, "alias": alias or "champion", "at": moment.isoformat(), "version": version}
            _print_json(result) if as_json else out.print(f"{name}@{alias or 'champion'} at {at}: {version}")
            return
        moves = [m.to_dict() for m in alias_history(store, name, alias)]
    if as_json:
        _print_json({"name": name, "moves": moves})
        return
    for m in moves:
        out.print(
            f"{m['at']}  {m['alias']}: {m['from_version']} -> {m['to_version']}  {m['actor']}: {m['reason']}",
            highlight=False,
        )


@models_app.command("delete")
@command
def models_delete(
    model: Annotated[str, typer.Argument(help="NAME:VERSION")],
    reason: Annotated[str, typer.Option(help="Why; kept in the audit log.")],
    as_json: JsonFlag = False,
) -> None:
    """Soft-delete a version (refused while an alias points at it)."""
    from amploop.registry.aliases import delete_version

    name, version = _version_ref(model)
    with Store.open() as store:
        delete_version(store, name, version, reason=reason)
    result = {"name": name, "version": version, "status": "deleted"}
    _print_json(result) if as_json else out.print(f"{name}:{version} deleted", highlight=False)


@models_app.command("lineage")
@command
def models_lineage(model: Annotated[str, typer.Argument(help="NAME:VERSION")], as_json: JsonFlag = False) -> None:
    """Everything that made a version: run, config, code, data fingerprints, evaluations, alias moves."""
    from amploop.registry.lineage import lineage

    name, version = _version_ref(model)
    with Store.open() as store:
        facts = lineage(store, name, version)
    _print_json(facts) if as_json else out.print_json(data=facts)


def write_model_card(store: Store, cfg: AmploopConfig, name: str, version: int, fmt: str) -> tuple[str, str]:
    """Render the card from stored facts and keep it in the artifacts; return (text, uri)."""
    from amploop.registry.cards import render_model_card
    from amploop.registry.lineage import lineage

    facts = lineage(store, name, version)
    evaluations = store.list_evaluations(name, version)
    facts["latest_report"] = evaluations[-1].report if evaluations else None
    text = render_model_card(facts, text=cfg.project.card, project=cfg.project.model_dump(), fmt=fmt)
    suffix = "md" if fmt == "markdown" else "html"
    ref = store.artifacts.put_bytes(f"models/{name}/cards/{name}-{version}.{suffix}", text.encode())
    return text, ref.uri


@models_app.command("card")
@command
def models_card(
    model: Annotated[str, typer.Argument(help="NAME:VERSION")],
    fmt: Annotated[str, typer.Option("--format", help="markdown or html.")] = "markdown",
    as_json: JsonFlag = False,
) -> None:
    """The version's model card, from stored results and project.card in amploop.yaml; kept in the artifacts."""
    if fmt not in ("markdown", "html"):
        raise ConfigError(f"--format {fmt!r}: use markdown or html")
    name, version = _version_ref(model)
    with Store.open() as store:
        text, uri = write_model_card(store, _state.config(), name, version, fmt)
    if as_json:
        _print_json({"name": name, "version": version, "format": fmt, "uri": uri})
    elif fmt == "markdown":
        sys.stdout.write(text)
    else:
        out.print(f"model card: {uri}", highlight=False)


@models_app.command("export")
@command
def models_export(
    model: Annotated[str, typer.Argument(help="NAME:VERSION")],
    fmt: Annotated[str, typer.Option("--format", help="onnx (checked against torch) or mlflow.")] = "onnx",
    tolerance: Annotated[float, typer.Option(help="Largest allowed probability difference from torch.")] = 1e-4,
    as_json: JsonFlag = False,
) -> None:
    """Export a version (ONNX: verified against torch on seeded inputs before it is kept)."""
    from amploop.registry.export import export_version

    name, version = _version_ref(model)
    with Store.open() as store:
        result = export_version(store, name, version, fmt=fmt, tolerance=tolerance)
    _print_json(result.to_dict()) if as_json else out.print(
        f"{result.uri} (max difference from torch {result.max_abs_difference:.1e} <= {result.tolerance:g})",
        highlight=False,
    )


@app.command("audit")
@command
def audit_command(
    since: Annotated[str | None, typer.Option(help="ISO time, e.g. 2026-11-26T00:00:00+00:00.")] = None,
    limit: Annotated[int | None, typer.Option(help="At most this many entries.")] = None,
    as_json: JsonFlag = False,
) -> None:
    """The append-only audit log: who did what, when and why."""
    from datetime import datetime

    moment = None
    if since is not None:
        try:
            moment = datetime.fromisoformat(since)
        except ValueError:
            raise ConfigError(f"--since {since!r} is not an ISO time") from None
        if moment.tzinfo is None:
            raise ConfigError("--since needs a time zone, e.g. 2026-11-26T00:00:00+00:00")
    with Store.open() as store:
        entries = [e.to_dict() for e in store.audit_log(since=moment, limit=limit)]
    if as_json:
        _print_json({"entries": entries})
        return
    for e in entries:
        why = f" — {e['reason']}" if e["reason"] else ""
        out.print(f"{e['at']}  {e['actor']}  {e['action']}  {e['target']}{why}", highlight=False)


# -- demo --------------------------------------------------------------------------------------


@app.command("demo")
@command
def demo(as_json: JsonFlag = False) -> None:
    """Run every stage that exists on the built-in data, end to end."""
    started = time.perf_counter()
    cfg = _state.config()
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
                _render_summary(recorded[-1])
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
        _render_quality(quality, limit=6)
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
        _render_training(trained)
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
        _render_evaluation(evaluated)
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
        _print_json(result)
        return
    out.print(
        f"[bold green]demo finished[/] in {result['seconds']} s: stages run: "
        f"{', '.join(s['stage'] for s in stages)}; state in {info_store.db_url}",
        highlight=False,
        markup=True,
    )


def main() -> None:
    if all(k in os.environ for k in ("RANK", "WORLD_SIZE", "LOCAL_RANK")):  # a worker under torchrun
        # torchrun's agent then reports which rank failed first, with its traceback.
        from torch.distributed.elastic.multiprocessing.errors import record

        record(app)()
    else:
        app()


if __name__ == "__main__":
    main()
