"""Personal data in text and categorical columns: counts and column names only, never the values."""

from __future__ import annotations

import re
from typing import Any

import pandas as pd

from amploop.data.dataset import Dataset
from amploop.data.quality.report import Finding, Severity

_EMAIL = re.compile(r"[A-Za-z0-9._%+-]+@[A-Za-z0-9.-]+\.[A-Za-z]{2,}")
_PHONE = re.compile(r"(?<![\w.])(?:\+\d{1,3}[\s.-]?)?(?:\(\d{2,4}\)[\s.-]?)?\d{2,4}(?:[\s.-]\d{2,4}){2,4}(?![\w.])")
# 13-19 digits, optionally grouped by spaces or dashes, and not part of a decimal number: a float written
# as text ("4111111111111111.0", "0.123456789012345", "4.1e+15") is a number, not a card
_CARD = re.compile(r"(?<![\d.])(?:\d[ -]?){12,18}\d(?!\d|\.\d|[eE][+-]?\d)")
_IBAN = re.compile(r"\b[A-Z]{2}\d{2}(?: ?[A-Z0-9]{4}){2,7}(?: ?[A-Z0-9]{1,4})?\b")
_SSN = re.compile(r"(?<!\d)\d{3}-\d{2}-\d{4}(?!\d)")
_IPV4 = re.compile(r"(?<![\d.])(?:(?:25[0-5]|2[0-4]\d|1?\d?\d)\.){3}(?:25[0-5]|2[0-4]\d|1?\d?\d)(?![\d.])")
_IPV6 = re.compile(r"(?<![:\w])(?:[0-9A-Fa-f]{1,4}:){7}[0-9A-Fa-f]{1,4}(?![:\w])")


def luhn_valid(number: str) -> bool:
    """The Luhn checksum that every payment card number satisfies.

    >>> luhn_valid("4111 1111 1111 1111"), luhn_valid("4111 1111 1111 1112")
    (True, False)
    """
    digits = [int(c) for c in number if c.isdigit()]
    if not 13 <= len(digits) <= 19:
        return False
    total = 0
    for i, d in enumerate(reversed(digits)):
        if i % 2:
            d *= 2
            d = d - 9 if d > 9 else d
        total += d
    return total % 10 == 0


def _iban_valid(text: str) -> bool:
    compact = text.replace(" ", "")
    if not 15 <= len(compact) <= 34:
        return False
    rearranged = compact[4:] + compact[:4]
    return int("".join(str(int(c, 36)) for c in rearranged)) % 97 == 1


_PII: list[tuple[str, re.Pattern[str], Any, Severity]] = [
    ("e-mail addresses", _EMAIL, None, "warn"),
    ("payment card numbers (Luhn-valid)", _CARD, luhn_valid, "block"),
    ("IBANs (checksum-valid)", _IBAN, _iban_valid, "block"),
    ("national ID numbers (US SSN format)", _SSN, None, "block"),
    ("IP addresses", _IPV4, None, "warn"),
    ("IP addresses", _IPV6, None, "warn"),
    ("phone numbers", _PHONE, lambda s: 9 <= sum(c.isdigit() for c in s) <= 15, "warn"),  # E.164: at most 15
]


def _pii_findings(dataset: Dataset) -> list[Finding]:
    findings: list[Finding] = []
    columns = [c.name for c in dataset.schema.columns if c.kind in ("text", "categorical")]
    hits: dict[str, dict[str, int]] = {}
    severity_of: dict[str, Severity] = {}
    for column in columns:
        values = dataset.table[column].dropna()
        if values.empty or pd.api.types.is_numeric_dtype(values) or pd.api.types.is_bool_dtype(values):
            continue
        counts = values.astype(str).value_counts()  # each distinct value is scanned once
        for text, n in counts.items():
            remaining = str(text)
            for kind, pattern, check, severity in _PII:  # most specific first; a match is then blanked out
                valid = [m for m in pattern.findall(remaining) if check is None or check(m)]
                if not valid:
                    continue
                per_column = hits.setdefault(kind, {})
                per_column[column] = per_column.get(column, 0) + int(n)
                severity_of[kind] = severity
                for match in valid:
                    remaining = remaining.replace(match, " ")
    for kind, by_column in hits.items():
        total = sum(by_column.values())
        findings.append(
            Finding(
                "personal_data",
                severity_of[kind],
                f"{total} value(s) in {', '.join(sorted(by_column))} look like {kind}; remove or pseudonymise "
                "them before training",
                columns=sorted(by_column),
                count=total,
                details={"kind": kind, "per_column": by_column},
            )
        )
    return findings
