"""What the router learns about each remote tier as it calls it: a circuit breaker
(consecutive failures and error rate, half-open probes) and observed latency percentiles.

Both take the clock as an argument, so the simulator can drive them with its own time.
"""

from __future__ import annotations

import math
import time
from collections import deque
from collections.abc import Callable
from typing import Literal

from pydantic import Field, model_validator

from tierwise.errors import ConfigError
from tierwise.settings_errors import SettingsModel

__all__ = ["BreakerSettings", "CircuitBreaker", "LatencyWindow"]

BreakerState = Literal["closed", "open", "half_open"]
_REFRESH_EVERY = 16


class BreakerSettings(SettingsModel):
    """When a breaker opens and how it probes its way back: after
    ``consecutive_failures`` in a row, or when at least ``error_rate`` of the last
    ``window`` calls failed (once ``min_calls`` were made); it stays open ``open_s``
    seconds, then lets ``half_open_probes`` calls through."""

    consecutive_failures: int = Field(default=5, ge=1)
    error_rate: float = Field(default=0.5, gt=0, le=1)
    window: int = Field(default=20, ge=1)
    min_calls: int = Field(default=10, ge=1)
    open_s: float = Field(default=5.0, gt=0)
    half_open_probes: int = Field(default=1, ge=1)

    @model_validator(mode="after")
    def _min_calls_fit(self) -> BreakerSettings:
        if self.min_calls > self.window:
            raise ConfigError("min_calls", f"between 1 and window={self.window}", self.min_calls)
        return self


class CircuitBreaker:
    """Closed: calls flow. Opens after ``consecutive_failures`` in a row, or when the error
    rate over the last ``window`` calls (at least ``min_calls``) reaches ``error_rate``.
    After ``open_s`` it lets ``half_open_probes`` calls through: a success closes it, a
    failure opens it again."""

    def __init__(
        self,
        settings: BreakerSettings | None = None,
        *,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.settings = settings or BreakerSettings()
        self._clock = clock
        self._state: BreakerState = "closed"
        self._consecutive = 0
        self._outcomes: deque[bool] = deque(maxlen=self.settings.window)
        self._opened_at = 0.0
        self._probes = 0

    @property
    def state(self) -> BreakerState:
        if self._state == "open" and self._clock() - self._opened_at >= self.settings.open_s:
            self._state = "half_open"
            self._probes = 0
        return self._state

    @property
    def is_open(self) -> bool:
        """True while calls are refused (open and not yet due for a probe)."""
        return self.state == "open"

    def allow(self) -> bool:
        """Whether a call may go through now; in half-open state this takes a probe slot."""
        state = self.state
        if state == "closed":
            return True
        if state == "half_open" and self._probes < self.settings.half_open_probes:
            self._probes += 1
            return True
        return False

    def record_success(self) -> None:
        self._consecutive = 0
        self._outcomes.append(True)
        if self._state == "half_open":
            self._state = "closed"
            self._outcomes.clear()

    @property
    def reopens_at_s(self) -> float | None:
        """When an open breaker lets its next probe through (on its clock); None unless
        open. It stays open at least until then (a failure meanwhile only delays it)."""
        if self._state != "open":
            return None
        return self._opened_at + self.settings.open_s

    def record_failure(self) -> bool:
        """Count a failed call; True when this failure opened the breaker (again)."""
        self._consecutive += 1
        self._outcomes.append(False)
        if self._state == "half_open":
            self._open()
            return True
        failures = self._outcomes.count(False)
        rate_tripped = (
            len(self._outcomes) >= self.settings.min_calls
            and failures / len(self._outcomes) >= self.settings.error_rate
        )
        if self._consecutive >= self.settings.consecutive_failures or rate_tripped:
            self._open()
            return True
        return False

    def _open(self) -> None:
        self._state = "open"
        self._opened_at = self._clock()
        self._probes = 0


class LatencyWindow:
    """The last ``size`` observed latencies of a tier and their percentiles (ms)."""

    def __init__(self, size: int = 256) -> None:
        if size < 1:
            raise ConfigError("size", ">= 1", size)
        self.size = size
        self._samples: deque[float] = deque(maxlen=size)
        self._cached: float | None = None
        self._since_cached = 0

    def add(self, latency_ms: float) -> None:
        self._samples.append(latency_ms)
        self._since_cached += 1
        if self._since_cached >= _REFRESH_EVERY:  # re-sort now and then, not on every call
            self._cached = None

    def __len__(self) -> int:
        return len(self._samples)

    def percentile(self, q: float) -> float | None:
        """The ``q``-th percentile (0..100) by nearest rank, or None with no samples."""
        if not self._samples:
            return None
        ordered = sorted(self._samples)
        rank = math.ceil(q / 100.0 * len(ordered))
        return ordered[min(len(ordered), max(rank, 1)) - 1]

    @property
    def p99_ms(self) -> float | None:
        """The p99, refreshed every few samples (exact while there are few)."""
        if self._cached is None or len(self._samples) < _REFRESH_EVERY:
            self._cached = self.percentile(99)
            self._since_cached = 0
        return self._cached
