"""Atomic training checkpoints that a killed process can never leave half-written.

Layout of a checkpoint folder::

    checkpoints/
      latest                 names the newest complete checkpoint ("step-00000120")
      step-00000100/         complete: manifest.json lists every file with its SHA-256
      step-00000120/
      .partial-step-.../     a write in progress, or one a killed process left behind

A save writes every file into a fresh ``.partial-*`` folder, fsyncs them, writes
``manifest.json`` last, renames the folder to ``step-N`` (a single atomic rename) and only
then replaces ``latest`` (a temporary file renamed over it). A kill at any moment therefore
leaves ``latest`` naming a complete checkpoint, and the leftover partial folder is removed by
the next save. Old checkpoints are renamed to ``.trash-*`` before deletion, so a kill during
pruning never leaves a damaged folder under a ``step-N`` name. Loading verifies the manifest's
digests and falls back to the newest checkpoint that verifies.

Tensors are stored as safetensors; optimizer state with ``torch.save`` and read back with
``torch.load(..., weights_only=True)``: nothing is unpickled.

A checkpoint folder belongs to amploop only while it holds nothing but the entries above:
:meth:`CheckpointManager.check_owned` refuses a folder with any other file (a mistyped
``--checkpoint-dir .`` must never wipe a project), and every removal is checked to stay inside
the folder, never following a symbolic link out of it.
"""

from __future__ import annotations

import hashlib
import io
import json
import os
import pickle
import re
import shutil
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from safetensors.torch import load as load_safetensors
from safetensors.torch import save as save_safetensors

from amploop.errors import ArtifactError, ConfigError

__all__ = ["Checkpoint", "CheckpointManager"]

LATEST = "latest"
MANIFEST = "manifest.json"
# The only names a checkpoint folder holds; anything else is someone else's file.
_OWN_ENTRY = re.compile(r"latest|step-\d{8,}|\.(partial|trash)-step-\d{8,}-[0-9a-f]{8}|\.latest\.tmp-[0-9a-f]{8}")


@dataclass(frozen=True)
class Checkpoint:
    """One loaded checkpoint: its step and its files' contents, verified."""

    step: int
    path: Path
    files: dict[str, bytes]

    def tensors(self, name: str) -> dict[str, torch.Tensor]:
        return load_safetensors(self.files[name])

    def json(self, name: str) -> Any:
        return json.loads(self.files[name])

    def torch_object(self, name: str) -> Any:
        """A ``torch.save`` file read with ``weights_only=True``; anything else is an ArtifactError."""
        try:
            return torch.load(io.BytesIO(self.files[name]), weights_only=True, map_location="cpu")
        except (pickle.UnpicklingError, RuntimeError, EOFError, ValueError, KeyError, AttributeError) as exc:
            first = str(exc).strip().splitlines()[0][:160] if str(exc).strip() else type(exc).__name__
            raise ArtifactError(
                f"checkpoint file {self.path / name} is not plain tensor data and was not loaded ({first}); "
                "delete that checkpoint folder and train without --resume",
                path=str(self.path / name),
            ) from None


def tensors_bytes(tensors: dict[str, torch.Tensor]) -> bytes:
    return save_safetensors({k: v.detach().contiguous().cpu() for k, v in tensors.items()})


def torch_bytes(obj: Any) -> bytes:
    buffer = io.BytesIO()
    torch.save(obj, buffer)
    return buffer.getvalue()


def _fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _write_synced(path: Path, data: bytes) -> None:
    with open(path, "wb") as fh:
        fh.write(data)
        fh.flush()
        os.fsync(fh.fileno())


