"""Plain metric children that Prometheus families are built from at scrape time.

prometheus_client's own metric objects take a lock on every update; a server or router
answering thousands of requests a second keeps these instead (a float addition, a bisect
and an increment) and turns them into ``CounterMetricFamily`` / ``HistogramMetricFamily``
only when ``/metrics`` is scraped. They are meant to be updated from one thread (the
event loop's).
"""

from __future__ import annotations

from bisect import bisect_left

__all__ = ["BATCH_BUCKETS", "LATENCY_BUCKETS_S", "Buckets", "Tally"]

#: upper bounds (seconds) for request, queue and compute durations
LATENCY_BUCKETS_S = (
    0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0,
)  # fmt: skip
#: upper bounds for rows per batch
BATCH_BUCKETS = (1, 2, 4, 8, 16, 32, 64, 128, 256, 512, 1024)


class Tally:
    """A counter child: ``inc`` is a plain addition."""

    __slots__ = ("value",)

    def __init__(self) -> None:
        self.value = 0.0

    def inc(self, amount: float = 1.0) -> None:
        self.value += amount


class Buckets:
    """A histogram child with fixed upper bounds (Prometheus ``le``, inclusive)."""

    __slots__ = ("bounds", "counts", "total")

    def __init__(self, bounds: tuple[float, ...]) -> None:
        self.bounds = bounds
        self.counts = [0] * (len(bounds) + 1)
        self.total = 0.0

    def observe(self, value: float) -> None:
        self.counts[bisect_left(self.bounds, value)] += 1
        self.total += value

    def cumulative(self) -> list[tuple[str, float]]:
        """``(le, cumulative count)`` pairs, ending with ``+Inf``, as a family wants them."""
        out: list[tuple[str, float]] = []
        running = 0
        for bound, count in zip((*self.bounds, float("inf")), self.counts, strict=True):
            running += count
            out.append(("+Inf" if bound == float("inf") else repr(float(bound)), running))
        return out
