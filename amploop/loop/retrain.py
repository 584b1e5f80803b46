"""One retrain of the closed loop: new data → challenger → the same rows for both → gate → promote or reject.

1. **Data.** The original training data (that of the first version in the champion's line: follow
   ``parent_version`` back to a version the loop did not train) plus every served row labelled
   through feedback, in arrival order; so a row is never counted twice, however many retrains
   came before. The newest labelled rows are the *recent holdout*, which neither model trains
   on: a fifth of the labelled rows (of at most ``loop.window_rows`` of them when sliding, so the
   holdout stays recent), at least one. ``loop.data_window`` ``expanding`` trains on everything
   else; ``sliding`` on the newest ``loop.window_rows`` rows of it. The training set is written
   as a CSV under the workspace (``loop/NAME``) and trained from there; the run records it as a
   derived dataset, the original data its parent and the recipe its transformation, and the
   data-quality check runs on it as on any training data.
2. **Challenger.** Trained with the champion's configuration (architecture, options, seed,
   precision choice); its run records the champion as ``parent_version``.
3. **Same rows.** Champion and challenger are scored on the recent holdout and on the champion's
   original test rows (rebuilt from its run and fingerprint-checked): what it was last trained
   for, so a challenger may move with the world but not forget the world just before.
4. **Gate.** The challenger must beat the champion on the recent holdout by ``loop.gate_margin``
   and lose no more than ``loop.max_original_regression`` on the original test rows. Then it is
   evaluated as any version is (its release gate), and promoted; otherwise rejected.

Every step is a stored :class:`~amploop.registry.records.LoopDecisionRecord` with its numbers.
"""

from __future__ import annotations

import dataclasses
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd

from amploop.config import AmploopConfig
from amploop.errors import GateFailed, NotFound, UsageError

if TYPE_CHECKING:
    from amploop.registry.records import LoopDecisionRecord, ModelVersionRecord
    from amploop.registry.store import Store

__all__ = ["RetrainOutcome", "accuracy_on", "labelled_rows", "retrain"]

HOLDOUT_SHARE = 0.2  # the newest labelled rows kept out of training, for both models' recent score
PAGE_REQUESTS = 2000


@dataclass(frozen=True)
class RetrainOutcome:
    """What one retrain decided: ``promoted``, ``rejected`` or ``blocked``, with every number it used."""

    decision: LoopDecisionRecord
    champion: int
    challenger: int | None
    numbers: dict[str, Any]

    @property
    def promoted(self) -> bool:
        return self.decision.kind == "promoted"

    def to_dict(self) -> dict[str, Any]:
        return {
            "decision": self.decision.to_dict(),
            "champion": self.champion,
            "challenger": self.challenger,
            "numbers": self.numbers,
        }


def labelled_rows(
    store: Store, name: str, target: str, *, version: int | None = None, since: datetime | None = None
) -> pd.DataFrame:
    """Every served row of ``name`` (by ``version``, from ``since``, when given) that got a feedback
    label, in arrival order, with the label as ``target``."""
    rows: list[dict[str, Any]] = []
    after = None
    while True:
        page = store.prediction_log(name, version=version, since=since, after_id=after, limit=PAGE_REQUESTS)
        if not page:
            break
        labels = {(f.request_id, f.row): f.label for f in store.feedback([r.request_id for r in page])}
        for request in page:
            for i, record in enumerate(request.features):
                if (request.request_id, i) in labels:
                    rows.append({**record, target: labels[(request.request_id, i)]})
        if len(page) < PAGE_REQUESTS:
            break
        after = page[-1].id
    return pd.DataFrame.from_records(rows)


def accuracy_on(store: Store, reference: str, table: pd.DataFrame, target: str) -> float:
    """The share of ``table``'s rows that model ``reference`` (``name:version``) labels as ``target`` says."""
    from amploop.registry.loading import load_model

    predictor = load_model(reference, store=store)
    predicted = predictor.predict(table.drop(columns=[target]))
    truth = [str(v) for v in table[target].tolist()]
    return float(np.mean([str(p) == t for p, t in zip(predicted, truth, strict=True)]))


def _root(store: Store, record: ModelVersionRecord) -> ModelVersionRecord:
    """The first version of ``record``'s line: follow ``parent_version`` back to a version the loop did not train."""
    seen = {record.version}
    while record.run_id is not None:
        parent = store.get_run(record.run_id).config.get("parent_version")
        if parent is None or parent in seen:
            break
        seen.add(parent)
        record = store.get_model_version(record.name, int(parent))
    return record


