"""The result types of a quality check: findings, each with a severity, and suspicious rows.

Severities: ``info`` (worth knowing), ``warn`` (look before you train), ``block`` (training
refuses the data unless told otherwise, with a reason, which goes to the audit log).
Row numbers (``Finding.rows``, ``SuspiciousRow.row``) are 0-based positions in the checked dataset.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any, Literal

Severity = Literal["info", "warn", "block"]
_MAX_ROWS_LISTED = 100
LABEL_ISSUE = "label issue"  # a SuspiciousRow reason
OUTLIER = "outlier"  # a SuspiciousRow reason

# The order in which non-blocking findings are worth a reader's attention: personal data and
# leakage first (they make a model unlawful or its test score wrong), then what skews the model.
_IMPORTANCE = (
    "personal_data",
    "split_leakage",
    "target_leakage",
    "class_imbalance",
    "label_issues",
    "unlabelled_rows",
    "duplicate_rows",
    "missing_values",
    "constant_column",
    "slice_representation",
    "outliers",
)


@dataclass(frozen=True)
class Finding:
    check: str
    severity: Severity
    message: str  # one line, saying what and what to do
    columns: list[str] = field(default_factory=list)
    rows: list[int] = field(default_factory=list)  # 0-based positions, at most 100 listed
    count: int = 0
    details: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class SuspiciousRow:
    row: int  # 0-based position in the checked dataset
    score: float  # higher is more suspicious, in [0, 1]
    reasons: list[str]  # "label issue", "outlier" or both


@dataclass(frozen=True)
class QualityReport:
    """Every finding of ``check_quality``, the ranked suspicious rows, and what was checked or skipped.

    ``skipped_checks`` maps a check that did not run to why (e.g. no target column).
    """

    dataset: dict[str, Any]
    against: dict[str, Any] | None
    findings: list[Finding]
    suspicious_rows: list[SuspiciousRow]
    checks: list[str]
    seconds: float
    skipped_checks: dict[str, str] = field(default_factory=dict)

    @property
    def blocking(self) -> list[Finding]:
        return [f for f in self.findings if f.severity == "block"]

    @property
    def label_issue_rows(self) -> list[int]:
        """Sorted 0-based positions of the rows whose label looks wrong (confident learning)."""
        return sorted(r.row for r in self.suspicious_rows if LABEL_ISSUE in r.reasons)

    @property
    def outlier_rows(self) -> list[int]:
        """Sorted 0-based positions of the rows with an outlying feature value."""
        return sorted(r.row for r in self.suspicious_rows if OUTLIER in r.reasons)

    def counts(self) -> dict[str, int]:
        return {s: sum(f.severity == s for f in self.findings) for s in ("info", "warn", "block")}

    def summary_lines(self, limit: int = 5) -> list[str]:
        """One short line per non-blocking finding, warnings first, the most important first.

        Past ``limit`` lines, a last line says how many more there are and where to see them.

        >>> report = QualityReport({"name": "toy"}, None, [
        ...     Finding("missing_values", "info", "'age' is missing in 3 rows (1.0%)"),
        ...     Finding("class_imbalance", "warn", "class 'b' has 10 rows against 300 for 'a' (1:30)"),
        ...     Finding("duplicate_rows", "info", "2 rows repeat an earlier row exactly (0.67%)"),
        ... ], [], [], 0.0)
        >>> for line in report.summary_lines(limit=2):
        ...     print(line)
        warn class_imbalance: class 'b' has 10 rows against 300 for 'a' (1:30)
        info duplicate_rows: 2 rows repeat an earlier row exactly (0.67%)
        … and 1 more; run amploop data check for all
        """
        rank = {check: i for i, check in enumerate(_IMPORTANCE)}
        shown = sorted(
            (f for f in self.findings if f.severity != "block"),
            key=lambda f: (f.severity != "warn", rank.get(f.check, len(rank))),
        )
        lines = [f"{f.severity} {f.check}: {f.message}" for f in shown[:limit]]
        if len(shown) > limit:
            lines.append(f"… and {len(shown) - limit} more; run amploop data check for all")
        return lines

    def to_dict(self) -> dict[str, Any]:
        out = asdict(self)
        out["counts"] = self.counts()
        return out
