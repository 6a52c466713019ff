"""Privacy-filtered telemetry samples: a few traces per workload, kept locally for drift
checks.

A :class:`Sampler` keeps a fraction of each workload's requests (the rate comes from the
plan) and writes one JSON record per kept request to a :class:`SampleSink`. What a
record holds depends on the request's privacy class:

- ``sensitive``: nothing is ever written, not even a hash, and no random draw is made;
- otherwise tensors (inputs and outputs) are replaced by their SHA-256 (HMAC-SHA-256 when
  a ``hash_key`` is set, which stops brute-forcing low-entropy inputs) with shape and
  datatype, unless the workload allows raw samples;
- the trace is copied without secrets: keys such as ``authorization`` or ``auth`` are
  dropped at any depth.

Sinks are append-only, bounded, and safe to read while written.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import logging
import math
import os
import random
import sqlite3
import threading
import time
from abc import ABC, abstractmethod
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import numpy as np

from tierwise.errors import ConfigError
from tierwise.protocol import datatype_of
from tierwise.spec.workloads import PRIVACY_CLASSES

__all__ = ["SECRET_KEYS", "JsonlSink", "SampleSink", "Sampler", "SqliteSink"]

logger = logging.getLogger("tierwise.telemetry.sampling")

SECRET_KEYS: frozenset[str] = frozenset(
    {
        "authorization",
        "auth",
        "proxy-authorization",
        "cookie",
        "set-cookie",
        "api_key",
        "api-key",
        "x-api-key",
        "password",
        "secret",
        "token",
    }
)
"""Trace keys (compared lower-case) that are dropped from every sample."""


class SampleSink(ABC):
    """Where samples go. Override :meth:`write` (append one record; return False when it
    was dropped, e.g. at the size bound) and, if needed, :meth:`close`."""

    @abstractmethod
    def write(self, record: Mapping[str, Any]) -> bool:
        """Append ``record`` (JSON-serializable); False if it was not stored."""

    def close(self) -> None:  # noqa: B027 (optional override)
        """Release files and connections."""


class JsonlSink(SampleSink):
    """JSON lines in ``path``, one whole line per ``os.write`` on an append-only file.

    When the next line would pass ``max_bytes`` the file rotates to ``path.1`` ...
    ``path.<backups>`` (the oldest is dropped), so at most ``max_bytes * (backups + 1)``
    bytes are kept; with ``backups=0`` writing stops at the bound and records are counted
    in ``dropped``. One writer per file; readers use :meth:`read`.
    """

    def __init__(self, path: str | Path, *, max_bytes: int, backups: int = 1) -> None:
        if isinstance(max_bytes, bool) or not isinstance(max_bytes, int) or max_bytes < 1:
            raise ConfigError("max_bytes", "an integer >= 1", max_bytes)
        if isinstance(backups, bool) or not isinstance(backups, int) or backups < 0:
            raise ConfigError("backups", "an integer >= 0", backups)
        self.path = Path(path)
        self.max_bytes = max_bytes
        self.backups = backups
        self.dropped = 0
        self._lock = threading.Lock()
        self._fd = self._open()
        self._size_bytes = os.fstat(self._fd).st_size

    def _open(self) -> int:
        return os.open(self.path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o600)

    def write(self, record: Mapping[str, Any]) -> bool:
        line = (json.dumps(record, separators=(",", ":"), sort_keys=True) + "\n").encode()
        with self._lock:
            if self._fd < 0:
                raise ValueError("sink is closed")
            if len(line) > self.max_bytes:
                self.dropped += 1
                return False
            if self._size_bytes + len(line) > self.max_bytes:
                if self.backups == 0:
                    self.dropped += 1
                    return False
                self._rotate()
            view = memoryview(line)
            while view:
                view = view[os.write(self._fd, view) :]
            self._size_bytes += len(line)
            return True

    def _rotate(self) -> None:
        os.close(self._fd)
        for index in range(self.backups - 1, 0, -1):
            older = self.path.with_name(f"{self.path.name}.{index}")
            if older.exists():
                os.replace(older, self.path.with_name(f"{self.path.name}.{index + 1}"))
        os.replace(self.path, self.path.with_name(f"{self.path.name}.1"))
        self._fd = self._open()
        self._size_bytes = 0

    def close(self) -> None:
        with self._lock:
            if self._fd >= 0:
                os.close(self._fd)
                self._fd = -1

    @staticmethod
    def read(path: str | Path) -> list[dict[str, Any]]:
        """The complete records of one file (a line still being written is skipped)."""
        try:
            data = Path(path).read_bytes()
        except FileNotFoundError:
            return []
        return [json.loads(line) for line in data.split(b"\n")[:-1] if line]


class SqliteSink(SampleSink):
    """Rows in a SQLite file (WAL, so readers never block the writer). Append-only and
    bounded: past ``max_rows`` records are dropped and counted in ``dropped``.
    ``synchronous=NORMAL``: losing the last samples on power loss is acceptable for
    telemetry, and it spares an fsync per sample."""

    def __init__(self, path: str | Path, *, max_rows: int = 1_000_000) -> None:
        if isinstance(max_rows, bool) or not isinstance(max_rows, int) or max_rows < 1:
            raise ConfigError("max_rows", "an integer >= 1", max_rows)
        self.path = Path(path)
        self.max_rows = max_rows
        self.dropped = 0
        self._lock = threading.Lock()
        self._conn = sqlite3.connect(
            self.path, isolation_level=None, check_same_thread=False, timeout=10.0
        )
        self._conn.execute("PRAGMA journal_mode=WAL")
        self._conn.execute("PRAGMA synchronous=NORMAL")
        self._conn.execute(
            "CREATE TABLE IF NOT EXISTS samples (seq INTEGER PRIMARY KEY AUTOINCREMENT,"
            " ts_s REAL NOT NULL, workload TEXT NOT NULL, record TEXT NOT NULL)"
        )
        self._rows = int(self._conn.execute("SELECT count(*) FROM samples").fetchone()[0])

    def write(self, record: Mapping[str, Any]) -> bool:
        text = json.dumps(record, separators=(",", ":"), sort_keys=True)
        with self._lock:
            if self._rows >= self.max_rows:
                self.dropped += 1
                return False
            self._conn.execute(
                "INSERT INTO samples (ts_s, workload, record) VALUES (?, ?, ?)",
                (float(record.get("ts_s", 0.0)), str(record.get("workload", "")), text),
            )
            self._rows += 1
            return True

    def close(self) -> None:
        with self._lock:
            self._conn.close()

    @staticmethod
    def read(path: str | Path, *, workload: str | None = None) -> list[dict[str, Any]]:
        """Records in write order (optionally one workload's), through a read-only handle."""
        conn = sqlite3.connect(f"file:{Path(path)}?mode=ro", uri=True)
        try:
            if workload is None:
                rows = conn.execute("SELECT record FROM samples ORDER BY seq").fetchall()
            else:
                rows = conn.execute(
                    "SELECT record FROM samples WHERE workload = ? ORDER BY seq", (workload,)
                ).fetchall()
        finally:
            conn.close()
        return [json.loads(row[0]) for row in rows]


class Sampler:
    """Keeps ``rates[workload]`` of each workload's non-sensitive requests (workloads not
    in ``rates`` are not sampled); see the module docstring for what is written.

    ``rng`` decides which requests are kept (one draw per non-sensitive offer), so a seeded
    generator gives the same samples every run. Tensors larger than
    ``max_raw_elements`` are hashed even when raw samples are allowed.
    """

    def __init__(
        self,
        rates: Mapping[str, float],
        *,
        allow_raw: Mapping[str, bool] | None = None,
        sink: SampleSink,
        rng: random.Random,
        clock: Callable[[], float] = time.time,
        hash_key: bytes | None = None,
        max_raw_elements: int = 65_536,
    ) -> None:
        for workload, rate in rates.items():
            if (
                isinstance(rate, bool)
                or not isinstance(rate, int | float)
                or not (0.0 <= rate <= 1.0)
            ):
                raise ConfigError(f"rates[{workload!r}]", "a sampling rate in [0, 1]", rate)
        if hash_key is not None and (not isinstance(hash_key, bytes) or not hash_key):
            raise ConfigError("hash_key", "non-empty bytes or None")
        if isinstance(max_raw_elements, bool) or max_raw_elements < 0:
            raise ConfigError("max_raw_elements", "an integer >= 0", max_raw_elements)
        self.rates = {str(k): float(v) for k, v in rates.items()}
        self.allow_raw = {str(k): bool(v) for k, v in (allow_raw or {}).items()}
        self.sink = sink
        self.max_raw_elements = max_raw_elements
        self._rng = rng
        self._clock = clock
        self._hash_key = hash_key
        self._hash_field = "hmac_sha256" if hash_key else "sha256"
        self.offered = 0
        self.sampled = 0

    def offer(
        self,
        trace: Mapping[str, Any],
        inputs: Mapping[str, np.ndarray[Any, Any]],
        outputs: Mapping[str, np.ndarray[Any, Any]] | None,
        privacy: str,
    ) -> bool:
        """Maybe write a sample of this request; True when one was written.

        ``trace["workload"]`` names the workload. Sink I/O errors are logged and count as
        not sampled: telemetry never fails a request.
        """
        workload = trace.get("workload")
        if not isinstance(workload, str):
            raise ConfigError("trace['workload']", "the workload name (a string)", workload)
        return self.offer_lazy(workload, lambda: trace, inputs, outputs, privacy)

    def offer_lazy(
        self,
        workload: str,
        trace: Callable[[], Mapping[str, Any]],
        inputs: Mapping[str, np.ndarray[Any, Any]],
        outputs: Mapping[str, np.ndarray[Any, Any]] | None,
        privacy: str,
    ) -> bool:
        """:meth:`offer` for a trace built only if the request is kept (``trace()``)."""
        if privacy not in PRIVACY_CLASSES:
            raise ConfigError("privacy", "one of " + ", ".join(PRIVACY_CLASSES), privacy)
        self.offered += 1
        if privacy == "sensitive":
            return False
        rate = self.rates.get(workload, 0.0)
        if not self._rng.random() < rate:
            return False
        raw = self.allow_raw.get(workload, False)
        record = {
            "ts_s": self._clock(),
            "workload": workload,
            "privacy": privacy,
            "raw": raw,
            "trace": self._clean(trace()),
            "inputs": {name: self._tensor(a, raw) for name, a in inputs.items()},
            "outputs": {name: self._tensor(a, raw) for name, a in (outputs or {}).items()},
        }
        try:
            written = self.sink.write(record)
        except (OSError, sqlite3.Error, ValueError) as exc:
            logger.warning("sample for workload %r not written: %s", workload, exc)
            return False
        self.sampled += int(written)
        return written

    def digest(self, array: np.ndarray[Any, Any]) -> str:
        """Hex SHA-256 (or HMAC) of a tensor's bytes: row-major, little-endian numbers;
        BYTES elements each prefixed by their 8-byte length. Stable across runs."""
        h = hmac.new(self._hash_key, digestmod=hashlib.sha256) if self._hash_key else None
        hasher = h if h is not None else hashlib.sha256()
        if array.dtype.kind in ("O", "S", "U"):
            for element in array.reshape(-1):
                data = element if isinstance(element, bytes) else str(element).encode()
                hasher.update(len(data).to_bytes(8, "little"))
                hasher.update(data)
        else:
            contiguous = np.ascontiguousarray(array)
            if contiguous.dtype.byteorder == ">":
                contiguous = contiguous.astype(contiguous.dtype.newbyteorder("<"))
            hasher.update(contiguous.tobytes())
        return hasher.hexdigest()

    def _tensor(self, array: np.ndarray[Any, Any], raw: bool) -> dict[str, Any]:
        array = np.asarray(array)
        entry: dict[str, Any] = {"datatype": datatype_of(array), "shape": list(array.shape)}
        if raw and array.size <= self.max_raw_elements:
            if array.dtype.kind in ("O", "S"):
                entry["data_b64"] = [
                    base64.b64encode(e if isinstance(e, bytes) else str(e).encode()).decode()
                    for e in array.reshape(-1)
                ]
            else:
                entry["data"] = _finite(array.reshape(-1).tolist())
        else:
            entry[self._hash_field] = self.digest(array)
        return entry

    def _clean(self, value: Any) -> Any:
        """A JSON-safe copy of trace data without secret keys; tensors and bytes become
        digests (a trace must not smuggle raw inputs past the filter)."""
        if isinstance(value, Mapping):
            return {
                str(k): self._clean(v)
                for k, v in value.items()
                if str(k).lower() not in SECRET_KEYS
            }
        if isinstance(value, list | tuple):
            return [self._clean(v) for v in value]
        if isinstance(value, np.ndarray):
            return {self._hash_field: self.digest(value), "shape": list(value.shape)}
        if isinstance(value, bytes | bytearray):
            return {self._hash_field: self.digest(np.frombuffer(bytes(value), dtype=np.uint8))}
        if isinstance(value, np.generic):
            return _finite(value.item())
        if value is None or isinstance(value, str | int | bool):
            return value
        if isinstance(value, float):
            return _finite(value)
        return str(value)


def _finite(value: Any) -> Any:
    """NaN and infinities as strings: JSON has no such numbers."""
    if isinstance(value, float) and not math.isfinite(value):
        return str(value)
    if isinstance(value, list):
        return [_finite(v) for v in value]
    return value
