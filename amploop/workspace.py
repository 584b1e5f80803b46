"""Where amploop keeps its state.

A workspace is three addresses:

- ``home``: a local folder, ``./.amploop`` unless ``AMPLOOP_HOME`` says otherwise;
- ``db_url``: the metadata database, ``sqlite:///<home>/amploop.db`` unless ``AMPLOOP_DB_URL``
  names another (``postgresql+psycopg://user@host/db`` for a team);
- ``artifacts_url``: where weights and reports go, ``<home>/artifacts`` unless
  ``AMPLOOP_ARTIFACTS`` names another folder or any fsspec URL (``s3://bucket/prefix``).

Examples
--------
>>> ws = Workspace.from_env({"AMPLOOP_HOME": "/tmp/proj/.amploop"})
>>> ws.db_url
'sqlite:////tmp/proj/.amploop/amploop.db'
>>> ws.artifacts_url
'/tmp/proj/.amploop/artifacts'
>>> mask_url("postgresql+psycopg://alice:s3cret@db.example:5432/ml")
'postgresql+psycopg://alice:***@db.example:5432/ml'
"""

from __future__ import annotations

import getpass
import os
import re
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

__all__ = ["Workspace", "code_version", "current_actor", "mask_url"]

DEFAULT_HOME = ".amploop"
DB_FILE_NAME = "amploop.db"


@dataclass(frozen=True)
class Workspace:
    """The addresses of one amploop installation's state (nothing is opened here)."""

    home: Path
    db_url: str
    artifacts_url: str

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None) -> Workspace:
        """Build the workspace from ``AMPLOOP_HOME``, ``AMPLOOP_DB_URL`` and ``AMPLOOP_ARTIFACTS``."""
        env = os.environ if environ is None else environ
        home = Path(env.get("AMPLOOP_HOME") or DEFAULT_HOME).expanduser().absolute()
        db_url = env.get("AMPLOOP_DB_URL") or f"sqlite:///{home / DB_FILE_NAME}"
        artifacts_url = env.get("AMPLOOP_ARTIFACTS") or str(home / "artifacts")
        return cls(home=home, db_url=db_url, artifacts_url=artifacts_url)

    @property
    def masked_db_url(self) -> str:
        return mask_url(self.db_url)

    def to_dict(self) -> dict[str, str]:
        return {
            "home": str(self.home),
            "db_url": self.masked_db_url,
            "artifacts_url": mask_url(self.artifacts_url),
        }


_PASSWORD = re.compile(r"(?P<head>[a-z][a-z0-9+.\-]*://[^:/@]+:)(?P<password>[^@]*)(?P<tail>@)", re.I)


def mask_url(url: str) -> str:
    """Replace the password in a URL with ``***`` so it can be shown or logged."""
    return _PASSWORD.sub(lambda m: f"{m['head']}***{m['tail']}", url)


def current_actor(environ: Mapping[str, str] | None = None) -> str:
    """Who is acting, for the audit log: ``AMPLOOP_ACTOR``, else the login name."""
    env = os.environ if environ is None else environ
    if env.get("AMPLOOP_ACTOR"):
        return env["AMPLOOP_ACTOR"]
    try:
        return getpass.getuser()
    except (KeyError, OSError):  # no passwd entry (some containers)
        return f"uid:{os.getuid()}"


def code_version(path: str | Path = ".") -> dict[str, object]:
    """The git commit of ``path`` and whether the tree has uncommitted changes; {} outside git."""
    import subprocess

    def git(*args: str) -> str | None:
        try:
            done = subprocess.run(["git", *args], cwd=path, capture_output=True, text=True, timeout=10)
        except (OSError, subprocess.TimeoutExpired):
            return None
        return done.stdout.strip() if done.returncode == 0 else None

    commit = git("rev-parse", "HEAD")
    if commit is None:
        return {}
    status = git("status", "--porcelain", "--untracked-files=no")
    return {"git_commit": commit, "dirty": bool(status)}