class CheckpointManager:
    """Save and load checkpoints in one folder, keeping the newest ``keep`` of them."""

    def __init__(self, directory: str | Path, *, keep: int = 2) -> None:
        self.directory = Path(directory)
        self.keep = max(1, keep)

    def foreign_entries(self) -> list[str]:
        """Names in the folder that amploop did not write (symbolic links count as foreign)."""
        if not self.directory.exists():
            return []
        if not self.directory.is_dir() or self.directory.is_symlink():
            return [self.directory.name]
        return sorted(
            entry.name
            for entry in self.directory.iterdir()
            if entry.is_symlink() or not _OWN_ENTRY.fullmatch(entry.name)
        )

    def check_owned(self) -> None:
        """Refuse a folder that holds anything but amploop's own checkpoint files (ConfigError)."""
        foreign = self.foreign_entries()
        if foreign:
            shown = ", ".join(foreign[:3]) + (f" and {len(foreign) - 3} more" if len(foreign) > 3 else "")
            raise ConfigError(
                f"checkpoint folder {self.directory} holds files amploop did not write ({shown}); "
                "nothing was touched: choose a new or empty folder with --checkpoint-dir",
                foreign=foreign[:20],
            )

    def clear(self) -> None:
        """Remove this folder's checkpoints (only amploop's own entries; the folder stays)."""
        if not self.directory.exists():
            return
        self.check_owned()
        for entry in list(self.directory.iterdir()):
            self._remove(entry)

    def _remove(self, path: Path) -> None:
        """Delete one entry of this folder; refuse anything that resolves outside it."""
        inside = path.parent.resolve() == self.directory.resolve() and _OWN_ENTRY.fullmatch(path.name)
        if not inside or path.is_symlink():
            raise ConfigError(f"refusing to delete {path}: it is not one of amploop's checkpoint files")
        if path.is_dir():
            shutil.rmtree(path, ignore_errors=True)
        else:
            path.unlink(missing_ok=True)

    @staticmethod
    def name_for(step: int) -> str:
        return f"step-{step:08d}"

    def save(self, step: int, files: dict[str, bytes]) -> Path:
        """Write a complete checkpoint for ``step`` and point ``latest`` at it."""
        self.directory.mkdir(parents=True, exist_ok=True)
        self._remove_leftovers()
        final = self.directory / self.name_for(step)
        if final.exists() and self._verify(final) is not None:
            self._point_latest(final.name)  # the same step saved again (after a resume)
            return final
        partial = self.directory / f".partial-{final.name}-{uuid.uuid4().hex[:8]}"
        partial.mkdir()
        manifest = {"step": step, "files": {}}
        for name, data in files.items():
            _write_synced(partial / name, data)
            manifest["files"][name] = hashlib.sha256(data).hexdigest()
        _write_synced(partial / MANIFEST, json.dumps(manifest, sort_keys=True).encode())
        _fsync_dir(partial)
        if final.exists():  # a damaged folder under the final name: move it out of the way
            final.rename(self.directory / f".trash-{final.name}-{uuid.uuid4().hex[:8]}")
        os.replace(partial, final)
        _fsync_dir(self.directory)
        self._point_latest(final.name)
        self._prune()
        return final

    def _point_latest(self, name: str) -> None:
        tmp = self.directory / f".{LATEST}.tmp-{uuid.uuid4().hex[:8]}"
        _write_synced(tmp, name.encode())
        os.replace(tmp, self.directory / LATEST)
        _fsync_dir(self.directory)

    def _remove_leftovers(self) -> None:
        for path in self.directory.iterdir():
            leftover = path.name.startswith((".partial-", ".trash-", f".{LATEST}.tmp-"))
            if leftover and _OWN_ENTRY.fullmatch(path.name) and not path.is_symlink():
                self._remove(path)

    def _prune(self) -> None:
        complete = self.steps()
        latest = self._latest_name()
        for step in complete[: -self.keep]:
            path = self.directory / self.name_for(step)
            if path.name == latest:
                continue
            if path.is_symlink():
                continue
            trash = self.directory / f".trash-{path.name}-{uuid.uuid4().hex[:8]}"
            path.rename(trash)
            self._remove(trash)

    def _latest_name(self) -> str | None:
        try:
            return (self.directory / LATEST).read_text().strip() or None
        except FileNotFoundError:
            return None

    def steps(self) -> list[int]:
        """Steps of the folders named ``step-N`` (complete by construction), oldest first."""
        if not self.directory.exists():
            return []
        found = []
        for path in self.directory.iterdir():
            if path.is_dir() and path.name.startswith("step-") and path.name[5:].isdigit():
                found.append(int(path.name[5:]))
        return sorted(found)

    def _verify(self, path: Path) -> Checkpoint | None:
        try:
            manifest = json.loads((path / MANIFEST).read_bytes())
            files = {}
            for name, digest in manifest["files"].items():
                data = (path / name).read_bytes()
                if hashlib.sha256(data).hexdigest() != digest:
                    return None
                files[name] = data
            return Checkpoint(step=int(manifest["step"]), path=path, files=files)
        except (OSError, ValueError, KeyError):
            return None

    def latest(self) -> Checkpoint | None:
        """The checkpoint ``latest`` names, verified; else the newest one that verifies; else None."""
        if not self.directory.exists():
            return None
        name = self._latest_name()
        if name:
            found = self._verify(self.directory / name)
            if found is not None:
                return found
        for step in reversed(self.steps()):
            found = self._verify(self.directory / self.name_for(step))
            if found is not None:
                return found
        return None
