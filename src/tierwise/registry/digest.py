"""Content digests and crash-safe writes.

Every blob is named by ``sha256:<64 hex>``. A blob is written to a temporary file in the
destination's own directory, hashed as it is written, fsynced, checked against the digest
and size it should have, and only then renamed into place, so a half-written or tampered
blob is never visible under its name, even after a kill -9 or a power cut.
"""

from __future__ import annotations

import hashlib
import os
import queue
import re
import tempfile
import threading
from pathlib import Path
from types import TracebackType
from typing import BinaryIO

from tierwise.errors import BundleError, IntegrityError, RegistryError

__all__ = [
    "BlobWriter",
    "DIGEST_PATTERN",
    "atomic_write_bytes",
    "check_digest",
    "digest_bytes",
    "digest_file",
    "fsync_dir",
]

DIGEST_PATTERN = re.compile(r"^sha256:[0-9a-f]{64}$")
_CHUNK = 1024 * 1024
#: blobs at least this large are hashed on a second thread while they are received
_THREADED_HASH_BYTES = 8 * 1024 * 1024
#: every this many bytes, start writing the file back to disk so the final fsync is short
_WRITEBACK_BYTES = 8 * 1024 * 1024


class _Hasher:
    """sha256 of a stream. For large blobs the hashing runs on its own thread (hashlib
    releases the GIL), fed through a bounded queue, so it overlaps the network and the
    disk instead of adding to them."""

    def __init__(self, threaded: bool) -> None:
        self._hash = hashlib.sha256()
        self._queue: queue.Queue[bytes | None] | None = None
        self._thread: threading.Thread | None = None
        if threaded:
            self._queue = queue.Queue(maxsize=16)
            self._thread = threading.Thread(target=self._run, name="blob-hash", daemon=True)
            self._thread.start()

    def _run(self) -> None:
        assert self._queue is not None  # threaded mode; internal invariant
        while (chunk := self._queue.get()) is not None:
            self._hash.update(chunk)

    def update(self, chunk: bytes) -> None:
        if self._queue is None:
            self._hash.update(chunk)
        else:
            self._queue.put(chunk)

    def hexdigest(self) -> str:
        self.close()
        return self._hash.hexdigest()

    def close(self) -> None:
        if self._queue is not None and self._thread is not None:
            self._queue.put(None)
            self._thread.join()
            self._queue = None


def check_digest(value: str, *, what: str = "digest") -> str:
    """``value`` if it is a well-formed ``sha256:<64 lowercase hex>`` digest."""
    if not isinstance(value, str) or not DIGEST_PATTERN.match(value):
        raise BundleError(f"{what}: expected 'sha256:' and 64 lowercase hex digits, got {value!r}")
    return value


def digest_bytes(data: bytes) -> str:
    return "sha256:" + hashlib.sha256(data).hexdigest()


def digest_file(path: Path) -> tuple[str, int]:
    """The digest and size of a file, read in 1 MiB chunks."""
    h = hashlib.sha256()
    size = 0
    with path.open("rb") as f:
        while chunk := f.read(_CHUNK):
            h.update(chunk)
            size += len(chunk)
    return "sha256:" + h.hexdigest(), size


def fsync_dir(path: Path) -> None:
    """Make a rename or a new file in ``path`` durable."""
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def atomic_write_bytes(path: Path, data: bytes, *, mode: int = 0o644) -> None:
    """Replace ``path`` with ``data`` atomically (temp file, fsync, rename)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.chmod(tmp, mode)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    fsync_dir(path.parent)


class BlobWriter:
    """Write one blob that must have ``digest`` and ``size_bytes``.

    Use as a context manager: ``write`` the chunks, then ``commit(dest)``; leaving the
    block without a commit (an error, a dropped connection) deletes the temporary file.
    Writing more than ``size_bytes`` fails at once, so a hostile source cannot fill the
    disk.
    """

    def __init__(self, tmp_dir: Path, digest: str, size_bytes: int, *, bundle: str | None) -> None:
        self.digest = check_digest(digest)
        if size_bytes < 0:
            raise BundleError(f"blob {digest}: size must be >= 0, got {size_bytes}")
        self.size_bytes = size_bytes
        self.bundle = bundle
        self.written = 0
        self._synced = 0
        self._hash = _Hasher(threaded=size_bytes >= _THREADED_HASH_BYTES)
        try:
            tmp_dir.mkdir(parents=True, exist_ok=True)
            fd, name = tempfile.mkstemp(prefix=digest[7:19] + ".", suffix=".partial", dir=tmp_dir)
        except OSError as exc:
            self._hash.close()
            raise RegistryError(f"cannot write blob {digest} in {tmp_dir}: {exc}") from exc
        self.tmp_path = Path(name)
        self._file: BinaryIO | None = os.fdopen(fd, "wb")

    def write(self, chunk: bytes) -> None:
        if self._file is None:
            raise IntegrityError("size", "write after commit", bundle=self.bundle)
        self.written += len(chunk)
        if self.written > self.size_bytes:
            raise IntegrityError(
                "size",
                f"blob {self.digest} is longer than the {self.size_bytes} bytes the manifest gives",
                bundle=self.bundle,
            )
        try:
            self._file.write(chunk)
            if self.written - self._synced >= _WRITEBACK_BYTES:
                self._file.flush()
                os.posix_fadvise(
                    self._file.fileno(), self._synced, self.written - self._synced,
                    os.POSIX_FADV_DONTNEED,
                )  # fmt: skip
                self._synced = self.written
        except OSError as exc:
            raise RegistryError(f"writing blob {self.digest} failed: {exc}") from exc
        self._hash.update(chunk)

    def commit(self, dest: Path) -> None:
        """Check size and digest, fsync, and rename to ``dest``."""
        if self._file is None:
            return
        try:
            self._file.flush()
            os.fsync(self._file.fileno())
        except OSError as exc:
            raise RegistryError(f"writing blob {self.digest} failed: {exc}") from exc
        finally:
            self._file.close()
            self._file = None
        if self.written != self.size_bytes:
            raise IntegrityError(
                "size",
                f"blob {self.digest} has {self.written} bytes, the manifest gives "
                f"{self.size_bytes} (truncated or padded)",
                bundle=self.bundle,
            )
        got = "sha256:" + self._hash.hexdigest()
        if got != self.digest:
            raise IntegrityError(
                "digest",
                f"blob content hashes to {got}, the manifest gives {self.digest}",
                bundle=self.bundle,
            )
        try:
            dest.parent.mkdir(parents=True, exist_ok=True)
            os.chmod(self.tmp_path, 0o444)  # blobs are immutable; so are links made to them
            os.replace(self.tmp_path, dest)
            fsync_dir(dest.parent)
        except OSError as exc:
            raise RegistryError(f"cannot put blob {self.digest} at {dest}: {exc}") from exc

    def abort(self) -> None:
        self._hash.close()
        if self._file is not None:
            self._file.close()
            self._file = None
        self.tmp_path.unlink(missing_ok=True)

    def __enter__(self) -> BlobWriter:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        if exc_type is not None or self._file is not None:
            self.abort()
        elif self.tmp_path.exists():
            self.tmp_path.unlink(missing_ok=True)
