"""The loop controller: watch a served model, retrain when the evidence says so, and keep a way back.

One :meth:`LoopController.step`:

1. **Lease.** Take the model's lease in the store (:mod:`amploop.registry.loop_state`); while
   another live controller holds it, do nothing. A background thread renews it during a step.
2. **Recover.** A ``retrain`` decision with nothing after it was left by a controller that died
   mid-step (its lease expired). The champion alias only ever moves in one transaction, so it is
   consistent; the step is recorded as ``abandoned`` with the challenger it may have registered.
3. **Watch.** Report every new full window of the champion's traffic (:func:`monitor_model`).
4. **Judge the last promotion.** After the loop promoted a challenger, once it has served
   ``loop.rollback_min_labels`` labelled rows, both it and the version it replaced are scored on
   those same rows; when it is more than ``loop.rollback_drop`` behind, the champion is rolled
   back (``rolled_back``), otherwise the promotion is ``confirmed``.
5. **Decide.** Apply the trigger rules and brakes (:func:`decide_retrain`) to the newest window
   not decided on yet; retrain (:func:`retrain`) when they say so, or record why not (``blocked``).

With ``loop.enabled`` false the controller watches and records what it would do, and acts on
nothing. :meth:`LoopController.run` repeats steps every ``loop.check_interval_s``; :meth:`stop`
(the CLI's SIGTERM) lets the current step finish and then releases the lease.
"""

from __future__ import annotations

import os
import socket
import threading
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from amploop.config import AmploopConfig
from amploop.errors import NotFound
from amploop.loop.policy import TriggerDecision, decide_retrain

if TYPE_CHECKING:
    from amploop.registry.records import LoopDecisionRecord
    from amploop.registry.store import Store

__all__ = ["LoopController", "LoopStep", "loop_status"]

ACTOR = "amploop-loop"
CLOSING = ("promoted", "rejected", "abandoned", "blocked")  # kinds that end a retrain step


@dataclass(frozen=True)
class LoopStep:
    """What one step of the controller saw and did."""

    model: str
    acted: str  # waiting | watched | retrained | rolled_back | confirmed | blocked | recovered
    champion: int | None
    lease_holder: str | None
    new_windows: int
    trigger: TriggerDecision | None
    decisions: list[LoopDecisionRecord] = field(default_factory=list)
    seconds: float = 0.0

    def to_dict(self) -> dict[str, Any]:
        return {
            "model": self.model,
            "acted": self.acted,
            "champion": self.champion,
            "lease_holder": self.lease_holder,
            "new_windows": self.new_windows,
            "trigger": None if self.trigger is None else self.trigger.to_dict(),
            "decisions": [d.to_dict() for d in self.decisions],
            "seconds": self.seconds,
        }


class _Renewer(threading.Thread):
    """Renews the lease every third of its time-to-live while a step runs; notes when it was lost."""

    def __init__(self, store: Store, name: str, holder: str, ttl_s: float) -> None:
        super().__init__(name=f"amploop-lease-{name}", daemon=True)
        self.store, self.name_, self.holder, self.ttl_s = store, name, holder, ttl_s
        self.finished = threading.Event()
        self.lost: str | None = None

    def run(self) -> None:
        while not self.finished.wait(self.ttl_s / 3):
            try:
                if not self.store.renew_lease(self.name_, self.holder, ttl_s=self.ttl_s):
                    self.lost = "another controller took the model's lease over"
                    return
            except Exception as exc:  # noqa: BLE001 - a store outage: the lease runs out, the step must not promote
                self.lost = f"the lease could not be renewed ({exc})"
                return


