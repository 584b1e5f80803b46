"""Train, validation and test rows: the dataset's own split when it has one, else a seeded one.

Each part is a derived :class:`~amploop.data.dataset.Dataset` with its own fingerprint and a
transformation note, so lineage records exactly which rows trained, validated and tested a model,
and evaluation can rebuild the test rows from the run's recorded seed and fractions.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from amploop.data.dataset import Dataset

__all__ = ["SplitPlan", "prepare_splits"]


@dataclass(frozen=True)
class SplitPlan:
    """The train, validation and test rows, each a derived dataset with its own fingerprint."""

    train: Dataset
    validation: Dataset
    test: Dataset


def prepare_splits(
    dataset: Dataset,
    *,
    validation_fraction: float,
    test_fraction: float,
    seed: int,
    exclude: np.ndarray | None = None,
) -> SplitPlan:
    """Use the dataset's own train/test split when it has one; else a seeded random split.

    ``exclude`` (row positions, e.g. suspicious rows) leaves the training and validation rows; the
    test rows stay as they are, so the evaluation still measures the data as it comes.
    """
    rng = np.random.default_rng(seed)
    if "train" in dataset.splits and "test" in dataset.splits:
        train_pos = np.asarray(dataset.splits["train"])
        test_pos = np.asarray(dataset.splits["test"])
    else:
        order = rng.permutation(dataset.n_rows)
        n_test = max(1, int(round(test_fraction * dataset.n_rows)))
        test_pos, train_pos = np.sort(order[:n_test]), np.sort(order[n_test:])
    shuffled = rng.permutation(train_pos)
    n_val = max(1, int(round(validation_fraction * len(shuffled))))
    val_pos, fit_pos = np.sort(shuffled[:n_val]), np.sort(shuffled[n_val:])
    note = ""
    if exclude is not None and len(exclude):
        dropped = np.isin(fit_pos, exclude).sum() + np.isin(val_pos, exclude).sum()
        fit_pos, val_pos = fit_pos[~np.isin(fit_pos, exclude)], val_pos[~np.isin(val_pos, exclude)]
        note = f", without {int(dropped)} suspicious rows"
    return SplitPlan(
        train=dataset.take(fit_pos, name=f"{dataset.name}[train]", transformation=f"training rows (seed {seed}){note}"),
        validation=dataset.take(
            val_pos, name=f"{dataset.name}[validation]", transformation=f"validation rows (seed {seed}){note}"
        ),
        test=dataset.take(test_pos, name=f"{dataset.name}[test]", transformation="held-out test rows"),
    )
