"""Latency measurement of a callable: warm-up, then timed runs summarised as percentiles."""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass

import numpy as np

from tierwise.errors import ConfigError

__all__ = ["LatencyStats", "latency_stats", "measure_latency"]


@dataclass(frozen=True, slots=True)
class LatencyStats:
    """Percentiles of one call's wall time, in milliseconds, over ``runs`` calls."""

    runs: int
    mean_ms: float
    p50_ms: float
    p95_ms: float
    p99_ms: float

    def to_dict(self) -> dict[str, float | int]:
        return asdict(self)


def measure_latency(
    call: Callable[[], object],
    *,
    runs: int = 200,
    warmup_runs: int = 10,
    max_seconds: float = 10.0,
    clock: Callable[[], float] = time.perf_counter,
) -> LatencyStats:
    """Time ``call`` after ``warmup_runs`` untimed calls; stops early after ``max_seconds``."""
    if runs < 1:
        raise ConfigError("runs", ">= 1", runs)
    if warmup_runs < 0:
        raise ConfigError("warmup_runs", ">= 0", warmup_runs)
    if max_seconds <= 0:
        raise ConfigError("max_seconds", "> 0", max_seconds)
    for _ in range(warmup_runs):
        call()
    samples: list[float] = []
    deadline = clock() + max_seconds
    while len(samples) < runs:
        start = clock()
        call()
        end = clock()
        samples.append(end - start)
        if end > deadline:
            break
    return latency_stats(samples)


def latency_stats(samples_s: Sequence[float]) -> LatencyStats:
    """Percentiles of call durations given in seconds (at least one)."""
    if len(samples_s) == 0:
        raise ConfigError("samples_s", "at least one duration", 0)
    ms = np.asarray(samples_s, dtype=np.float64) * 1000.0
    p50, p95, p99 = np.percentile(ms, [50, 95, 99])
    return LatencyStats(len(ms), float(ms.mean()), float(p50), float(p95), float(p99))
