"""Artifact storage: weights, encoders, reports. A local folder by default, any fsspec URL otherwise.

Every write is whole or absent. On a local disk a file is written under a temporary name in
the same folder, flushed, and renamed over the target (``os.replace`` is atomic on POSIX).
Object stores (``s3://``, ``gs://``, ``memory://``) publish an object only once its upload
completes, so they are written directly. Each write returns the SHA-256 of the bytes; reads
given an expected digest refuse content that differs.

Examples
--------
>>> import tempfile
>>> store = ArtifactStore(tempfile.mkdtemp())
>>> ref = store.put_bytes("models/demo/1/config.json", b'{"a": 1}')
>>> ref.sha256[:12], ref.size_bytes
('f9d86028c6e0', 8)
>>> store.get_bytes("models/demo/1/config.json", expected_sha256=ref.sha256)
b'{"a": 1}'
"""

from __future__ import annotations

import hashlib
import os
import uuid
from dataclasses import asdict, dataclass
from pathlib import Path, PurePosixPath
from typing import Any

import fsspec

from amploop.errors import ArtifactError, StoreError
from amploop.workspace import mask_url

__all__ = ["ArtifactRef", "ArtifactStore", "sha256_bytes"]

_LOCAL_PROTOCOLS = {"file", "local"}


def sha256_bytes(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


@dataclass(frozen=True)
class ArtifactRef:
    """Where an artifact was written and what its bytes hash to."""

    key: str
    uri: str
    sha256: str
    size_bytes: int

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


class ArtifactStore:
    """Read and write artifacts under one root URL, by relative keys like ``models/x/3/weights``."""

    def __init__(self, root_url: str) -> None:
        self.root_url = root_url
        try:
            self._fs, self._root = fsspec.core.url_to_fs(root_url)
        except (ImportError, ValueError) as exc:
            raise StoreError(
                f"cannot use artifact storage {mask_url(root_url)}: {exc}; "
                "install the fsspec backend for that scheme (s3fs for s3://) or set AMPLOOP_ARTIFACTS"
            ) from None
        protocol = self._fs.protocol
        protocols = {protocol} if isinstance(protocol, str) else set(protocol)
        self.is_local = bool(protocols & _LOCAL_PROTOCOLS)

    def _path(self, key: str) -> str:
        parts = PurePosixPath(key).parts
        if not parts or key.startswith("/") or any(p in ("..", ".", "") for p in parts):
            raise ArtifactError(f"artifact key {key!r} must be a relative path without '..'")
        return f"{self._root.rstrip('/')}/{key}"

    def uri(self, key: str) -> str:
        path = self._path(key)
        return path if self.is_local else self._fs.unstrip_protocol(path)

    def put_bytes(self, key: str, data: bytes) -> ArtifactRef:
        path = self._path(key)
        try:
            if self.is_local:
                write_file_atomically(Path(path), data, create_parents=True)
            else:
                self._fs.pipe_file(path, data)
        except OSError as exc:
            raise StoreError(f"cannot write artifact {key} under {mask_url(self.root_url)}: {exc}") from None
        return ArtifactRef(key=key, uri=self.uri(key), sha256=sha256_bytes(data), size_bytes=len(data))

    def put_file(self, key: str, source: str | Path) -> ArtifactRef:
        return self.put_bytes(key, Path(source).read_bytes())

    def get_bytes(self, key: str, *, expected_sha256: str | None = None) -> bytes:
        path = self._path(key)
        try:
            data = self._fs.cat_file(path)
        except FileNotFoundError:
            raise ArtifactError(
                f"artifact {key} is missing under {mask_url(self.root_url)}: restore it or register the model again",
                key=key,
                problem="missing",
            ) from None
        except OSError as exc:
            raise StoreError(f"cannot read artifact {key}: {exc}") from None
        if expected_sha256 is not None and sha256_bytes(data) != expected_sha256:
            raise ArtifactError(
                f"artifact {key} does not match the SHA-256 stored at registration; it was altered "
                "or corrupted after it was written: restore it or register the model again",
                key=key,
                expected_sha256=expected_sha256,
                problem="altered",
            )
        return data

    def exists(self, key: str) -> bool:
        return bool(self._fs.exists(self._path(key)))

    def list(self, prefix: str = "") -> list[str]:
        """Keys under ``prefix`` (a folder key), sorted."""
        base = self._root.rstrip("/")
        folder = self._path(prefix) if prefix else base
        if not self._fs.exists(folder):
            return []
        found = self._fs.find(folder)
        return sorted(str(PurePosixPath(p).relative_to(PurePosixPath(base))) for p in found)


def write_file_atomically(path: Path, data: bytes, *, create_parents: bool = False) -> None:
    """Write a local file whole or not at all: a synced temporary file beside it, renamed over it."""
    if create_parents:
        path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp-{uuid.uuid4().hex}")
    try:
        with open(tmp, "wb") as fh:
            fh.write(data)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)
