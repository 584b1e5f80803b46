"""How many rows per step, steps per epoch and epochs a run takes, and which epoch is best.

Defaults have to fit a 150-row table as well as a 100,000-row one:

- **batch size** is capped so an epoch has at least :data:`MIN_STEPS_PER_EPOCH` steps (never
  below :data:`MIN_BATCH_SIZE` rows, never above the rows there are); 256 rows per step on a
  409-row table would give one step per epoch;
- **no row is dropped**: the last step of an epoch takes the rows that are left (only fewer
  rows than ``gradient_accumulation_steps`` are left out, and the order is reshuffled every
  epoch, so no row is left out for good);
- **epochs** (when not set) are at least :data:`DEFAULT_EPOCHS`, and more on small tables until
  the run takes ``min_steps`` optimizer steps; early-stopping patience grows with them, so a
  run of 60 short epochs does not stop on three noisy ones;
- the **best epoch** is judged on the validation loss, not accuracy: on a 46-row validation
  split accuracy moves in steps of 2% and rarely rises strictly. The loss is taken at its best
  temperature (:func:`~amploop.train.objective.calibrated_losses`), and the latest epoch within
  two standard errors of the lowest is kept (:func:`keep_epoch`).

Examples
--------
>>> plan = plan_steps(409, TrainConfig())
>>> plan.batch_size, plan.steps_per_epoch, plan.epochs, plan.total_steps
(51, 9, 112, 1008)
>>> plan_steps(100_000, TrainConfig()).epochs
5
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch

from amploop.config import TrainConfig
from amploop.errors import TrainingError
from amploop.train.objective import ValidationScores
from amploop.train.state import TrainState

__all__ = ["DEFAULT_EPOCHS", "StepPlan", "keep_epoch", "plan_steps"]

DEFAULT_EPOCHS = 5
MIN_STEPS_PER_EPOCH = 8
MIN_BATCH_SIZE = 16
MAX_AUTO_EPOCHS = 1000
MAX_PAIRED_ROWS = 5000  # larger validation splits compare by the plain standard error
NOISE_Z = 2.0  # standard errors: closer than this, two epochs are not told apart (about 95% two-sided)
LOSS_TOLERANCE = 1e-4  # relative: validation losses closer than this are a tie, whatever the rows


@dataclass(frozen=True)
class StepPlan:
    rows: int  # training rows per process (after DistributedSampler's padding)
    batch_size: int  # rows per micro-batch
    steps_per_epoch: int
    epochs: int
    total_steps: int
    patience: int | None  # epochs without improvement before stopping
    notes: tuple[str, ...]  # what was adjusted, and why, in plain words

    def step_rows(self, step_in_epoch: int, accumulation: int) -> tuple[int, int]:
        """Start and end (into the epoch's order) of the rows one optimizer step takes."""
        per_step = self.batch_size * accumulation
        start = step_in_epoch * per_step
        return start, min(start + per_step, self.rows)


def plan_steps(n_rows: int, config: TrainConfig, world_size: int = 1) -> StepPlan:
    """The batch size, steps and epochs for ``n_rows`` training rows split over ``world_size`` processes."""
    rows = math.ceil(n_rows / world_size)
    accumulation = config.gradient_accumulation_steps
    if rows < accumulation:
        raise TrainingError(
            f"{n_rows} training rows are fewer than one step needs ({accumulation} accumulation × "
            f"{world_size} processes); lower --gradient-accumulation-steps or use fewer processes"
        )
    notes: list[str] = []
    batch = config.batch_size
    cap = max(MIN_BATCH_SIZE, rows // (MIN_STEPS_PER_EPOCH * accumulation))
    cap = max(1, min(cap, rows // accumulation))
    if batch > cap:
        notes.append(f"batch size {batch} capped to {cap} for {n_rows} training rows")
        batch = cap
    per_step = batch * accumulation
    steps_per_epoch = rows // per_step + (1 if rows % per_step >= accumulation else 0)
    if config.epochs is not None:
        epochs = config.epochs
    else:
        epochs = max(DEFAULT_EPOCHS, min(MAX_AUTO_EPOCHS, math.ceil(config.min_steps / steps_per_epoch)))
        if epochs > DEFAULT_EPOCHS:
            notes.append(f"{epochs} epochs so that training takes at least {config.min_steps} optimizer steps")
    total = epochs * steps_per_epoch
    if config.max_steps is not None and config.max_steps < total:
        total = config.max_steps
    patience = config.early_stopping_patience
    if patience is not None and config.epochs is None and epochs > DEFAULT_EPOCHS:
        patience = max(patience, math.ceil(epochs / 5))  # a fifth of the run without a better epoch
    return StepPlan(rows, batch, steps_per_epoch, epochs, total, patience, tuple(notes))


def keep_epoch(state: TrainState, epoch: int, scores: ValidationScores) -> bool:
    """Record an epoch's validation scores in ``state``; True when its weights become the kept ones.

    The kept epoch is the latest whose selection loss is within :data:`NOISE_Z` standard errors
    of the lowest seen so far, the error taken row by row against the lowest epoch (a paired
    comparison): closer than that, the validation split cannot tell the two apart, and the one
    trained longer is kept. On 46 validation rows one row turning wrong moves accuracy by 2% and
    the loss by more than epoch 4 and epoch 50 differ otherwise; a change confined to k rows is
    sqrt(k) standard errors, so up to four rows may move. Epochs beyond the margin count
    towards early stopping.
    """
    loss, rows = scores.selection_loss, scores.per_row
    if not math.isfinite(loss):
        state.bad_epochs += 1
        return False
    if state.lowest_loss is None or loss < state.lowest_loss:
        state.lowest_loss, state.lowest_loss_se = loss, scores.selection_se
        state.lowest_loss_rows = rows.tolist() if rows is not None and len(rows) <= MAX_PAIRED_ROWS else None
    noise = state.lowest_loss_se or 0.0
    if rows is not None and state.lowest_loss_rows is not None and len(rows) == len(state.lowest_loss_rows) > 1:
        diff = rows - torch.tensor(state.lowest_loss_rows, dtype=rows.dtype)
        noise = float(diff.std() / math.sqrt(len(diff)))
    if loss <= state.lowest_loss + max(NOISE_Z * noise, LOSS_TOLERANCE * abs(state.lowest_loss)):
        state.best_loss, state.best_metric, state.best_epoch, state.bad_epochs = loss, scores.metric, epoch, 0
        return True
    state.bad_epochs += 1
    return False