class LoopController:
    """One model's closed loop: steps of lease → recover → watch → judge → decide, stored as decisions."""

    def __init__(
        self,
        store: Store,
        name: str,
        config: AmploopConfig | None = None,
        *,
        holder: str | None = None,
        progress: bool = False,
    ) -> None:
        self.store, self.name, self.config = store, name, config or AmploopConfig()
        self.holder = holder or f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:6]}"
        self.progress = progress
        self._stop = threading.Event()
        self._decided_window = self._last_decided_window()

    # -- running ----------------------------------------------------------------------------

    def stop(self) -> None:
        """Stop after the current step (the lease is then released)."""
        self._stop.set()

    @property
    def stopping(self) -> bool:
        return self._stop.is_set()

    def run(
        self, *, once: bool = False, interval_s: float | None = None, on_step: Callable[[LoopStep], None] | None = None
    ) -> list[LoopStep]:
        """Step until :meth:`stop` (or once), ``interval_s`` (default ``loop.check_interval_s``) apart."""
        interval = interval_s if interval_s is not None else self.config.loop.check_interval_s
        steps: list[LoopStep] = []
        try:
            while not self._stop.is_set():
                step = self.step()
                steps.append(step)
                if on_step is not None:
                    on_step(step)
                if once:
                    break
                self._stop.wait(interval)
        finally:
            self.store.release_lease(self.name, self.holder)
        return steps

    def step(self) -> LoopStep:
        """One look at the model; see the module's docstring for what it does."""
        started = time.perf_counter()
        loop = self.config.loop
        self.store.get_model_version(self.name)  # an unknown model is a one-line error, not an idle loop
        lease = self.store.acquire_lease(self.name, self.holder, ttl_s=loop.lease_ttl_s)
        if lease is None:
            held = self.store.lease(self.name)
            return self._done("waiting", started, holder=None if held is None else held.holder)
        renewer = _Renewer(self.store, self.name, self.holder, loop.lease_ttl_s)
        renewer.start()
        try:
            return self._step(started, renewer)
        except KeyboardInterrupt:  # a second Ctrl-C or SIGTERM: close the open step before leaving
            self._recover("the controller was interrupted before deciding")
            raise
        finally:
            renewer.finished.set()
            renewer.join()

    # -- one step ---------------------------------------------------------------------------

    def _step(self, started: float, renewer: _Renewer) -> LoopStep:
        from amploop.monitor.windows import monitor_model

        decisions: list[LoopDecisionRecord] = []
        recovered = self._recover()
        if recovered is not None:
            decisions.append(recovered)
        champion = self.store.alias_version(self.name, "champion")
        if champion is None:
            raise NotFound(f"model '{self.name}' has no champion; promote a version before the loop watches it")
        watched = monitor_model(self.name, version=champion, store=self.store, config=self.config.monitor)
        judged = self._judge_promotion(champion)
        if judged is not None:
            decisions.append(judged)
            if judged.kind == "rolled_back":  # the evidence was about the version just taken down
                return self._done("rolled_back", started, windows=watched, decisions=decisions)
        trigger, decided = self._decide(champion, renewer)
        decisions.extend(decided)
        kinds = [d.kind for d in decided]
        if "retrain" in kinds:
            acted = "retrained"
        elif "blocked" in kinds:
            acted = "blocked"
        elif judged is not None:
            acted = judged.kind
        else:
            acted = "recovered" if recovered is not None else "watched"
        return self._done(acted, started, windows=watched, trigger=trigger, decisions=decisions)

    def _done(
        self,
        acted: str,
        started: float,
        *,
        holder: str | None = None,
        windows: Any = None,
        trigger: TriggerDecision | None = None,
        decisions: list[LoopDecisionRecord] | None = None,
    ) -> LoopStep:
        return LoopStep(
            model=self.name,
            acted=acted,
            champion=self.store.alias_version(self.name, "champion"),  # as the step leaves it
            lease_holder=holder or self.holder,
            new_windows=0 if windows is None else len(windows.windows),
            trigger=trigger,
            decisions=decisions or [],
            seconds=round(time.perf_counter() - started, 3),
        )

    def _last_decided_window(self) -> int:
        for decision in reversed(self.store.loop_decisions(self.name, limit=50)):
            if "window_id" in decision.numbers:
                return int(decision.numbers["window_id"])
        return 0

    def _recover(
        self, why: str = "the controller that started it stopped before deciding (its lease expired)"
    ) -> LoopDecisionRecord | None:
        """Close a retrain step that a dead controller left open: abandoned, champion unchanged."""
        last = self.store.loop_decisions(self.name, limit=1)
        if not last or last[-1].kind != "retrain":
            return None
        opened = last[-1]
        later = [v for v in self.store.list_model_versions(self.name) if v.created_at > opened.at]
        champion = self.store.alias_version(self.name, "champion")
        return self.store.record_loop_decision(
            self.name,
            "abandoned",
            reasons=[
                f"retrain decision {opened.id}: {why}; the champion is {self.name}:{champion}"
                + (f"; version {later[-1].version} it registered stays unpromoted" if later else "")
            ],
            numbers={"retrain_decision": opened.id, "registered": [v.version for v in later]},
            champion_version=champion,
            challenger_version=later[-1].version if later else None,
            actor=ACTOR,
        )

    def _judge_promotion(self, champion: int) -> LoopDecisionRecord | None:
        """After the loop's last promotion: keep the new champion, or roll back to the one it replaced."""
        from amploop.loop.retrain import accuracy_on, labelled_rows
        from amploop.registry.aliases import rollback

        loop = self.config.loop
        judged = [d for d in self.store.loop_decisions(self.name) if d.kind in ("promoted", "confirmed", "rolled_back")]
        if not judged or judged[-1].kind != "promoted" or judged[-1].challenger_version != champion:
            return None
        promoted = judged[-1]
        previous = promoted.champion_version
        target = self._target(champion)
        rows = labelled_rows(self.store, self.name, target, version=champion, since=promoted.at)
        if len(rows) < loop.rollback_min_labels:
            return None
        new = accuracy_on(self.store, f"{self.name}:{champion}", rows, target)
        old = accuracy_on(self.store, f"{self.name}:{previous}", rows, target)
        numbers = {
            "labelled_rows": len(rows),
            "accuracy": {"champion": new, "previous": old},
            "rollback_drop": loop.rollback_drop,
            "promotion_decision": promoted.id,
        }
        behind = old - new
        if behind <= loop.rollback_drop:
            return self.store.record_loop_decision(
                self.name,
                "confirmed",
                reasons=[
                    f"on {len(rows)} labelled rows it served, {self.name}:{champion} scores {new:.3f} and "
                    f"{self.name}:{previous} would have scored {old:.3f}; it stays"
                ],
                numbers=numbers,
                champion_version=previous,
                challenger_version=champion,
                actor=ACTOR,
            )
        reason = (
            f"on {len(rows)} labelled rows it served, {self.name}:{champion} scores {new:.3f}, {behind:.3f} behind "
            f"{self.name}:{previous} ({old:.3f}); loop.rollback_drop is {loop.rollback_drop:g}"
        )
        if not loop.enabled:
            return self.store.record_loop_decision(
                self.name,
                "blocked",
                reasons=[f"would roll back: {reason}", "loop.enabled is false, so the loop only watches"],
                numbers=numbers,
                champion_version=champion,
                actor=ACTOR,
            )
        rollback(self.store, self.name, to=previous, reason=f"loop: {reason}", actor=ACTOR)
        return self.store.record_loop_decision(
            self.name,
            "rolled_back",
            reasons=[reason],
            numbers=numbers,
            champion_version=previous,
            challenger_version=champion,
            actor=ACTOR,
        )

    def _target(self, version: int) -> str:
        from amploop.data import open_dataset

        record = self.store.get_model_version(self.name, version)
        stored = {} if record.run_id is None else self.store.get_run(record.run_id).config
        data = stored.get("data", {})
        return data.get("target") or open_dataset(data.get("source") or "adult").target

    def _decide(self, champion: int, renewer: _Renewer) -> tuple[TriggerDecision | None, list[LoopDecisionRecord]]:
        from amploop.loop.retrain import retrain

        windows = self.store.drift_reports(self.name, version=champion)
        if not windows or windows[-1].id <= self._decided_window:
            return None, []  # no new evidence since the last decision
        newest = windows[-1]
        decisions = self.store.loop_decisions(self.name)
        retrains = [d.at for d in decisions if d.kind == "retrain"]
        last = max(retrains, default=None)
        new_rows = sum(w.report["window"]["n_rows"] for w in windows if last is None or w.last_at > last)
        now = datetime.now(UTC)
        trigger = decide_retrain(
            [w.report for w in windows],
            self.config.loop,
            now=now,
            new_rows=new_rows,
            retrains=retrains,
            reference_accuracy=newest.report["reference"].get("accuracy"),  # as the monitor's alerts judge it
            trained_at=self.store.get_model_version(self.name, champion).created_at,
        )
        self._decided_window = newest.id
        evidence = {**trigger.evidence, "window_id": newest.id}
        if not trigger.reasons:
            return trigger, []
        if trigger.blocked is not None or not self.config.loop.enabled:
            why = trigger.blocked or "loop.enabled is false, so the loop only watches"
            blocked = self.store.record_loop_decision(
                self.name,
                "blocked",
                reasons=[*trigger.reasons, why],
                numbers=evidence,
                champion_version=champion,
                actor=ACTOR,
            )
            return trigger, [blocked]
        before = max((d.id for d in decisions), default=0)
        retrain(
            self.store,
            self.name,
            self.config,
            reasons=trigger.reasons,
            evidence=evidence,
            guard=lambda: renewer.lost,
            actor=ACTOR,
            progress=self.progress,
        )
        return trigger, [d for d in self.store.loop_decisions(self.name, limit=5) if d.id > before]


def loop_status(store: Store, name: str, *, limit: int = 10) -> dict[str, Any]:
    """Where ``name``'s loop stands: champion, lease, newest window, and the last decisions."""
    store.get_model_version(name)
    champion = store.alias_version(name, "champion")
    lease = store.lease(name)
    now = datetime.now(UTC)
    windows = store.drift_reports(name, version=champion, limit=1) if champion is not None else []
    newest = windows[-1].report if windows else None
    return {
        "model": name,
        "champion": champion,
        "lease": None if lease is None else {**lease.to_dict(), "active": lease.expires_at > now},
        "newest_window": None
        if newest is None
        else {
            "rows": [newest["window"]["first_row"], newest["window"]["last_row"]],
            "drifted": windows[-1].drifted,
            "realized": newest.get("realized"),
            "estimated": newest.get("estimated"),
            "alerts": [a["message"] for a in newest.get("alerts", [])],
        },
        "decisions": [d.to_dict() for d in store.loop_decisions(name, limit=limit)],
    }
