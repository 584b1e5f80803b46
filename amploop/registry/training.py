"""The training stage: data-quality gate → fit → temperature → record data and run → register a version.

:func:`train_version` is what ``amploop train``, ``amploop demo``, the retraining loop and a
notebook all call. Under torchrun every rank trains; only rank 0 touches the store and gets a
result (the others get ``None``).
"""

from __future__ import annotations

import contextlib
import dataclasses
import re
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from amploop.config import AmploopConfig
from amploop.data import Dataset, builtin_names, open_dataset
from amploop.data.quality import QualityReport, check_quality
from amploop.errors import AmploopError, ConfigError, DatasetNotFound, QualityError, TrainingError
from amploop.names import MAX_NAME_LENGTH, check_name
from amploop.registry.records import ModelVersionRecord, dataset_record
from amploop.registry.store import Store
from amploop.workspace import Workspace, code_version

if TYPE_CHECKING:
    from torch import nn

    from amploop.train.fit import FitResult

__all__ = ["TrainOutcome", "default_model_name", "train_version"]


@dataclass(frozen=True)
class TrainOutcome:
    """One finished training stage: the run, the registered version and what training measured."""

    run_id: str
    version: ModelVersionRecord
    fit: FitResult = dataclasses.field(repr=False)
    quality: QualityReport = dataclasses.field(repr=False)
    data: dict[str, str]  # fingerprints: source, train, validation, test
    excluded_rows: dict[str, int]  # rows kept out of training: label_issues, outliers

    @property
    def metrics(self) -> dict[str, float]:
        return self.fit.metrics

    @property
    def findings(self) -> list[str]:
        """The data check's non-blocking findings, one short line each, most important first."""
        return self.quality.summary_lines()

    @property
    def reference(self) -> str:
        """``NAME:VERSION`` of the registered version."""
        return f"{self.version.name}:{self.version.version}"

    def to_dict(self) -> dict[str, Any]:
        trained = self.fit.train_result
        return {
            "run_id": self.run_id,
            "model": {
                "name": self.version.name,
                "version": self.version.version,
                "artifact_uri": self.version.artifact_uri,
            },
            "metrics": self.fit.metrics,
            "precision": trained.precision.to_dict(),
            "throughput": trained.throughput.to_dict(),
            "samples_per_s": trained.throughput.samples_per_s,
            "data": self.data,
            "quality": self.quality.counts(),
            "findings": self.findings,
            "excluded_rows": self.excluded_rows,
            "excluded_suspicious_rows": sum(self.excluded_rows.values()),
            "notes": trained.notes,
            "train": trained.to_dict(),
        }


def default_model_name(dataset_name: str) -> str:
    """The dataset's name made into a valid model name (``my data.csv`` -> ``my-data``)."""
    cleaned = re.sub(r"[^A-Za-z0-9_.\-]+", "-", dataset_name).strip("-._")[:MAX_NAME_LENGTH]
    return cleaned or "model"


def _open(config: AmploopConfig, dataset: Dataset | str | None) -> tuple[Dataset, AmploopConfig]:
    """The dataset to train on, and the config with ``data.source`` saying where it came from."""
    if isinstance(dataset, Dataset):
        source = dataset.source if dataset.source and Path(dataset.source).exists() else dataset.name
        return dataset, config.model_copy(update={"data": config.data.model_copy(update={"source": source})})
    source = dataset or config.data.source or "adult"
    try:
        opened = open_dataset(source, target=config.data.target)
    except DatasetNotFound as exc:  # here the dataset is a setting: say which one
        raise ConfigError(f"data.source: {exc.message}", **exc.details) from None
    if source not in builtin_names():  # a file: record where it is, so any directory can find it again
        source = str(Path(source).expanduser().resolve())
    return opened, config.model_copy(update={"data": config.data.model_copy(update={"source": source})})


def _checkpoint_folder(workspace: Workspace, name: str, checkpoint_dir: str | Path | None) -> Path:
    if checkpoint_dir:
        return Path(checkpoint_dir)
    checkpoints = workspace.home / "checkpoints"
    folder = checkpoints / name
    if folder.resolve().parent != checkpoints.resolve():
        raise ConfigError(f"model name {name!r} does not make a folder inside {checkpoints}; choose another name")
    return folder


