"""Personal data in text, categorical and numeric columns: counts and column names only, never the values.

Text is scanned with patterns and checksums. A numeric column is scanned when it looks like an
identifier rather than a measurement: whole numbers with many digits. Card numbers stored as plain
digits (13 to 19 digits, nearly all Luhn-valid, where random numbers pass one time in ten) block,
as they do in text; other long, mostly distinct whole numbers (account, phone or customer numbers)
warn, since a model learns nothing general from them and may leak them.
"""

from __future__ import annotations

import re
from typing import Any

import numpy as np
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


CARD_LUHN_SHARE = 0.9  # random 13-19 digit numbers pass the Luhn check one time in ten
IDENTIFIER_MIN_DIGITS = 9  # a whole number this long is an identifier rather than a quantity
IDENTIFIER_DISTINCT_SHARE = 0.5  # ... when most of its values differ
# Unix times in seconds (2001-2036) or milliseconds are long, distinct whole numbers too, but no identifier
_UNIX_SECONDS = (1e9, 2.1e9)
_UNIX_MILLISECONDS = (1e12, 2.1e12)


def _numeric_identifier_kind(values: pd.Series) -> tuple[str, Severity, int] | None:
    """(kind, severity, count) when a numeric column holds card numbers or identifier-like numbers."""
    present = values.dropna()
    if len(present) < 2 or pd.api.types.is_bool_dtype(present) or not pd.api.types.is_numeric_dtype(present):
        return None
    if pd.api.types.is_unsigned_integer_dtype(present):
        numbers = present.to_numpy(dtype=np.uint64)
    elif pd.api.types.is_integer_dtype(present):
        numbers = np.abs(present.to_numpy(dtype=np.int64))  # int64 holds 18 digits exactly; float64 only 15
    else:
        floats = np.abs(present.to_numpy(dtype=float))
        if not (np.isfinite(floats).all() and np.array_equal(floats, np.round(floats))) or floats.max() >= 1e19:
            return None  # fractions or inf: measurements, not identifiers
        numbers = floats.astype(np.uint64)
    digits = pd.Series(numbers).astype(str)
    length = digits.str.len()
    if (length >= IDENTIFIER_MIN_DIGITS).mean() < 0.5:
        return None  # mostly short numbers: quantities (prices, counts, populations)
    magnitude = numbers.astype(float)
    timestamps = ((magnitude >= _UNIX_SECONDS[0]) & (magnitude < _UNIX_SECONDS[1])) | (
        (magnitude >= _UNIX_MILLISECONDS[0]) & (magnitude < _UNIX_MILLISECONDS[1])
    )
    if timestamps.mean() >= 0.9:
        return None
    card_length = length.between(13, 19)
    if card_length.mean() >= 0.5:
        luhn = digits[card_length].map(luhn_valid)
        if luhn.mean() >= CARD_LUHN_SHARE:
            return "payment card numbers (Luhn-valid)", "block", int(luhn.sum())
    if present.nunique() >= IDENTIFIER_DISTINCT_SHARE * len(present):
        return (
            "identifier-like numbers (long, mostly distinct whole numbers, such as account or phone numbers)",
            "warn",
            int((length >= IDENTIFIER_MIN_DIGITS).sum()),
        )
    return None


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
    for column in (c.name for c in dataset.schema.columns if c.kind == "numeric" and c.name != dataset.target):
        found = _numeric_identifier_kind(dataset.table[column])
        if found is not None:
            kind, severity, count = found
            hits.setdefault(kind, {})[column] = count
            severity_of[kind] = severity
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
