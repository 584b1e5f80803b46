"""``check_quality``: run every check family on a dataset and combine the results in one report.

Label issues and outliers are combined into a ranked list of suspicious rows: the poisoning screen.
"""

from __future__ import annotations

import dataclasses
import time
from collections.abc import Sequence

import numpy as np

from amploop.data.dataset import Dataset
from amploop.data.quality.basic import _basic_findings, _degenerate_findings
from amploop.data.quality.label_issues import _label_issue_findings
from amploop.data.quality.leakage import (
    _check_same_columns,
    _leakage_findings,
    _target_leakage,
    _training_split_findings,
)
from amploop.data.quality.outliers import _outlier_findings
from amploop.data.quality.pii import _pii_findings
from amploop.data.quality.report import LABEL_ISSUE, OUTLIER, Finding, QualityReport, SuspiciousRow
from amploop.data.quality.slices import _slice_findings

_NO_TARGET = "no target column; pass --target COLUMN"


def check_quality(
    dataset: Dataset,
    *,
    against: Dataset | None = None,
    slice_columns: Sequence[str] = (),
    min_slice_share: float = 0.01,
    label_issues: bool = True,
    seed: int = 0,
    validation_fraction: float | None = None,
    test_fraction: float | None = None,
    split_seed: int | None = None,
    progress: bool = False,
) -> QualityReport:
    """Run every check; ``against`` is the data this one will be compared with (for leakage).

    ``validation_fraction``, ``test_fraction`` and ``split_seed`` (default: ``seed``) describe the
    split training will make (``amploop.data.splits.prepare_splits``) of data without its own train
    and test split: give both fractions, and rows with the same features on both sides of that split
    are reported. ``progress`` shows a bar on stderr for the slow part (the label-issue screen).
    Row numbers in the report are 0-based positions in ``dataset``.
    """
    started = time.perf_counter()
    if against is not None:
        _check_same_columns(dataset, against)
    has_target = dataset.target is not None
    skipped: dict[str, str] = {}
    checks = [
        "unlabelled_rows",
        "single_class",
        "constant_target",
        "empty_column",
        "non_finite_values",
        "missing_values",
        "constant_column",
        "duplicate_rows",
        "class_imbalance",
        "target_leakage",
        "outliers",
        "personal_data",
        "slice_representation",
    ]
    if not has_target:
        for check in ("label_issues", "target_leakage", "class_imbalance"):
            skipped[check] = _NO_TARGET
    elif dataset.task != "classification":
        skipped["class_imbalance"] = "the target is a number (regression): there are no classes to balance"
        skipped["label_issues"] = "the target is a number (regression): label issues are screened for classes only"
    elif not label_issues:
        skipped["label_issues"] = "not asked for (label_issues=False, or --no-label-issues)"
    checks = [c for c in checks if c not in skipped]

    findings = _degenerate_findings(dataset) + _basic_findings(dataset)
    findings += _target_leakage(dataset, seed) + _pii_findings(dataset)
    own_split = "train" in dataset.splits and "test" in dataset.splits
    if against is None and own_split:
        test_rows = np.asarray(dataset.splits["test"])
        findings += [
            _in_dataset_rows(f, test_rows) for f in _leakage_findings(dataset.split("test"), dataset.split("train"))
        ]
        checks.append("split_leakage")
    elif against is not None:
        findings += _leakage_findings(dataset, against)
        checks.append("split_leakage")
    elif validation_fraction is not None and test_fraction is not None:
        findings += _training_split_findings(
            dataset,
            validation_fraction=validation_fraction,
            test_fraction=test_fraction,
            seed=seed if split_seed is None else split_seed,
        )
        checks.append("split_leakage")
    outliers, outlier_scores = _outlier_findings(dataset)
    findings += outliers
    label_scores: dict[int, float] = {}
    if "label_issues" not in skipped:
        found, label_scores = _label_issue_findings(dataset, seed, progress=progress)
        findings += found
        checks.append("label_issues")
    findings += _slice_findings(dataset, slice_columns, min_slice_share, against)
    suspicious: dict[int, SuspiciousRow] = {}
    for row, score in label_scores.items():
        suspicious[row] = SuspiciousRow(row, score, [LABEL_ISSUE])
    for row, score in outlier_scores.items():
        if row in suspicious:
            previous = suspicious[row]
            suspicious[row] = SuspiciousRow(row, max(previous.score, score), [*previous.reasons, OUTLIER])
        else:
            suspicious[row] = SuspiciousRow(row, score, [OUTLIER])
    ranked = sorted(suspicious.values(), key=lambda r: (-r.score, r.row))
    order = {"block": 0, "warn": 1, "info": 2}
    findings.sort(key=lambda f: order[f.severity])
    return QualityReport(
        dataset={"name": dataset.name, "fingerprint": dataset.fingerprint, "rows": dataset.n_rows},
        against=None
        if against is None
        else {"name": against.name, "fingerprint": against.fingerprint, "rows": against.n_rows},
        findings=findings,
        suspicious_rows=ranked,
        checks=checks,
        seconds=round(time.perf_counter() - started, 3),
        skipped_checks=skipped,
    )


def _in_dataset_rows(finding: Finding, positions: np.ndarray) -> Finding:
    """A finding on a split, with its rows as positions in the whole dataset."""
    return dataclasses.replace(finding, rows=positions[finding.rows].tolist())