def _quality_gate(quality: QualityReport, allow: bool) -> None:
    if quality.blocking and not allow:
        first = quality.blocking[0]
        more = f" (and {len(quality.blocking) - 1} more)" if len(quality.blocking) > 1 else ""
        raise QualityError(
            f'training refused: {first.message}{more}; fix the data, or pass --allow-quality-issues --reason "..."',
            findings=[f.message for f in quality.blocking],
        )


_LENGTH_KEYS = ("epochs", "min_steps", "max_steps")  # a resume that changes one of these has more to train


def _refuse_finished_run(
    folder: Path, name: str, store: Store | None, workspace: Workspace, config: AmploopConfig
) -> None:
    """``--resume`` after a run that reached its end: say so and name its version, rather than register it twice.

    A resume that asks for a longer run (more epochs or steps) goes on training.
    """
    import hashlib

    from amploop.train.checkpoint import CheckpointManager

    found = CheckpointManager(folder).latest()
    trainer = found.json("trainer.json") if found is not None else {}
    if found is None or not trainer.get("state", {}).get("finished"):
        return
    before, now = trainer.get("config", {}), config.train.model_dump(mode="json")
    if any(before.get(key) != now.get(key) for key in _LENGTH_KEYS):
        return
    digest = hashlib.sha256(found.files["model.safetensors"]).hexdigest()
    registered = None
    with contextlib.ExitStack() as stack:
        opened = store or stack.enter_context(Store.open(workspace))
        with contextlib.suppress(AmploopError):
            matches = [v for v in opened.list_model_versions(name) if v.artifacts.get("model.safetensors") == digest]
            registered = max(matches, key=lambda v: v.version) if matches else None
    where = f"; its weights are {registered.name}:{registered.version}" if registered else ""
    raise TrainingError(
        f"the run in {folder} already finished (step {found.step}){where}; nothing to resume — "
        "train without --resume to start a new run"
    )


