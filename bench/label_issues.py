"""Label-issue detection (confident learning) against seeded label flips: the screen before and now.

On scikit-learn's digits (1,797 rows, 64 columns, 10 classes), adult (48,842 rows, 2 classes) and
mnist5k (images), 5% and 10% of the labels are flipped (to another class, seeded); the detector never
sees which. Precision: the share of flagged rows that were flipped; recall: the share of flipped rows
that were flagged. Contenders, side by side in this one run:

- ``before``: 5 folds of gradient boosting, 100 rounds at learning rate 0.1 with 31 leaves, on as many
  OpenMP threads as the machine has (on a busy two-core machine its threads wait for each other);
- ``before, 1 thread``: the same model on one thread, to tell the two causes of the speed-up apart;
- ``now``: ``out_of_fold_probabilities`` as shipped (60 rounds at 0.2 with 15 leaves, one thread).

The last line times the full quality report on adult. The ``before`` contender takes minutes on a
busy machine; ``--skip-before`` leaves it out.

    .venv/bin/python bench/label_issues.py [--skip-before]
"""

from __future__ import annotations

import sys
import time
from collections.abc import Callable
from typing import Any

import numpy as np
import pandas as pd

from amploop.data import Dataset, load_builtin
from amploop.data.quality import check_quality, find_label_issues, out_of_fold_probabilities


def digits() -> Dataset:
    from sklearn.datasets import load_digits

    data = load_digits()
    table = pd.DataFrame(data.data, columns=[f"pixel_{i}" for i in range(data.data.shape[1])])
    table["digit"] = data.target
    return Dataset.from_table("digits", table, target="digit")


def flipped(dataset: Dataset, rate: float, seed: int) -> tuple[Dataset, np.ndarray]:
    rng = np.random.default_rng(seed)
    labels = dataset.labels.to_numpy().copy()
    classes = np.array(sorted(pd.unique(labels), key=str), dtype=object)
    chosen = rng.choice(len(labels), size=int(rate * len(labels)), replace=False)
    for i in chosen:
        others = classes[classes != labels[i]]
        labels[i] = others[rng.integers(len(others))]
    table = dataset.table.copy()
    table[dataset.target] = pd.Series(labels, dtype=dataset.table[dataset.target].dtype)
    noisy = Dataset.from_table(
        dataset.name, table, target=dataset.target, task=dataset.task, arrays=dict(dataset.arrays)
    )
    truth = np.zeros(len(labels), dtype=bool)
    truth[chosen] = True
    return noisy, truth


def before(dataset: Dataset, labels: np.ndarray, *, threads: int | None) -> np.ndarray:
    """The screen as it was: 5-fold gradient boosting, 100 rounds, 31 leaves (logistic regression on images)."""
    from sklearn.ensemble import HistGradientBoostingClassifier
    from sklearn.linear_model import LogisticRegression
    from sklearn.model_selection import StratifiedKFold
    from threadpoolctl import threadpool_limits

    from amploop.data.quality.label_issues import _features_for_model, _model_columns

    x = _features_for_model(dataset)
    categorical = [
        not (pd.api.types.is_numeric_dtype(dataset.table[c]) and not pd.api.types.is_bool_dtype(dataset.table[c]))
        for c in _model_columns(dataset)
    ]

    def make() -> Any:
        if dataset.arrays:
            return LogisticRegression(max_iter=300, C=0.05)
        return HistGradientBoostingClassifier(max_iter=100, categorical_features=categorical or None, random_state=0)

    probabilities = np.zeros((len(labels), int(labels.max()) + 1))
    with threadpool_limits(limits=threads):
        for train, held in StratifiedKFold(n_splits=5, shuffle=True, random_state=0).split(x, labels):
            model = make().fit(x[train], labels[train])
            probabilities[np.ix_(held, model.classes_)] = model.predict_proba(x[held])
    return probabilities


def main() -> None:
    skip_before = "--skip-before" in sys.argv
    contenders: dict[str, Callable[[Dataset, np.ndarray], np.ndarray]] = {}
    if not skip_before:
        contenders["before"] = lambda d, y: before(d, y, threads=None)
    contenders["before, 1 thread"] = lambda d, y: before(d, y, threads=1)
    contenders["now"] = lambda d, y: out_of_fold_probabilities(d, y, seed=0)
    rows = []
    cases = [(digits(), (0.05, 0.10)), (load_builtin("adult"), (0.05, 0.10)), (load_builtin("mnist5k"), (0.05,))]
    for base, rates in cases:
        for rate in rates:
            noisy, truth = flipped(base, rate, seed=0)
            codes, _ = pd.factorize(noisy.labels.astype(str), sort=True)
            for name, contender in contenders.items():
                started = time.perf_counter()
                flagged, _ = find_label_issues(codes, contender(noisy, codes))
                seconds = time.perf_counter() - started
                hits = int((flagged & truth).sum())
                precision, recall = hits / max(int(flagged.sum()), 1), hits / int(truth.sum())
                rows.append((base.name, rate, name, int(truth.sum()), int(flagged.sum()), precision, recall, seconds))
    print("\nlabel-issue detection (confident joint on out-of-fold probabilities), planted label flips\n")
    print(
        f"{'dataset':<8} {'flipped':>7} {'contender':<17} {'planted':>7} {'flagged':>7} "
        f"{'precision':>9} {'recall':>6} {'seconds':>8} {'x faster':>8}"
    )
    reference = {(r[0], r[1]): r[7] for r in rows if r[2] == next(iter(contenders))}
    for name, rate, contender, planted, flagged_count, precision, recall, seconds in rows:
        ratio = reference[(name, rate)] / max(seconds, 1e-9)
        print(
            f"{name:<8} {rate:>7.0%} {contender:<17} {planted:>7} {flagged_count:>7} "
            f"{precision:>9.3f} {recall:>6.3f} {seconds:>8.1f} {ratio:>8.1f}"
        )
    print(f"\n'x faster': against '{next(iter(contenders))}' on the same rows")

    adult = load_builtin("adult")
    times = []
    for _ in range(3):
        started = time.perf_counter()
        report = check_quality(adult, slice_columns=["sex", "race"])
        times.append(time.perf_counter() - started)
    print(
        f"\nfull quality report on adult ({adult.n_rows:,} rows, {len(report.checks)} checks): "
        f"median {np.median(times):.2f} s over 3 runs (min {min(times):.2f} s, max {max(times):.2f} s)"
    )


if __name__ == "__main__":
    main()
