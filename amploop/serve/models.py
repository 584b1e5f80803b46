"""The model a server answers with: loaded from the store, checked at its precision, swapped when its alias moves.

:func:`load_served_model` loads a registered version (files verified by SHA-256, read as
safetensors and JSON only) at the chosen precision and runtime. Anything but plain fp32 on
torch is first compared with fp32 on the version's own holdout rows (rebuilt from its run, at
most :data:`PARITY_ROWS`); below ``min_agreement`` the precision is refused with the numbers.

:class:`ModelSlot` holds what a reference such as ``adult@champion`` resolves to now.
:meth:`ModelSlot.refresh` asks the store where the alias points; when it moved (a promotion or
a rollback, from any process), the new version is loaded in the caller's thread — the server
calls it from a background thread — and then swapped in with one assignment. A batch reads
:attr:`ModelSlot.current` once when it starts, so in-flight requests finish on the old model.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd

from amploop.errors import AmploopError, ConfigError
from amploop.names import ModelRef, parse_model_ref
from amploop.serve.scoring import Rows, Scores, score_rows

if TYPE_CHECKING:
    from amploop.models.runtime import ParityCheck, Predictor
    from amploop.registry.store import Store

__all__ = ["PARITY_ROWS", "ModelSlot", "ServedModel", "load_served_model"]

PARITY_ROWS = 2000  # holdout rows a reduced precision is checked on at load


@dataclass(frozen=True)
class ServedModel:
    """One loaded version, ready to score batches."""

    name: str
    version: int
    predictor: Predictor
    precision: str
    runtime: str
    precision_reason: str
    parity: ParityCheck | None
    loaded_at: datetime = field(default_factory=lambda: datetime.now(UTC))

    @property
    def reference(self) -> str:
        return f"{self.name}:{self.version}"

    def run(self, inputs: list[Rows]) -> list[Scores]:
        """Score several requests' rows in one forward pass; one :class:`Scores` per request."""
        # records_to_rows has validated every field already; the encoder does the rest
        scores = score_rows(self.predictor, Rows.join(inputs))
        out, start = [], 0
        for part in inputs:
            rows = slice(start, start + part.n)
            out.append(
                Scores(
                    scores.version,
                    scores.predictions[rows],
                    None if scores.probabilities is None else scores.probabilities[rows],
                    scores.classes,
                    None if scores.confidence is None else scores.confidence[rows],
                )
            )
            start += part.n
        return out

    def describe(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "version": self.version,
            "precision": self.precision,
            "runtime": self.runtime,
            "precision_reason": self.precision_reason,
            "parity": None if self.parity is None else self.parity.to_dict(),
            "loaded_at": self.loaded_at.isoformat(),
        }


def load_served_model(
    store: Store,
    name: str,
    version: int,
    *,
    precision: str = "fp32",
    runtime: str = "torch",
    device: str = "cpu",
    min_agreement: float = 0.99,
) -> ServedModel:
    """Load ``name:version`` for serving; a reduced precision must agree with fp32 on the holdout first."""
    from amploop.models.runtime import check_parity, choose_inference_precision
    from amploop.registry.loading import load_model

    chosen, reason = choose_inference_precision(precision, device)
    reference = f"{name}:{version}"
    predictor = load_model(reference, store=store, precision=chosen, runtime=runtime, device=device)
    if chosen == "fp32" and predictor.runtime == "torch":
        return ServedModel(name, version, predictor, chosen, "torch", reason, None)
    table, arrays = _holdout_sample(store, name, version, chosen)
    baseline = load_model(reference, store=store, precision="fp32", device=device)
    parity = check_parity(predictor, baseline, table, arrays or None)
    if not parity.passed(min_agreement):
        raise ConfigError(
            f"{reference} at {chosen} on {predictor.runtime} agrees with fp32 on {parity.agreement:.2%} of "
            f"{parity.rows} holdout rows, below serve.min_precision_agreement {min_agreement:.2%}; "
            "serve it at fp32 (--precision fp32) or lower the threshold knowingly"
        )
    return ServedModel(name, version, predictor, chosen, predictor.runtime, reason, parity)


def _holdout_sample(
    store: Store, name: str, version: int, precision: str
) -> tuple[pd.DataFrame, dict[str, np.ndarray]]:
    from amploop.registry.evaluations import holdout_dataset

    record = store.get_model_version(name, version)
    try:
        holdout = holdout_dataset(store, record)
    except AmploopError as exc:
        raise ConfigError(
            f"{name}:{version} cannot be checked at {precision} against fp32: its holdout rows cannot be "
            f"rebuilt ({exc.message}); serve it at fp32"
        ) from None
    rows = min(len(holdout.table) if len(holdout.table.columns) else holdout.n_rows, PARITY_ROWS)
    table = holdout.table.iloc[:rows]
    arrays = {k: v[:rows] for k, v in holdout.arrays.items()}
    return table, arrays


class ModelSlot:
    """What a reference (``NAME@ALIAS``, ``NAME:V`` or ``NAME``) serves now, swapped atomically.

    ``load(name, version) -> ServedModel`` loads a version; it is called at start and on each move.
    A failed load keeps the model being served and records why in :attr:`last_error`.
    """

    def __init__(self, store: Store, reference: str, load: Any) -> None:
        self.store = store
        self.ref: ModelRef = parse_model_ref(reference)
        self.reference = reference
        self.load = load
        self.current: ServedModel | None = None
        self.last_error: str | None = None
        self.swaps = 0
        self._lock = threading.Lock()  # one refresh at a time; readers never take it

    def target_version(self) -> int:
        """The version the reference names in the store now."""
        from amploop.registry.evaluations import resolve_version

        return resolve_version(self.store, self.ref).version

    def refresh(self) -> bool:
        """Load and swap in the version the reference names now, if it changed; True when it swapped."""
        with self._lock:
            try:
                version = self.target_version()
                if self.current is not None and self.current.version == version:
                    return False
                loaded = self.load(self.ref.name, version)
            except AmploopError as exc:
                if self.current is None:
                    raise
                self.last_error = exc.message
                return False
            previous, self.current = self.current, loaded  # the swap: one reference assignment
            self.last_error = None
            if previous is not None:
                self.swaps += 1
            return True