def train_version(
    config: AmploopConfig | None = None,
    *,
    dataset: Dataset | str | None = None,
    model: nn.Module | None = None,
    store: Store | None = None,
    checkpoint_dir: str | Path | None = None,
    resume: bool = False,
    progress: bool = False,
    allow_quality_issues: bool = False,
    reason: str | None = None,
    exclude_label_issues: bool = False,
    exclude_outliers: bool = False,
    parent_version: int | None = None,
) -> TrainOutcome | None:
    """Train as ``config`` says and register the result as a new model version.

    ``dataset`` (a built-in name, a file path or a :class:`Dataset`) overrides ``data.source``;
    ``model`` is a user's own ``nn.Module`` instead of ``model.architecture``. The data-quality
    check runs first and blocks on blocking findings unless ``allow_quality_issues`` with a
    ``reason`` (kept in the audit log); ``exclude_label_issues`` and ``exclude_outliers`` keep
    the rows it flags out of training and validation (never out of the test rows). With
    ``resume``, a run whose checkpoint says it finished is not trained and registered again.
    ``parent_version`` (a retrain's champion) is kept with the run. ``store`` defaults to the
    workspace's (opened and closed here). Rank 0 returns the
    :class:`TrainOutcome`; other torchrun ranks return ``None``.
    """
    from amploop.train.checkpoint import CheckpointManager
    from amploop.train.distributed import setup_distributed, teardown_distributed
    from amploop.train.fit import fit

    config = config or AmploopConfig()
    if allow_quality_issues and not (reason and reason.strip()):
        raise ConfigError('--allow-quality-issues needs --reason "why this data may be used"; it goes to the audit log')
    data, config = _open(config, dataset)
    name = check_name(config.model.name or default_model_name(data.name))  # before any path is built from it
    workspace = store.workspace if store is not None else Workspace.from_env()
    folder = _checkpoint_folder(workspace, name, checkpoint_dir)
    if not resume:
        CheckpointManager(folder).check_owned()  # a folder with other files is refused, untouched
    else:
        _refuse_finished_run(folder, name, store, workspace, config)
    quality = check_quality(
        data,
        slice_columns=config.data.slice_columns,
        label_issues=exclude_label_issues,
        seed=config.train.seed,
        validation_fraction=config.data.validation_fraction,
        test_fraction=config.data.test_fraction,
        split_seed=config.data.split_seed,  # duplicates across the very split fit() makes
        progress=progress,
    )
    _quality_gate(quality, allow_quality_issues)
    excluded = {
        "label_issues": sorted(quality.label_issue_rows) if exclude_label_issues else [],
        "outliers": sorted(quality.outlier_rows) if exclude_outliers else [],
    }
    rows = sorted(set(excluded["label_issues"]) | set(excluded["outliers"]))
    exclude = np.array(rows, dtype=np.int64) if rows else None
    ctx = setup_distributed(config.train.device, timeout_s=config.train.collective_timeout_s)
    own_store = store is None and ctx.is_main
    if own_store:
        store = Store.open(workspace)
    if not ctx.is_main:
        store = None
    run = None
    try:
        if store is not None:
            run = store.start_run(
                "train",
                # a retrain's run names the version it retrains (models lineage shows it)
                config={**config.to_dict(), **({"parent_version": parent_version} if parent_version else {})},
                dataset_fingerprints={"source": data.fingerprint},
                code_version=code_version(),
            )
            if quality.blocking:  # allowed above, with a reason: keep both
                store.append_audit(
                    "train.quality_override",
                    f"dataset:{data.fingerprint}",
                    reason=reason or "",
                    details={"run_id": run.id, "findings": [f.message for f in quality.blocking]},
                )
        result = fit(
            data,
            config,
            model=model,
            ctx=ctx,
            exclude=exclude,
            checkpoint_dir=str(folder),
            resume=resume,
            progress=progress,
        )
        if store is None or run is None:
            return None
        counts = {kind: len(found) for kind, found in excluded.items()}
        return _register(store, run.id, name, data, result, quality, counts)
    except BaseException as exc:
        if store is not None and run is not None:
            store.finish_run(run.id, status="failed", error=f"{type(exc).__name__}: {exc}"[:2000])
        raise
    finally:
        if own_store and store is not None:
            store.close()
        teardown_distributed(ctx)


def _register(
    store: Store,
    run_id: str,
    name: str,
    data: Dataset,
    result: FitResult,
    quality: QualityReport,
    excluded: dict[str, int],
) -> TrainOutcome:
    """Record the datasets and the finished run, fit the temperature, register the version."""
    from amploop.evaluate.calibration import temperature_for_fit
    from amploop.train.fit import bundle_from_fit

    splits = result.splits
    for part in (data, splits.train, splits.validation, splits.test):
        store.record_dataset(dataset_record(part))
    fingerprints = {
        "source": data.fingerprint,
        "train": splits.train.fingerprint,
        "validation": splits.validation.fingerprint,
        "test": splits.test.fingerprint,
    }
    trained = result.train_result
    summary = {
        **result.metrics,
        "precision": trained.precision.mode,
        "precision_reason": trained.precision.reason,
        "samples_per_s": trained.throughput.samples_per_s,
        "quality": quality.counts(),
        "excluded_rows": excluded,
        "notes": trained.notes,
    }
    store.finish_run(
        run_id,
        metrics=summary,
        timings={"seconds": trained.seconds, **trained.throughput.to_dict()},
        dataset_fingerprints=fingerprints,
    )
    bundle = bundle_from_fit(result)
    if result.task == "classification":  # temperature scaling, kept only where it helps on held-out validation rows
        decision = temperature_for_fit(result)
        bundle = dataclasses.replace(bundle, temperature=decision.temperature, temperature_decision=decision.to_dict())
    version = store.register_model_version(name, bundle.to_files(), run_id=run_id, metrics=result.metrics)
    return TrainOutcome(
        run_id=run_id,
        version=version,
        fit=result,
        quality=quality,
        data=fingerprints,
        excluded_rows=excluded,
    )
