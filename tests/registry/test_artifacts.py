import contextlib
import hashlib
import threading

import pytest

from amploop.errors import ArtifactError
from amploop.registry import ArtifactStore


def test_local_write_read_and_digest(tmp_path):
    store = ArtifactStore(str(tmp_path / "artifacts"))
    data = b"\x00weights" * 1000
    ref = store.put_bytes("models/adult/1/model.safetensors", data)
    assert ref.sha256 == hashlib.sha256(data).hexdigest() and ref.size_bytes == len(data)
    assert ref.uri == str(tmp_path / "artifacts/models/adult/1/model.safetensors")
    assert store.get_bytes(ref.key, expected_sha256=ref.sha256) == data
    assert store.list("models") == ["models/adult/1/model.safetensors"]


def test_tampered_artifact_is_refused(tmp_path):
    store = ArtifactStore(str(tmp_path))
    ref = store.put_bytes("a/config.json", b'{"lr": 0.001}')
    (tmp_path / "a/config.json").write_bytes(b'{"lr": 1000}')
    with pytest.raises(ArtifactError, match="does not match the SHA-256 stored at registration"):
        store.get_bytes("a/config.json", expected_sha256=ref.sha256)


def test_missing_artifact(tmp_path):
    with pytest.raises(ArtifactError, match="artifact nope/x is missing"):
        ArtifactStore(str(tmp_path)).get_bytes("nope/x")


@pytest.mark.parametrize("key", ["../escape", "/abs/path", "a/../../b", ""])
def test_keys_cannot_leave_the_root(tmp_path, key):
    with pytest.raises(ArtifactError, match="relative path"):
        ArtifactStore(str(tmp_path)).put_bytes(key, b"x")


def test_overwrites_are_atomic_and_leave_no_temporary_files(tmp_path):
    store = ArtifactStore(str(tmp_path))
    payloads = [bytes([i]) * 200_000 for i in range(8)]
    seen: set[bytes] = set()
    stop = threading.Event()

    def reader() -> None:
        while not stop.is_set():
            with contextlib.suppress(ArtifactError):  # not written yet
                seen.add(hashlib.sha256(store.get_bytes("w/blob")).digest())

    thread = threading.Thread(target=reader)
    thread.start()
    for payload in payloads * 5:
        store.put_bytes("w/blob", payload)
    stop.set()
    thread.join()
    whole = {hashlib.sha256(p).digest() for p in payloads}
    assert seen and seen <= whole  # a reader only ever saw a complete version
    assert sorted(p.name for p in (tmp_path / "w").iterdir()) == ["blob"]


def test_any_fsspec_url_works(tmp_path):
    # fsspec's in-memory filesystem stands for an object store such as s3:// here.
    store = ArtifactStore("memory://amploop-test-bucket/prefix")
    ref = store.put_bytes("models/m/1/encoder.json", b"{}")
    assert ref.uri == "memory:///amploop-test-bucket/prefix/models/m/1/encoder.json"
    assert store.exists("models/m/1/encoder.json")
    assert store.get_bytes("models/m/1/encoder.json", expected_sha256=ref.sha256) == b"{}"
