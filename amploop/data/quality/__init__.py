"""Data quality, before anything trains: a QualityReport of findings, each with a severity.

Severities: ``info`` (worth knowing), ``warn`` (look before you train), ``block`` (training
refuses the data unless told otherwise, with a reason, which goes to the audit log).

Checks: degenerate data that no model can learn from (a target with a single class or value,
columns with no values at all, infinite numbers or numbers beyond the float32 range), missing
values, constant columns, duplicate rows, class imbalance; leakage between a
dataset and the data it will be tested against (exact duplicates, near-duplicates by hashing
normalised rows, or a perceptual hash for images), rows with the same features on both sides of
the split training will make, and target leakage (one feature that alone predicts the label
almost perfectly, measured on held-out rows, or a copy of it); label issues by confident
learning (Northcutt, Jiang and Chuang, JAIR 2021: out-of-fold probabilities, per-class
thresholds, the off-diagonal of the confident joint) — written here because the reference
implementation, cleanlab, is AGPL; outliers by robust z-scores on continuous columns and far,
rare values on discrete ones; personal data in text and categorical columns, and card or
identifier numbers stored in numeric ones (counts and column names only, never the values); and
slice representativeness. Label issues and outliers are combined into a ranked list of
suspicious rows, the poisoning screen; ``QualityReport.label_issue_rows`` and ``outlier_rows``
keep the two apart.

Modules, one check family each:

- ``report``: the result types, ``Finding``, ``SuspiciousRow`` and ``QualityReport``.
- ``basic``: degenerate data and basic table checks (empty and constant columns, single-class or
  constant targets, unusable numbers, missing values, duplicates, class imbalance).
- ``pii``: personal data in text, categorical and numeric columns (``luhn_valid``, the IBAN checksum).
- ``leakage``: train/test leakage (``--against``, ``average_hash``, training's own split) and target leakage.
- ``label_issues``: confident learning (``out_of_fold_probabilities``, ``find_label_issues``).
- ``outliers``: robust z-scores and far rare values per numeric feature.
- ``slices``: slice representativeness.
- ``check``: ``check_quality``, which runs them all and ranks the suspicious rows.
"""

from __future__ import annotations

from amploop.data.quality.basic import FLOAT32_MAX
from amploop.data.quality.check import check_quality
from amploop.data.quality.label_issues import find_label_issues, out_of_fold_probabilities
from amploop.data.quality.leakage import average_hash
from amploop.data.quality.pii import luhn_valid
from amploop.data.quality.report import Finding, QualityReport, Severity, SuspiciousRow

__all__ = [
    "FLOAT32_MAX",
    "Finding",
    "QualityReport",
    "Severity",
    "SuspiciousRow",
    "average_hash",
    "check_quality",
    "find_label_issues",
    "luhn_valid",
    "out_of_fold_probabilities",
]
