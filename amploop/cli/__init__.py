"""The ``amploop`` command line: a thin layer that calls stage functions and renders results.

Every command takes ``--json`` and then prints exactly its result object as JSON on stdout.
Errors print one line on stderr (and, under ``--json``, the error object on stdout) and exit
with the error class's code (see :mod:`amploop.errors`). One module per command group; importing
them registers their commands on ``app``.
"""

from __future__ import annotations

from amploop.cli import ci, data, demo, evaluate, keys, loop, models, monitor, predict, serve, store, train, ui  # noqa: F401 - registers the commands
from amploop.cli._common import app

__all__ = ["app", "main"]


def main() -> None:
    app()  # every way out is one line and an exit code (see AmploopGroup), under torchrun too


if __name__ == "__main__":
    main()
