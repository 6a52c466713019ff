"""Prometheus metrics of one server (``tierwise_`` prefix, seconds, one registry per app).

The per-request series (requests by outcome; request, queue and compute durations; batch
sizes) are plain counters kept on the event loop's thread and turned into Prometheus
families only when ``/metrics`` is scraped: prometheus_client's own objects take a lock
on every update, which a server answering ten thousand requests a second notices.
"""

from __future__ import annotations

from bisect import bisect_left
from collections.abc import Callable, Iterator

from prometheus_client import CollectorRegistry, Counter, Gauge
from prometheus_client.core import CounterMetricFamily, HistogramMetricFamily, Metric
from prometheus_client.registry import Collector

__all__ = ["OUTCOMES", "ServerMetrics", "VersionMetrics"]

LATENCY_BUCKETS_S = (
    0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0,
)  # fmt: skip
BATCH_BUCKETS = (1, 2, 4, 8, 16, 32, 64, 128, 256, 512, 1024)

#: request outcomes, the values of the ``outcome`` label
OUTCOMES = ("success", "client_error", "rejected", "deadline", "error")


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
        out: list[tuple[str, float]] = []
        running = 0
        for bound, count in zip((*self.bounds, float("inf")), self.counts, strict=True):
            running += count
            out.append(("+Inf" if bound == float("inf") else repr(float(bound)), running))
        return out


class VersionMetrics:
    """The hot-path series of one model version."""

    __slots__ = ("batch_size", "compute_s", "queue_s", "request_s", "requests")

    def __init__(self) -> None:
        self.requests = {outcome: Tally() for outcome in OUTCOMES}
        self.request_s = Buckets(LATENCY_BUCKETS_S)
        self.queue_s = Buckets(LATENCY_BUCKETS_S)
        self.compute_s = Buckets(LATENCY_BUCKETS_S)
        self.batch_size = Buckets(BATCH_BUCKETS)

    def observe_batch(self, rows: int, waits_s: list[float], compute_s: float) -> None:
        self.batch_size.observe(rows)
        self.compute_s.observe(compute_s)
        for wait in waits_s:
            self.queue_s.observe(wait)


class _HotCollector(Collector):
    def __init__(self, versions: dict[tuple[str, str], VersionMetrics]) -> None:
        self._versions = versions

    def collect(self) -> Iterator[Metric]:
        labels = ["model", "version"]
        requests = CounterMetricFamily(
            "tierwise_requests", "Inference requests by outcome.", labels=[*labels, "outcome"]
        )
        histograms: dict[str, tuple[HistogramMetricFamily, Callable[[VersionMetrics], Buckets]]] = {
            "request": (
                HistogramMetricFamily(
                    "tierwise_request_duration_seconds",
                    "Time from request received to response ready.", labels=labels,
                ),
                lambda v: v.request_s,
            ),
            "queue": (
                HistogramMetricFamily(
                    "tierwise_queue_duration_seconds",
                    "Time a request waited for its batch to start.", labels=labels,
                ),
                lambda v: v.queue_s,
            ),
            "compute": (
                HistogramMetricFamily(
                    "tierwise_compute_duration_seconds", "Time a batch spent in the model.",
                    labels=labels,
                ),
                lambda v: v.compute_s,
            ),
            "batch": (
                HistogramMetricFamily(
                    "tierwise_batch_size", "Rows per batch run by the model.", labels=labels
                ),
                lambda v: v.batch_size,
            ),
        }  # fmt: skip
        for (model, version), series in sorted(self._versions.items()):
            for outcome, tally in series.requests.items():
                requests.add_metric([model, version, outcome], tally.value)
            for family, pick in histograms.values():
                buckets = pick(series)
                family.add_metric([model, version], buckets.cumulative(), buckets.total)
        yield requests
        for family, _ in histograms.values():
            yield family


class ServerMetrics:
    """Every metric the server exports, registered in its own registry."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry(auto_describe=True)
        self._versions: dict[tuple[str, str], VersionMetrics] = {}
        self.registry.register(_HotCollector(self._versions))
        r = self.registry
        self.queue_depth = Gauge(
            "tierwise_queue_depth", "Requests waiting in a model's queue.",
            ["model", "version"], registry=r,
        )  # fmt: skip
        self.in_flight = Gauge(
            "tierwise_inflight_requests", "Inference requests being handled.", registry=r
        )
        self.load_failures = Counter(
            "tierwise_model_load_failures", "Model versions that failed to load.",
            ["model"], registry=r,
        )  # fmt: skip
        self.model_ready = Gauge(
            "tierwise_model_ready", "1 when the model version is serving.",
            ["model", "version"], registry=r,
        )  # fmt: skip

    def for_version(self, model: str, version: str) -> VersionMetrics:
        """The series of one version; a reloaded version keeps counting where it was."""
        key = (model, version)
        series = self._versions.get(key)
        if series is None:
            series = self._versions[key] = VersionMetrics()
        return series
