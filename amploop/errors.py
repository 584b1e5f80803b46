"""The one exception tree of amploop.

Every error a user can cause is an :class:`AmploopError`. Its message says what went wrong and
what to do next; its class says how the CLI exits and which HTTP status the API answers with::

    AmploopError                 exit 1   HTTP 500
    ├── ConfigError              exit 3   HTTP 400   amploop.yaml, environment or flags are wrong
    │   └── UsageError           exit 2   HTTP 400   a command-line argument or reference is malformed
    ├── DataError                exit 4   HTTP 422   a file or table cannot be read as data
    │   ├── SchemaError          exit 5   HTTP 422   data does not match the expected schema
    │   └── QualityError         exit 6   HTTP 422   a data-quality finding blocks the work
    ├── TrainingError            exit 7   HTTP 500   a training run failed
    ├── NotFound                 exit 8   HTTP 404   a named thing does not exist
    │   ├── DatasetNotFound      exit 8   HTTP 404
    │   └── ModelNotFound        exit 8   HTTP 404
    ├── GateFailed               exit 9   HTTP 409   a release gate said no
    ├── StoreError               exit 10  HTTP 503   the database or artifact storage failed
    │   └── ArtifactError        exit 11  HTTP 500   an artifact is missing or was altered
    ├── AuthError                exit 12  HTTP 401   no or a wrong API key
    │   └── PermissionDenied     exit 13  HTTP 403   the key's role may not do this
    ├── InputTooLarge            exit 14  HTTP 413   a request or file exceeds a size limit
    ├── Conflict                 exit 15  HTTP 409   the thing already exists (feedback given twice)
    └── Unavailable              exit 16  HTTP 503   the server is overloaded or draining: retry later

Exit code 2 is a usage error: the parser's own (unknown option, missing argument) or a
malformed argument such as a model reference. An unexpected failure inside amploop is not an
AmploopError; the CLI reports it as ``InternalError`` (exit 1) with a pointer to report it.

Examples
--------
>>> err = ConfigError("train.epochs: must be >= 1; set a positive number in amploop.yaml")
>>> err.exit_code, err.http_status
(3, 400)
>>> isinstance(SchemaError("x"), DataError)
True
"""

from __future__ import annotations

import difflib
from collections.abc import Iterable
from typing import Any, ClassVar

__all__ = [
    "AmploopError",
    "ArtifactError",
    "AuthError",
    "ConfigError",
    "Conflict",
    "DataError",
    "DatasetNotFound",
    "GateFailed",
    "InputTooLarge",
    "ModelNotFound",
    "NotFound",
    "PermissionDenied",
    "QualityError",
    "SchemaError",
    "StoreError",
    "TrainingError",
    "Unavailable",
    "UsageError",
    "close_matches",
]


class AmploopError(Exception):
    """Base of every error amploop raises on purpose.

    ``details`` holds machine-readable context (column names, close matches, ...) that the CLI
    prints under ``--json`` and the API returns in its error body.
    """

    exit_code: ClassVar[int] = 1
    http_status: ClassVar[int] = 500

    def __init__(self, message: str, **details: Any) -> None:
        super().__init__(message)
        self.message = message
        self.details = details

    def to_dict(self) -> dict[str, Any]:
        """The JSON form: ``{"error": class name, "message": ..., "details": {...}}``."""
        return {"error": type(self).__name__, "message": self.message, "details": self.details}


class ConfigError(AmploopError):
    """amploop.yaml, an ``AMPLOOP_*`` variable or a flag has an unknown key or a wrong value."""

    exit_code = 3
    http_status = 400


class UsageError(ConfigError):
    """A command-line argument, name or model reference is malformed (exit 2, as the parser's own)."""

    exit_code = 2


class DataError(AmploopError):
    """A file or table cannot be read as a dataset."""

    exit_code = 4
    http_status = 422


class SchemaError(DataError):
    """Data does not match the schema it must follow (columns, types, shapes)."""

    exit_code = 5


class QualityError(DataError):
    """A data-quality check found a problem that blocks training."""

    exit_code = 6


class TrainingError(AmploopError):
    """A training run could not finish."""

    exit_code = 7


class NotFound(AmploopError):
    """A named object does not exist; ``details["close_matches"]`` lists likely intended names."""

    exit_code = 8
    http_status = 404


class DatasetNotFound(NotFound):
    """No built-in dataset, file or stored dataset has that name."""


class ModelNotFound(NotFound):
    """No model name, version or alias matches."""


class GateFailed(AmploopError):
    """A release gate's verdict is *fail*."""

    exit_code = 9
    http_status = 409


class StoreError(AmploopError):
    """The metadata database or the artifact storage cannot be used."""

    exit_code = 10
    http_status = 503


class ArtifactError(StoreError):
    """An artifact is missing, unreadable, or its checksum differs from the one stored."""

    exit_code = 11
    http_status = 500


class AuthError(AmploopError):
    """The request carries no API key or an unknown one."""

    exit_code = 12
    http_status = 401


class PermissionDenied(AuthError):
    """The API key is valid but its role does not allow the action."""

    exit_code = 13
    http_status = 403


class InputTooLarge(AmploopError):
    """A request body, batch or file is larger than the configured limit."""

    exit_code = 14
    http_status = 413


def close_matches(word: str, choices: Iterable[str]) -> tuple[list[str], str]:
    """Up to three of ``choices`` that look like ``word``, and the hint that names them.

    The hint is ``"did you mean a, b? "`` (ready to put before the list of valid values) or ``""``.

    >>> close_matches("adlt", ["adult", "mnist5k"])
    (['adult'], 'did you mean adult? ')
    >>> close_matches("zzz", ["adult"])
    ([], '')
    """
    found = difflib.get_close_matches(word, list(choices), n=3)
    return found, (f"did you mean {', '.join(found)}? " if found else "")


class Conflict(AmploopError):
    """What a request would create already exists."""

    exit_code = 15
    http_status = 409


class Unavailable(AmploopError):
    """The server cannot take the request now (a full queue, a drain); ``retry_after_s`` says when to retry."""

    exit_code = 16
    http_status = 503
