"""The result types of a quality check: findings, each with a severity, and suspicious rows.

Severities: ``info`` (worth knowing), ``warn`` (look before you train), ``block`` (training
refuses the data unless told otherwise, with a reason, which goes to the audit log).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any, Literal

Severity = Literal["info", "warn", "block"]
_MAX_ROWS_LISTED = 100


@dataclass(frozen=True)
class Finding:
    check: str
    severity: Severity
    message: str  # one line, saying what and what to do
    columns: list[str] = field(default_factory=list)
    rows: list[int] = field(default_factory=list)  # positions, at most 100 listed
    count: int = 0
    details: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class SuspiciousRow:
    row: int
    score: float  # higher is more suspicious, in [0, 1]
    reasons: list[str]


@dataclass(frozen=True)
class QualityReport:
    dataset: dict[str, Any]
    against: dict[str, Any] | None
    findings: list[Finding]
    suspicious_rows: list[SuspiciousRow]
    checks: list[str]
    seconds: float

    @property
    def blocking(self) -> list[Finding]:
        return [f for f in self.findings if f.severity == "block"]

    def counts(self) -> dict[str, int]:
        return {s: sum(f.severity == s for f in self.findings) for s in ("info", "warn", "block")}

    def to_dict(self) -> dict[str, Any]:
        out = asdict(self)
        out["counts"] = self.counts()
        return out
