"""The device side of device telemetry: aggregate what a device served, then send one
report per window to the gateway's ``POST /v2/telemetry/device``
(:mod:`tierwise.telemetry.device` says what a report holds).

:meth:`DeviceReporter.observe` takes each request's outcome and latency (and, where the
workload's privacy and the request's own ``privacy``, when it narrowed it, let them leave
the device at all, its inputs and outputs for the drift monitor and the raw samples).
:meth:`~DeviceReporter.report` builds the filtered report; the filter is the workload's
privacy, applied here so that what is not allowed never reaches the wire:

- every workload: counts by outcome and by latency bucket;
- not ``sensitive``: the drift scores of the ``drift`` monitor given (statistics of the
  inputs, computed on the device);
- ``allow_raw_samples`` (never with ``sensitive``): up to ``max_samples`` raw inputs.

A ``sensitive`` workload's inputs, or a request's narrowed to ``sensitive``, are not even
looked at: no bytes, no hashes, no statistics of them.

:meth:`~DeviceReporter.send` closes the window (a new one starts at once) and posts its
report with the project's HTTP client (anything with its ``post``), under a ``report_id``
of its own. A report the gateway did not take for a passing reason (no answer, 5xx, 401,
403, 408, 429) is sent again, as it was and under the same id, by the next ``send``: the
gateway counts a report it already took once. One it refused (any other 4xx) is dropped,
so that one bad report never holds the device back. A window never claims more than
:data:`~tierwise.telemetry.device.MAX_WINDOW_S`.
"""

from __future__ import annotations

import time
import uuid
from bisect import bisect_left
from collections.abc import Callable, Mapping
from itertools import pairwise
from typing import Any, Protocol

import numpy as np

from tierwise.errors import ConfigError
from tierwise.spec.workloads import PRIVACY_CLASSES
from tierwise.telemetry.device import (
    DEVICE_OUTCOMES,
    DEVICE_TELEMETRY_PATH,
    MAX_BOUNDS,
    MAX_WINDOW_S,
)

__all__ = ["DEFAULT_BOUNDS_MS", "DriftSource", "DeviceReporter", "Poster"]

#: statuses after which the same report is sent again (the gateway may take it later)
_RETRY = frozenset({401, 403, 408, 429})
#: the latency bounds (ms) a reporter counts in unless told others
DEFAULT_BOUNDS_MS = (1.0, 2.5, 5.0, 10.0, 25.0, 50.0, 100.0, 250.0, 500.0, 1000.0, 2500.0)


class DriftSource(Protocol):
    """A drift monitor as the reporter uses it (:class:`~tierwise.telemetry.drift.
    DriftMonitor` is one)."""

    def observe(
        self, inputs: Mapping[str, np.ndarray], outputs: Mapping[str, np.ndarray]
    ) -> None: ...

    def scores(self) -> dict[tuple[str, str], float]: ...


class _Response(Protocol):
    @property
    def status_code(self) -> int: ...


class Poster(Protocol):
    """What :meth:`DeviceReporter.send` needs of a client: :class:`~tierwise.http.
    HttpClient`'s ``post``."""

    async def post(
        self, url: str, *, headers: Mapping[str, str] | None = ..., json: Any = ...
    ) -> _Response: ...


