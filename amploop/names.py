"""Names and references: the one validator for every model name, alias and ``NAME[:V|@ALIAS]``.

A name becomes part of paths (checkpoint folders, artifact prefixes) and of URLs, so it is
checked before anything is built from it: letters, digits, ``_``, ``.`` and ``-``, starting with
a letter or digit, at most 128 characters. ``.``, ``..``, slashes, spaces and control characters
can therefore never reach a path. The CLI, ``amploop.yaml`` and the Python API all call
:func:`check_name` and :func:`parse_model_ref`.

Examples
--------
>>> check_name("adult-income.v2")
'adult-income.v2'
>>> check_name("..")
Traceback (most recent call last):
...
amploop.errors.UsageError: model name '..' is not valid: use letters, digits, '_', '.' and '-', ...
>>> parse_model_ref("adult:3"), parse_model_ref("adult@champion")
(ModelRef(name='adult', version=3, alias=None), ModelRef(name='adult', version=None, alias='champion'))
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from amploop.errors import UsageError

__all__ = ["MAX_NAME_LENGTH", "MAX_VERSION", "ModelRef", "check_name", "is_valid_name", "parse_model_ref"]

MAX_NAME_LENGTH = 128
MAX_VERSION = 2**31 - 1  # versions are 32-bit integers in the store
_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.\-]*")
_RULE = f"use letters, digits, '_', '.' and '-', starting with a letter or digit (at most {MAX_NAME_LENGTH} characters)"


def is_valid_name(text: object) -> bool:
    """Whether ``text`` is a usable model name or alias."""
    return isinstance(text, str) and len(text) <= MAX_NAME_LENGTH and _NAME.fullmatch(text) is not None


def check_name(text: object, *, what: str = "model name") -> str:
    """``text`` when it is a valid name; else :class:`UsageError` saying what a name may hold."""
    if not is_valid_name(text):
        shown = repr(text) if not isinstance(text, str) or len(text) <= 60 else repr(text[:57] + "...")
        raise UsageError(f"{what} {shown} is not valid: {_RULE}", value=str(text)[:200])
    return str(text)


@dataclass(frozen=True)
class ModelRef:
    """A parsed reference: a name with at most one of a version or an alias."""

    name: str
    version: int | None = None
    alias: str | None = None

    def __str__(self) -> str:
        if self.version is not None:
            return f"{self.name}:{self.version}"
        return f"{self.name}@{self.alias}" if self.alias is not None else self.name


def parse_model_ref(text: str) -> ModelRef:
    """``NAME``, ``NAME:VERSION`` or ``NAME@ALIAS``; anything else is a :class:`UsageError`."""
    if not isinstance(text, str):
        raise UsageError(f"{text!r} is not a model reference; write NAME, NAME:VERSION or NAME@ALIAS")
    name, version, alias = text, None, None
    if "@" in text:
        name, alias = text.split("@", 1)
    elif ":" in text:
        name, number = text.split(":", 1)
        if not (number.isascii() and number.isdigit()) or not 1 <= int(number) <= MAX_VERSION:
            raise UsageError(
                f"'{_short(text)}': the version must be a whole number from 1 to {MAX_VERSION}; "
                "write NAME, NAME:VERSION or NAME@ALIAS"
            )
        version = int(number)
    if not is_valid_name(name) or (alias is not None and not is_valid_name(alias)):
        raise UsageError(f"'{_short(text)}' is not a model reference; write NAME, NAME:VERSION or NAME@ALIAS ({_RULE})")
    return ModelRef(name, version, alias)


def _short(text: str) -> str:
    return text if len(text) <= 60 else text[:57] + "..."
