"""Label-issue detection (confident learning) against seeded label flips, and the quality report's time.

For adult and mnist5k, 5% and 10% of the labels are flipped (to another class, seeded); the
detector never sees which. Precision: the share of flagged rows that were flipped; recall: the
share of flipped rows that were flagged. The last table times the full quality report on adult.

    .venv/bin/python bench/label_issues.py
"""

from __future__ import annotations

import time

import numpy as np
import pandas as pd

from amploop.data import Dataset, load_builtin
from amploop.data.quality import check_quality, find_label_issues, out_of_fold_probabilities


def flipped(dataset: Dataset, rate: float, seed: int) -> tuple[Dataset, np.ndarray]:
    rng = np.random.default_rng(seed)
    labels = dataset.labels.to_numpy().copy()
    classes = np.array(sorted(pd.unique(labels), key=str), dtype=object)
    chosen = rng.choice(len(labels), size=int(rate * len(labels)), replace=False)
    for i in chosen:
        others = classes[classes != labels[i]]
        labels[i] = others[rng.integers(len(others))]
    table = dataset.table.copy()
    table[dataset.target] = labels.astype(dataset.table[dataset.target].dtype)
    noisy = Dataset.from_table(
        dataset.name, table, target=dataset.target, task=dataset.task, arrays=dict(dataset.arrays)
    )
    truth = np.zeros(len(labels), dtype=bool)
    truth[chosen] = True
    return noisy, truth


def main() -> None:
    rows = []
    for name in ("adult", "mnist5k"):
        base = load_builtin(name)
        for rate in (0.05, 0.10):
            noisy, truth = flipped(base, rate, seed=0)
            codes, _ = pd.factorize(noisy.labels.astype(str), sort=True)
            started = time.perf_counter()
            probabilities = out_of_fold_probabilities(noisy, codes, seed=0)
            flagged, _ = find_label_issues(codes, probabilities)
            seconds = time.perf_counter() - started
            tp = int((flagged & truth).sum())
            precision = tp / max(int(flagged.sum()), 1)
            recall = tp / int(truth.sum())
            rows.append((name, rate, int(truth.sum()), int(flagged.sum()), precision, recall, seconds))
    print("\nlabel-issue detection (confident joint, 5-fold out-of-fold probabilities)\n")
    print(f"{'dataset':<9} {'flipped':>8} {'planted':>8} {'flagged':>8} {'precision':>10} {'recall':>7} {'seconds':>8}")
    for name, rate, planted, flagged_count, precision, recall, seconds in rows:
        print(
            f"{name:<9} {rate:>8.0%} {planted:>8} {flagged_count:>8} {precision:>10.3f} {recall:>7.3f} {seconds:>8.1f}"
        )

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
