"""Drift monitoring on the tier server: a served version whose folder holds a
``reference.json`` gets a :class:`~tierwise.telemetry.drift.DriftMonitor`, fed with the
inputs and outputs of the batches the version runs.

The monitor is fed after the batch's requests have their answers, from a callback the
event loop runs once the waiting requests have been woken, and only for a share of the
batches (``drift_sample_rate``) and at most ``drift_max_rows_per_s`` rows a second: a
sample, so what watching costs stays bounded however busy the server is (the monitor's
windows are counted in sampled rows). A reference that does not load is logged once and the
version is served without drift. A batch the monitor fails on is dropped and counted
(``tierwise_drift_errors_total``, logged the first time and then at each power of two),
and the monitor goes on with the next ones; batches with no rows are skipped.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Mapping
from pathlib import Path

import numpy as np

from tierwise.errors import ConfigError
from tierwise.telemetry.drift import REFERENCE_FILE, DriftMonitor, DriftSettings, Reference

__all__ = ["DriftHook", "load_monitor"]

log = logging.getLogger("tierwise.server")

Tensors = Mapping[str, np.ndarray]

#: reference files already reported as unusable (path, size, mtime): one warning each
_REPORTED: set[tuple[str, int, int]] = set()


def load_monitor(
    model: str, version: str, folder: Path, settings: DriftSettings
) -> DriftMonitor | None:
    """The drift monitor of the version served from ``folder``: None when the folder has
    no reference file, or (with one warning) when the file does not load."""
    path = folder / REFERENCE_FILE
    if not path.is_file():
        return None
    try:
        reference = Reference.load(path)
        return DriftMonitor(reference, settings)
    except ConfigError as exc:
        try:
            st = path.stat()
            mark = (str(path), st.st_size, st.st_mtime_ns)
        except OSError:
            mark = (str(path), -1, -1)
        if mark not in _REPORTED:
            _REPORTED.add(mark)
            log.warning(
                "model %s version %s is served without drift monitoring: its %s does not "
                "load (%s)", model, version, REFERENCE_FILE, exc,
            )  # fmt: skip
        return None


class DriftHook:
    """Feeds a share ``rate`` (0 < rate <= 1) of a version's batches to its monitor, and
    at most ``max_rows_per_s`` of their rows a second (None: no bound).

    The share is taken deterministically (every batch at 1.0, every other one at 0.5), so
    a test or a benchmark sees the same batches observed on every run; the rows a second
    are a token bucket holding one second of rows, on ``clock``. The tensors the
    reference reads are gathered until ``flush_rows`` rows (at most the monitor's step)
    and handed over together: the monitor's cost is mostly per call, and a server under
    light load runs many one-row batches.
    """

    __slots__ = (
        "_clock", "_credit", "_flush_rows", "_last_s", "_pending", "_rows", "_tokens",
        "max_rows_per_s", "model", "monitor", "rate", "version",
    )  # fmt: skip

    def __init__(
        self,
        model: str,
        version: str,
        monitor: DriftMonitor,
        rate: float,
        flush_rows: int = 32,
        *,
        max_rows_per_s: float | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        if not 0.0 < rate <= 1.0:
            raise ConfigError("drift_sample_rate", "a share in (0, 1]", rate)
        if flush_rows < 1:
            raise ConfigError("flush_rows", "a whole number >= 1", flush_rows)
        if max_rows_per_s is not None and not max_rows_per_s > 0:
            raise ConfigError("drift_max_rows_per_s", "rows a second > 0, or null", max_rows_per_s)
        self.max_rows_per_s = max_rows_per_s
        self._clock = clock
        self._last_s = clock()
        self._tokens = max_rows_per_s or 0.0
        settings = monitor.settings
        step = settings.step_rows or max(1, settings.window_rows // 5)
        self.model = model
        self.version = version
        self.monitor = monitor
        self.rate = rate
        self._flush_rows = min(flush_rows, step)
        self._credit = 0.0
        self._pending: list[tuple[np.ndarray, np.ndarray | None]] = []
        self._rows = 0

    def __call__(self, inputs: Tensors, outputs: Tensors) -> None:
        """Called by the batcher with one batch's merged inputs and outputs."""
        self._credit += self.rate
        if self._credit < 1.0:
            return
        self._credit -= 1.0
        if self.max_rows_per_s is not None and not self._admit(inputs):
            return
        try:
            self._gather(inputs, outputs)
        except Exception:  # the monitor must never take the server down
            self._pending, self._rows = [], 0
            monitor = self.monitor
            monitor.errors += 1
            if monitor.errors & (monitor.errors - 1) == 0:  # 1, 2, 4, 8...: not every batch
                log.exception(
                    "drift monitor of model %s version %s failed on a batch (%d so far); "
                    "the batch is dropped", self.model, self.version, monitor.errors,
                )  # fmt: skip

    def _admit(self, inputs: Tensors) -> bool:
        """Take the batch's rows from the bucket; False (the batch is not observed) when
        the second's rows are spent."""
        limit = self.max_rows_per_s or 0.0
        now = self._clock()
        self._tokens = min(limit, self._tokens + (now - self._last_s) * limit)
        self._last_s = now
        x = inputs.get(self.monitor.reference.input_name)
        rows = x.shape[0] if x is not None and x.ndim > 0 else 1
        if self._tokens < rows:
            return False
        self._tokens -= rows
        return True

    def _gather(self, inputs: Tensors, outputs: Tensors) -> None:
        reference = self.monitor.reference
        x = inputs.get(reference.input_name)
        scores = outputs.get(reference.output) if reference.output is not None else None
        if x is None or x.ndim == 0 or (reference.output is not None and scores is None):
            self.monitor.observe(inputs, outputs)  # counted as an ignored batch
            return
        if x.shape[0] == 0:
            return  # nothing to observe
        if self._pending and not _fits(self._pending[0], x, scores):
            self.flush()  # another shape or dtype: what was gathered goes first
        self._pending.append((x, scores))
        self._rows += x.shape[0]
        if self._rows >= self._flush_rows:
            self.flush()

    def flush(self) -> None:
        """Hand what was gathered to the monitor."""
        if not self._pending:
            return
        pending, self._pending, self._rows = self._pending, [], 0
        reference = self.monitor.reference
        x = np.concatenate([p[0] for p in pending]) if len(pending) > 1 else pending[0][0]
        out: dict[str, np.ndarray] = {}
        if reference.output is not None:
            parts = [p[1] for p in pending if p[1] is not None]
            out[reference.output] = np.concatenate(parts) if len(parts) > 1 else parts[0]
        self.monitor.observe({reference.input_name: x}, out)


def _fits(
    first: tuple[np.ndarray, np.ndarray | None], x: np.ndarray, scores: np.ndarray | None
) -> bool:
    """Whether a batch can join the gathered ones in one concatenation."""
    x0, s0 = first
    if x0.shape[1:] != x.shape[1:] or x0.dtype != x.dtype:
        return False
    if s0 is None or scores is None:
        return s0 is None and scores is None
    return bool(s0.shape[1:] == scores.shape[1:] and s0.dtype == scores.dtype)
