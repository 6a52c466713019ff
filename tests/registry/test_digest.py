"""The blob writer: size and digest checked before a blob gets its name, on both the
inline and the threaded hashing paths."""

from __future__ import annotations

import threading
from pathlib import Path

import numpy as np
import pytest

from tierwise.errors import IntegrityError
from tierwise.registry import BlobWriter, digest_bytes

SMALL = 1000
LARGE = 9 * 1024 * 1024  # hashed on a second thread


def _data(size: int) -> bytes:
    return np.random.default_rng(size).integers(0, 256, size, dtype=np.uint8).tobytes()


def _chunks(data: bytes, size: int = 1 << 20) -> list[bytes]:
    return [data[i : i + size] for i in range(0, len(data), size)]


@pytest.mark.parametrize("size", [SMALL, LARGE])
def test_good_blob_is_committed_read_only(tmp_path: Path, size: int) -> None:
    data = _data(size)
    dest = tmp_path / "blobs" / "x"
    with BlobWriter(tmp_path / "tmp", digest_bytes(data), size, bundle="b") as writer:
        for chunk in _chunks(data):
            writer.write(chunk)
        writer.commit(dest)
    assert dest.read_bytes() == data
    assert dest.stat().st_mode & 0o222 == 0
    assert list((tmp_path / "tmp").iterdir()) == []


@pytest.mark.parametrize("size", [SMALL, LARGE])
def test_flipped_bit_never_gets_the_name(tmp_path: Path, size: int) -> None:
    data = bytearray(_data(size))
    digest = digest_bytes(bytes(data))
    data[size // 2] ^= 0x04
    dest = tmp_path / "blob"
    with (  # noqa: PT012
        pytest.raises(IntegrityError, match="digest check failed"),
        BlobWriter(tmp_path / "tmp", digest, size, bundle="b") as writer,
    ):
        for chunk in _chunks(bytes(data)):
            writer.write(chunk)
        writer.commit(dest)
    assert not dest.exists()
    assert list((tmp_path / "tmp").iterdir()) == []
    assert not [t for t in threading.enumerate() if t.name == "blob-hash"]


def test_truncated_and_overlong_blobs(tmp_path: Path) -> None:
    data = _data(LARGE)
    digest = digest_bytes(data)
    with (  # noqa: PT012
        pytest.raises(IntegrityError, match="size check failed"),
        BlobWriter(tmp_path / "tmp", digest, LARGE, bundle="b") as writer,
    ):
        writer.write(data[:-10])
        writer.commit(tmp_path / "blob")
    with (  # noqa: PT012
        pytest.raises(IntegrityError, match="longer than"),
        BlobWriter(tmp_path / "tmp", digest, LARGE - 1, bundle="b") as writer,
    ):
        for chunk in _chunks(data):
            writer.write(chunk)
    assert not (tmp_path / "blob").exists()
    assert list((tmp_path / "tmp").iterdir()) == []
    assert not [t for t in threading.enumerate() if t.name == "blob-hash"]
