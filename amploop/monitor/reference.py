"""A model version's reference: the profile of its training rows and its outputs on held-out rows.

Built once per version from the rows its run trained on (rebuilt and fingerprint-checked as
evaluation does) and stored as an artifact; later windows reuse it without reading those rows.

- feature profile: the training and validation rows (the rows the model learned from);
- output profile and sample: the calibrated probabilities on the *validation* rows, never the
  training rows, on which a model is more confident than on anything it will serve;
- performance: accuracy and F1 on the validation rows, the level a window is compared with;
  (a regressor's reference has its feature profile only: its windows report input drift);
- calibration: the version's temperature decision (kept or not, and why) and its held-out ECE,
  which widens the label-free estimate's interval (:mod:`amploop.monitor.estimate`).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd

from amploop.monitor.estimate import calibration_from_decision, realized_performance
from amploop.monitor.profile import Profile

if TYPE_CHECKING:
    from amploop.models.runtime import Predictor
    from amploop.registry.store import Store

__all__ = ["Reference", "reference_for"]


@dataclass
class Reference:
    """What a version's windows are compared with."""

    profile: Profile
    probabilities: np.ndarray  # (n, classes): calibrated outputs on validation rows (a seeded sample)
    classes: list[str]
    kinds: dict[str, str]  # feature column -> kind
    target: str

    @property
    def accuracy(self) -> float | None:
        return self.profile.meta.get("accuracy")

    @property
    def calibration(self) -> dict[str, Any] | None:
        return self.profile.meta.get("calibration")


def _kinds(predictor: Predictor) -> dict[str, str]:
    target = predictor.bundle.target
    return {c.name: c.kind for c in predictor.schema_.columns if c.name != target}


def build_reference(
    store: Store, name: str, version: int, predictor: Predictor, *, sample_size: int, seed: int = 0
) -> Reference:
    """Profile the version's training rows and score its validation rows (see the module docstring)."""
    from amploop.registry.evaluations import rebuild_splits

    bundle = predictor.bundle
    record = store.get_model_version(name, version)
    plan = rebuild_splits(store, record)
    kinds = _kinds(predictor)
    rows = pd.concat([plan.train.table, plan.validation.table], ignore_index=True)
    arrays = {k: np.concatenate([plan.train.arrays[k], plan.validation.arrays[k]]) for k in plan.train.arrays}
    categories = {c.name: c.categories or () for c in predictor.schema_.columns if c.kind == "categorical"}
    profile = Profile.from_table(rows, kinds, arrays=arrays, categories=categories, seed=seed)
    profile.meta.update(model=f"{name}:{version}", kinds=kinds, classes=[], target=bundle.target)
    if bundle.task != "classification" or not bundle.classes:  # a regressor: its inputs are watched, not its outputs
        return Reference(profile, np.zeros((0, 0)), [], kinds, bundle.target)
    validation = plan.validation
    probabilities = predictor.predict_outputs(validation.table, validation.arrays or None)
    classes = [str(c) for c in bundle.classes]
    profile.add_outputs(probabilities, classes, reference=True)
    labels = _label_indices(validation.table[bundle.target].tolist(), classes)
    known = labels >= 0
    realized = realized_performance(labels[known], probabilities[known].argmax(axis=1), len(classes))
    profile.meta.update(
        accuracy=realized.accuracy,
        f1=realized.f1,
        f1_kind=realized.f1_kind,
        validation_rows=int(len(labels)),
        calibration=calibration_from_decision(bundle.temperature_decision),
        classes=classes,
    )
    if len(probabilities) > sample_size:
        keep = np.sort(np.random.default_rng(seed).choice(len(probabilities), sample_size, replace=False))
        probabilities = probabilities[keep]
    return Reference(profile, np.asarray(probabilities, dtype=np.float64), classes, kinds, bundle.target)


def reference_for(
    store: Store, name: str, version: int, *, predictor: Predictor | None = None, sample_size: int = 5000
) -> Reference:
    """The stored reference of ``name:version``, built and stored first when there is none yet."""
    stored = store.load_profile(name, version)
    if stored is not None:
        profile, samples = Profile.from_bytes(stored)
        meta = profile.meta
        probabilities = samples.get("probabilities", np.zeros((0, 0)))
        return Reference(profile, probabilities, list(meta["classes"]), dict(meta["kinds"]), meta["target"])
    if predictor is None:
        from amploop.registry.loading import load_model

        predictor = load_model(f"{name}:{version}", store=store)
    reference = build_reference(store, name, version, predictor, sample_size=sample_size)
    store.save_profile(
        name,
        version,
        reference.profile.to_bytes({"probabilities": reference.probabilities}),
        n_rows=reference.profile.n_rows,
    )
    return reference


def _label_indices(labels: list[Any], classes: list[str]) -> np.ndarray:
    """Each label's class index, or -1 for a label that is not one of the classes."""
    index = {c: i for i, c in enumerate(classes)}
    return np.array([index.get(_label_text(v), -1) for v in labels], dtype=np.int64)


def _label_text(value: Any) -> str:
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    return str(value)
