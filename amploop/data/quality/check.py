"""``check_quality``: run every check family on a dataset and combine the results in one report.

Label issues and outliers are combined into a ranked list of suspicious rows: the poisoning screen.
"""

from __future__ import annotations

import time
from collections.abc import Sequence

from amploop.data.dataset import Dataset
from amploop.data.quality.basic import _basic_findings, _degenerate_findings
from amploop.data.quality.label_issues import _label_issue_findings
from amploop.data.quality.leakage import _check_same_columns, _leakage_findings, _target_leakage
from amploop.data.quality.outliers import _outlier_findings
from amploop.data.quality.pii import _pii_findings
from amploop.data.quality.report import QualityReport, SuspiciousRow
from amploop.data.quality.slices import _slice_findings


def check_quality(
    dataset: Dataset,
    *,
    against: Dataset | None = None,
    slice_columns: Sequence[str] = (),
    min_slice_share: float = 0.01,
    label_issues: bool = True,
    seed: int = 0,
) -> QualityReport:
    """Run every check; ``against`` is the data this one will be compared with (for leakage)."""
    started = time.perf_counter()
    if against is not None:
        _check_same_columns(dataset, against)
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
    findings = _degenerate_findings(dataset) + _basic_findings(dataset)
    findings += _target_leakage(dataset, seed) + _pii_findings(dataset)
    if against is None and "train" in dataset.splits and "test" in dataset.splits:
        findings += _leakage_findings(dataset.split("test"), dataset.split("train"))
        checks.append("split_leakage")
    elif against is not None:
        findings += _leakage_findings(dataset, against)
        checks.append("split_leakage")
    outliers, outlier_scores = _outlier_findings(dataset)
    findings += outliers
    label_scores: dict[int, float] = {}
    if label_issues:
        found, label_scores = _label_issue_findings(dataset, seed)
        findings += found
        checks.append("label_issues")
    findings += _slice_findings(dataset, slice_columns, min_slice_share, against)
    suspicious: dict[int, SuspiciousRow] = {}
    for row, score in label_scores.items():
        suspicious[row] = SuspiciousRow(row, score, ["label issue"])
    for row, score in outlier_scores.items():
        if row in suspicious:
            previous = suspicious[row]
            suspicious[row] = SuspiciousRow(row, max(previous.score, score), [*previous.reasons, "outlier"])
        else:
            suspicious[row] = SuspiciousRow(row, score, ["outlier"])
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
    )
