"""One CI run: data check → train → evaluate → gate (→ promote), answered with an exit code.

1. **Data.** The data-quality check is the one training runs before it fits:
   :func:`~amploop.registry.training.train_version` checks the data with the split it is about
   to make and raises :class:`~amploop.errors.QualityError` (exit 6) on a blocking finding,
   unless ``allow_quality_issues`` with a ``reason`` (kept in the audit log). It is not run a
   second time here; the data stage is reported from that check's own report and seconds.
2. **Train.** The same call fits, records the run and registers a new version.
3. **Evaluate.** :func:`~amploop.registry.evaluations.evaluate_version` scores the version on
   its own test rows, applies the ``evaluate:`` gate (the default gate when there is none) and
   stores the report.
4. **Gate.** A failed verdict is the run's answer: :attr:`CiResult.exit_code` is
   :attr:`GateFailed.exit_code <amploop.errors.GateFailed>` (9) and no alias moves. A passed
   one, with ``promote_to``, points that alias at the version
   (:func:`~amploop.registry.aliases.promote`).

A stage that cannot finish (unreadable data, a failed run, an unknown gate metric) raises its
:class:`~amploop.errors.AmploopError`, whose class carries the exit code; nothing is registered
when the data is refused. ``amploop ci`` is this function and one line per stage.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from amploop.config import AmploopConfig
from amploop.errors import GateFailed, UsageError
from amploop.names import check_name

if TYPE_CHECKING:
    from amploop.data.quality import QualityReport
    from amploop.evaluate.gates import GateVerdict
    from amploop.registry.evaluations import EvaluationOutcome
    from amploop.registry.store import Store
    from amploop.registry.training import TrainOutcome

__all__ = ["CiResult", "CiStage", "run_ci"]

PROMOTION_REASON = "ci: passed its release gate"


@dataclass(frozen=True)
class CiStage:
    """One finished stage: ``data``, ``train``, ``evaluate`` or ``gate``."""

    stage: str
    seconds: float  # wall time of the stage (the gate's: the promotion, the verdict is the evaluation's)
    ok: bool
    summary: str  # one line, what a CI log shows

    def to_dict(self) -> dict[str, Any]:
        return {"stage": self.stage, "seconds": round(self.seconds, 3), "ok": self.ok, "summary": self.summary}


@dataclass(frozen=True)
class CiResult:
    """What one CI run did: the version it registered, each stage, the verdict and the exit code.

    >>> stage = CiStage("gate", 0.0, False, "fail: accuracy")
    >>> result = CiResult("plants", 3, (stage,), False, None, ("accuracy = 0.81 misses >= 0.999",), 7)
    >>> result.exit_code, result.to_dict()["stages"][0]["ok"]
    (9, False)
    """

    model: str
    version: int
    stages: tuple[CiStage, ...]
    passed: bool  # the release gate's verdict
    promoted: str | None  # the alias now pointing at the version (None: none was asked for, or the gate failed)
    failed_rules: tuple[str, ...]  # the reason of each failed gate rule, one line each
    evaluation_id: int  # the stored evaluation (``amploop models show`` lists it)

    @property
    def exit_code(self) -> int:
        """0 when the gate passed; :attr:`GateFailed.exit_code` (9) when it said no."""
        return 0 if self.passed else GateFailed.exit_code

    @property
    def reference(self) -> str:
        """``NAME:VERSION`` of the registered version."""
        return f"{self.model}:{self.version}"

    def to_dict(self) -> dict[str, Any]:
        return {
            "model": self.model,
            "version": self.version,
            "passed": self.passed,
            "exit_code": self.exit_code,
            "promoted": self.promoted,
            "failed_rules": list(self.failed_rules),
            "evaluation_id": self.evaluation_id,
            "stages": [s.to_dict() for s in self.stages],
        }


def _plural(count: int, word: str) -> str:
    return f"{count} {word}{'' if count == 1 else 's'}"


def _data_summary(quality: QualityReport, reason: str | None) -> str:
    counts = quality.counts()
    rows = f"{quality.dataset.get('rows', 0):,} rows"
    warned = sorted({f.check for f in quality.findings if f.severity == "warn"})
    notes = [f"{_plural(counts['warn'], 'warning')} ({', '.join(warned)})"] if warned else []
    notes += [f"{counts['info']} info"] if counts["info"] else []
    if counts["block"]:  # training went ahead only because it was allowed, with a reason
        allowed = f"{_plural(counts['block'], 'blocking finding')} allowed ({reason})"
        return f"{rows}: " + "; ".join([allowed, *notes])
    return f"{rows}: no blocking findings" + (f"; {', '.join(notes)}" if notes else "")


def _train_summary(trained: TrainOutcome) -> str:
    metrics = trained.metrics
    if "test_accuracy" in metrics:
        score = f"test accuracy {metrics['test_accuracy']:.4f}"
    else:
        score = f"test RMSE {metrics.get('test_rmse', float('nan')):.4f}"
    precision = trained.fit.train_result.precision.mode
    return f"registered {trained.reference}: {score} ({precision})"


def _evaluation_summary(evaluation: EvaluationOutcome) -> str:
    report = evaluation.report
    name = "accuracy" if report.task == "classification" else "rmse"
    value = report.metrics.get(name)
    shown = f"{name} {value:.4f}" if isinstance(value, float) else f"{name} n/a"
    return f"evaluation {evaluation.stored.id} on {report.dataset['rows']:,} test rows: {shown}"


def _gate_summary(verdict: GateVerdict, promoted: str | None, reference: str) -> str:
    failed, skipped = verdict.failed_rules(), verdict.skipped_rules()
    total = _plural(len(verdict.rules), "rule")
    if failed:
        return f"fail: {', '.join(r.metric for r in failed)} ({len(failed)} of {total} failed)"
    passed = f"pass: {len(verdict.rules) - len(skipped)} of {total} passed" + (
        f", {len(skipped)} skipped" if skipped else ""
    )
    return passed + (f"; {promoted} is now {reference}" if promoted else "")


def run_ci(
    config: AmploopConfig,
    *,
    dataset: str | None = None,
    store: Store | None = None,
    promote_to: str | None = None,
    allow_quality_issues: bool = False,
    reason: str | None = None,
    progress: bool = False,
    on_stage: Callable[[CiStage], None] | None = None,
) -> CiResult:
    """Check the data, train and register a version, evaluate it against its gate; promote it when asked.

    ``dataset`` (a built-in name or a file) overrides ``data.source``. ``promote_to`` (an alias,
    e.g. ``champion``) is moved to the version only when its gate passed. ``on_stage`` is called
    with each :class:`CiStage` as it finishes (the data and train stages together, as one call
    runs both). ``store`` defaults to the workspace's (opened and closed here). The run is one
    process: under a torchrun of several processes it is refused (train with ``amploop train
    --nproc-per-node``, then ``amploop evaluate --gate``).
    """
    from amploop.registry.aliases import promote
    from amploop.registry.evaluations import evaluate_version
    from amploop.registry.store import Store
    from amploop.registry.training import train_version

    if promote_to is not None:
        check_name(promote_to, what="alias")  # a typo is refused before the training, not after it
    if int(os.environ.get("WORLD_SIZE", "1")) > 1:
        raise UsageError(
            "amploop ci runs as one process; under torchrun, train with `amploop train --nproc-per-node N` "
            "and gate with `amploop evaluate NAME:VERSION --gate`"
        )
    if store is None:
        with Store.open() as opened:
            return run_ci(
                config,
                dataset=dataset,
                store=opened,
                promote_to=promote_to,
                allow_quality_issues=allow_quality_issues,
                reason=reason,
                progress=progress,
                on_stage=on_stage,
            )
    stages: list[CiStage] = []

    def finished(stage: CiStage) -> None:
        stages.append(stage)
        if on_stage is not None:
            on_stage(stage)

    started = time.perf_counter()
    trained = train_version(
        config,
        dataset=dataset,
        store=store,
        progress=progress,
        allow_quality_issues=allow_quality_issues,
        reason=reason,
    )
    assert trained is not None  # one process is rank 0
    quality = trained.quality
    finished(CiStage("data", quality.seconds, True, _data_summary(quality, reason)))
    train_seconds = max(time.perf_counter() - started - quality.seconds, 0.0)
    finished(CiStage("train", train_seconds, True, _train_summary(trained)))

    started = time.perf_counter()
    evaluation = evaluate_version(trained.reference, config, store=store)
    finished(CiStage("evaluate", time.perf_counter() - started, True, _evaluation_summary(evaluation)))

    verdict = evaluation.report.verdict
    started = time.perf_counter()
    promoted = None
    if verdict.passed and promote_to is not None:
        promote(store, trained.version.name, trained.version.version, alias=promote_to, reason=PROMOTION_REASON)
        promoted = promote_to
    gate = _gate_summary(verdict, promoted, trained.reference)
    finished(CiStage("gate", time.perf_counter() - started, verdict.passed, gate))
    return CiResult(
        model=trained.version.name,
        version=trained.version.version,
        stages=tuple(stages),
        passed=verdict.passed,
        promoted=promoted,
        failed_rules=tuple(r.reason for r in verdict.failed_rules()),
        evaluation_id=evaluation.stored.id,
    )