class DeviceReporter:
    """One workload's telemetry on one device class (module docstring). ``privacy`` and
    ``allow_raw_samples`` are the workload's, as the plan says them."""

    def __init__(
        self,
        workload: str,
        device_class: str,
        *,
        privacy: str,
        allow_raw_samples: bool = False,
        drift: DriftSource | None = None,
        bounds_ms: tuple[float, ...] = DEFAULT_BOUNDS_MS,
        max_samples: int = 8,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        if privacy not in PRIVACY_CLASSES:
            raise ConfigError("privacy", f"one of {list(PRIVACY_CLASSES)}", privacy)
        if allow_raw_samples and privacy == "sensitive":
            raise ConfigError("allow_raw_samples", "false for a sensitive workload", True)
        if not bounds_ms or len(bounds_ms) > MAX_BOUNDS:
            raise ConfigError("bounds_ms", f"1 to {MAX_BOUNDS} bounds", len(bounds_ms))
        if any(b <= a for a, b in pairwise(bounds_ms)) or bounds_ms[0] <= 0:
            raise ConfigError("bounds_ms", "positive, strictly increasing bounds", bounds_ms)
        if not 0 <= max_samples <= 16:
            raise ConfigError("max_samples", "0 to 16", max_samples)
        self.workload = workload
        self.device_class = device_class
        self.privacy = privacy
        self.sensitive = privacy == "sensitive"
        self.allow_raw_samples = allow_raw_samples
        # a sensitive workload's inputs feed nothing, not even statistics
        self.drift = None if self.sensitive else drift
        self.bounds_ms = tuple(float(b) for b in bounds_ms)
        self.max_samples = max_samples
        self._clock = clock
        #: the closed window's report while the gateway has not taken it
        self.pending: dict[str, Any] | None = None
        self._reset()

    def _reset(self) -> None:
        self._started = self._clock()
        self.counts: dict[str, int] = {}
        self._latency = [0] * (len(self.bounds_ms) + 1)
        self._sum_ms = 0.0
        self._samples: list[dict[str, list[Any]]] = []

    def observe(
        self,
        outcome: str,
        latency_s: float,
        inputs: Mapping[str, np.ndarray] | None = None,
        outputs: Mapping[str, np.ndarray] | None = None,
        *,
        privacy: str | None = None,
    ) -> None:
        """Count one request: its ``outcome`` (one of
        :data:`~tierwise.telemetry.device.DEVICE_OUTCOMES`) and latency; its tensors go
        only where the workload's privacy and the request's effective ``privacy`` (the
        class it was routed under, when it narrowed the workload's) let them."""
        if outcome not in DEVICE_OUTCOMES:
            raise ConfigError("outcome", f"one of {list(DEVICE_OUTCOMES)}", outcome)
        if privacy is not None and privacy not in PRIVACY_CLASSES:
            raise ConfigError("privacy", f"one of {list(PRIVACY_CLASSES)}", privacy)
        self.counts[outcome] = self.counts.get(outcome, 0) + 1
        latency_ms = max(0.0, latency_s * 1000.0)
        self._latency[bisect_left(self.bounds_ms, latency_ms)] += 1
        self._sum_ms += latency_ms
        if self.sensitive or privacy == "sensitive" or inputs is None:
            return
        if self.drift is not None and outputs is not None:
            self.drift.observe(inputs, outputs)
        if self.allow_raw_samples and len(self._samples) < self.max_samples:
            self._samples.append({k: np.asarray(v).tolist() for k, v in inputs.items()})

    def report(self) -> dict[str, Any]:
        """The current window's report, filtered by the workload's privacy."""
        report: dict[str, Any] = {
            "device_class": self.device_class,
            "workload": self.workload,
            "window_s": min(max(self._clock() - self._started, 1e-3), MAX_WINDOW_S),
            "report_id": uuid.uuid4().hex,
            "counts": dict(self.counts),
        }
        if sum(self._latency):
            report["latency_ms"] = {
                "bounds": list(self.bounds_ms),
                "counts": list(self._latency),
                "sum_ms": self._sum_ms,
            }
        if self.drift is not None:
            scores = self.drift.scores()
            if scores:
                report["drift"] = {f"{s}/{t}": float(v) for (s, t), v in scores.items()}
        if self._samples:
            report["samples"] = list(self._samples)
        return report

    async def send(
        self, client: Poster, url: str = DEVICE_TELEMETRY_PATH, *, token: str | None = None
    ) -> int:
        """Post the report not yet taken, else close the window and post its report
        (``url`` resolved by the client's ``base_url``); returns the gateway's status.
        The report is kept for the next call only when the status says it may be taken
        later (module docstring); an error the client raises keeps it too."""
        if self.pending is None:
            self.pending = self.report()
            self._reset()
        headers = {"authorization": f"Bearer {token}"} if token is not None else None
        response = await client.post(url, headers=headers, json=self.pending)
        status = response.status_code
        if status < 500 and status not in _RETRY:
            self.pending = None
        return status