def retrain(
    store: Store,
    name: str,
    config: AmploopConfig,
    *,
    reasons: Sequence[str],
    evidence: Mapping[str, Any] | None = None,
    guard: Callable[[], str | None] | None = None,
    actor: str = "amploop-loop",
    progress: bool = False,
) -> RetrainOutcome:
    """Retrain ``name``'s champion on its data plus the labelled traffic; promote the challenger or reject it.

    ``evidence`` (the trigger's numbers) is kept with the decisions. ``guard`` is asked just before
    the promotion; a reason from it (the controller lost its lease, say) abandons the step instead.
    """
    from amploop.data import open_dataset
    from amploop.registry.aliases import promote
    from amploop.registry.artifacts import write_file_atomically
    from amploop.registry.evaluations import evaluate_version, holdout_dataset
    from amploop.registry.training import train_version

    loop = config.loop
    champion = store.alias_version(name, "champion")
    if champion is None:
        store.get_model_version(name)
        raise NotFound(f"model '{name}' has no champion to retrain; promote a version first")
    record = store.get_model_version(name, champion)
    from amploop.registry.loading import load_model

    if load_model(f"{name}:{champion}", store=store).bundle.task != "classification":
        raise UsageError(
            f"{name}:{champion} is not a classifier; the loop compares accuracy, so it retrains classifiers"
        )
    if record.run_id is None:
        raise UsageError(f"{name}:{champion} has no training run on record, so its configuration is unknown")
    stored = {k: v for k, v in store.get_run(record.run_id).config.items() if k != "parent_version"}
    base = AmploopConfig.model_validate(stored)  # the champion's configuration, as its run recorded it
    root = _root(store, record)  # the version the loop started from: its data and test rows are the original
    target = base.data.target or open_dataset(base.data.source or "adult").target
    recent = labelled_rows(store, name, target)
    numbers: dict[str, Any] = {**(evidence or {}), "labelled_rows": len(recent), "min_new_labels": loop.min_new_labels}
    if len(recent) < max(loop.min_new_labels, 2):
        decision = store.record_loop_decision(
            name,
            "blocked",
            reasons=[*reasons, f"only {len(recent)} labelled rows; loop.min_new_labels is {loop.min_new_labels}"],
            numbers=numbers,
            champion_version=champion,
            actor=actor,
        )
        return RetrainOutcome(decision, champion, None, numbers)
    root_source = store.get_run(root.run_id).config.get("data", {}).get("source") if root.run_id else None
    parent = open_dataset(root_source or base.data.source or "adult", target=target)
    original = parent.table
    span = min(len(recent), loop.window_rows) if loop.data_window == "sliding" else len(recent)
    n_holdout = max(1, int(round(HOLDOUT_SHARE * span)))  # a fifth of what a retrain looks at
    holdout, fresh = recent.iloc[-n_holdout:], recent.iloc[:-n_holdout]
    fresh = fresh.astype({target: original[target].dtype}, errors="ignore")
    training = pd.concat([original, fresh.reindex(columns=original.columns)], ignore_index=True)
    if loop.data_window == "sliding":
        training = training.iloc[-loop.window_rows :]
    folder = store.workspace.home / "loop" / name
    folder.mkdir(parents=True, exist_ok=True)
    stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%S%f")
    source = folder / f"{name}-loop-{stamp}.csv"
    write_file_atomically(source, training.to_csv(index=False).encode("utf-8"))
    how = (
        f"loop retrain of {name}:{champion}: the training data of {name}:{root.version} ({len(original):,} rows) and "
        f"{len(fresh):,} labelled served rows (the newest {len(holdout):,} held out)"
        + (f", the newest {loop.window_rows:,} kept (sliding)" if loop.data_window == "sliding" else "")
    )
    derived = dataclasses.replace(
        open_dataset(str(source), target=target), parents=(parent.fingerprint,), transformation=how
    )
    numbers.update(training_rows=len(training), holdout_rows=len(holdout), data_window=loop.data_window)
    store.record_loop_decision(
        name, "retrain", reasons=list(reasons), numbers=dict(numbers), champion_version=champion, actor=actor
    )
    started = time.perf_counter()
    trained = train_version(
        base.model_copy(update={"data": base.data.model_copy(update={"source": str(source)})}),
        dataset=derived,
        store=store,
        progress=progress,
        parent_version=champion,
    )
    assert trained is not None  # rank 0
    challenger = trained.version.version
    test = holdout_dataset(store, record).table
    scores = {
        "recent": {
            "champion": accuracy_on(store, f"{name}:{champion}", holdout, target),
            "challenger": accuracy_on(store, f"{name}:{challenger}", holdout, target),
        },
        "original": {
            "champion": accuracy_on(store, f"{name}:{champion}", test, target),
            "challenger": accuracy_on(store, f"{name}:{challenger}", test, target),
        },
    }
    gain = scores["recent"]["challenger"] - scores["recent"]["champion"]
    loss = scores["original"]["champion"] - scores["original"]["challenger"]
    numbers.update(
        accuracy=scores,
        recent_gain=gain,
        original_loss=loss,
        gate_margin=loop.gate_margin,
        max_original_regression=loop.max_original_regression,
        train_seconds=round(time.perf_counter() - started, 2),
    )
    why = []
    if gain < loop.gate_margin:
        why.append(
            f"on the recent rows the challenger is {gain:+.3f} against the champion; "
            f"the gate asks for +{loop.gate_margin:g}"
        )
    if loss > loop.max_original_regression:
        why.append(
            f"on the original test rows it loses {loss:.3f}; "
            f"loop.max_original_regression is {loop.max_original_regression:g}"
        )
    stopped = guard() if guard is not None and not why else None
    if stopped is not None:
        decision = store.record_loop_decision(
            name,
            "abandoned",
            reasons=[f"the challenger cleared the loop's gate, but {stopped}; the champion stays"],
            numbers=numbers,
            champion_version=champion,
            challenger_version=challenger,
            actor=actor,
        )
        return RetrainOutcome(decision, champion, challenger, numbers)
    if not why:
        evaluate_version(f"{name}:{challenger}", base, store=store, actor=actor)
        try:
            promote(
                store, name, challenger, reason=f"loop: recent accuracy {gain:+.3f}; " + "; ".join(reasons), actor=actor
            )
        except GateFailed as exc:
            why.append(f"its release gate said no: {exc.message.split('; promoting it anyway')[0]}")
    kind = "rejected" if why else "promoted"
    explained = why or [f"the challenger is {gain:+.3f} on the recent rows and {-loss:+.3f} on the original test rows"]
    decision = store.record_loop_decision(
        name,
        kind,
        reasons=explained,
        numbers=numbers,
        champion_version=champion,
        challenger_version=challenger,
        actor=actor,
    )
    return RetrainOutcome(decision, champion, challenger, numbers)
