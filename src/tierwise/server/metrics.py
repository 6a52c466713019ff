"""Prometheus metrics of one server (``tierwise_`` prefix, seconds, one registry per app).

The per-request series (requests by outcome; request, queue and compute durations; batch
sizes) are plain counters kept on the event loop's thread and turned into Prometheus
families only when ``/metrics`` is scraped: prometheus_client's own objects take a lock
on every update, which a server answering ten thousand requests a second notices.

Energy (:mod:`tierwise.telemetry.energy`) and drift follow the same rule: each batch adds
to plain totals, and ``tierwise_busy_seconds_total{model,tier}``,
``tierwise_energy_joules_total{model,tier,source}``, ``tierwise_power_watts{tier,source}``
and the ``tierwise_drift_*{model,version}`` series are built when scraped. Without a RAPL
counter and without a power model there is no energy or power series, only busy time.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping
from typing import Protocol

from prometheus_client import CollectorRegistry, Counter, Gauge
from prometheus_client.core import (
    CounterMetricFamily,
    GaugeMetricFamily,
    HistogramMetricFamily,
    Metric,
)
from prometheus_client.registry import Collector

from tierwise.telemetry.energy import ENERGY_SOURCES, EnergyMeter, ModelEnergy
from tierwise.telemetry.families import BATCH_BUCKETS, LATENCY_BUCKETS_S, Buckets, Tally

__all__ = ["LATENCY_BUCKETS_S", "OUTCOMES", "DriftView", "ServerMetrics", "VersionMetrics"]

#: request outcomes, the values of the ``outcome`` label
OUTCOMES = ("success", "client_error", "rejected", "deadline", "error")


class DriftView(Protocol):
    """What the drift gauges read from a model version's drift monitor."""

    @property
    def window_rows(self) -> int: ...

    @property
    def errors(self) -> int:
        """Batches that failed on their way to the monitor."""

    def scores(self) -> Mapping[tuple[str, str], float]: ...

    def level(self) -> int: ...


class VersionMetrics:
    """The hot-path series of one model version; ``energy`` is its model's busy time and
    energy totals, when the server accounts them."""

    __slots__ = ("batch_size", "compute_s", "energy", "queue_s", "request_s", "requests")

    def __init__(self, energy: ModelEnergy | None = None) -> None:
        self.requests = {outcome: Tally() for outcome in OUTCOMES}
        self.request_s = Buckets(LATENCY_BUCKETS_S)
        self.queue_s = Buckets(LATENCY_BUCKETS_S)
        self.compute_s = Buckets(LATENCY_BUCKETS_S)
        self.batch_size = Buckets(BATCH_BUCKETS)
        self.energy = energy

    def observe_batch(self, rows: int, waits_s: list[float], compute_s: float) -> None:
        self.batch_size.observe(rows)
        self.compute_s.observe(compute_s)
        for wait in waits_s:
            self.queue_s.observe(wait)
        if self.energy is not None:
            self.energy.account(compute_s)


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


class _EnergyCollector(Collector):
    def __init__(self, meter: EnergyMeter, tier: str) -> None:
        self._meter = meter
        self._tier = tier

    def collect(self) -> Iterator[Metric]:
        meter, tier = self._meter, self._tier
        meter.settle()
        models = sorted(meter.models.items())
        busy = CounterMetricFamily(
            "tierwise_busy_seconds", "Time the model's batches ran.", labels=["model", "tier"]
        )
        for model, entry in models:
            busy.add_metric([model, tier], entry.busy_s)
        yield busy
        current = meter.source
        if current is None and not any(e.measured_j or e.estimated_j for _, e in models):
            return  # no counter, no power model: busy time only
        joules = CounterMetricFamily(
            "tierwise_energy_joules", "Energy the model's batches used, measured or estimated.",
            labels=["model", "tier", "source"],
        )  # fmt: skip
        for model, entry in models:
            for source in ENERGY_SOURCES:
                value = entry.joules(source)
                if source == current or value:
                    joules.add_metric([model, tier, source], value)
        yield joules
        watts = meter.power_watts()
        if current is not None and watts is not None:
            power = GaugeMetricFamily(
                "tierwise_power_watts", "The node's power draw over the last window.",
                labels=["tier", "source"],
            )  # fmt: skip
            power.add_metric([tier, current], watts)
            yield power


class _DriftCollector(Collector):
    def __init__(self, monitors: dict[tuple[str, str], DriftView]) -> None:
        self._monitors = monitors

    def collect(self) -> Iterator[Metric]:
        if not self._monitors:
            return
        labels = ["model", "version"]
        score = GaugeMetricFamily(
            "tierwise_drift_score", "Drift of a signal from the model's reference, by test.",
            labels=[*labels, "signal", "test"],
        )  # fmt: skip
        level = GaugeMetricFamily(
            "tierwise_drift_level", "Drift level: 0 ok, 1 warn, 2 alert.", labels=labels
        )
        rows = GaugeMetricFamily(
            "tierwise_drift_window_rows", "Rows in the drift monitor's window.", labels=labels
        )
        errors = CounterMetricFamily(
            "tierwise_drift_errors", "Batches the drift monitor failed on (dropped).",
            labels=labels,
        )  # fmt: skip
        for (model, version), monitor in sorted(self._monitors.items()):
            for (signal, test), value in sorted(monitor.scores().items()):
                score.add_metric([model, version, signal, test], value)
            level.add_metric([model, version], monitor.level())
            rows.add_metric([model, version], monitor.window_rows)
            errors.add_metric([model, version], monitor.errors)
        yield score
        yield level
        yield rows
        yield errors


class ServerMetrics:
    """Every metric the server exports, registered in its own registry.

    ``energy`` is the node's :class:`EnergyMeter` (None: no busy, energy or power
    series); ``tier`` labels those series.
    """

    def __init__(self, *, tier: str = "local", energy: EnergyMeter | None = None) -> None:
        self.registry = CollectorRegistry(auto_describe=True)
        self.tier = tier
        self.energy = energy
        self._versions: dict[tuple[str, str], VersionMetrics] = {}
        #: drift monitors of the serving versions that have a reference
        self.drift: dict[tuple[str, str], DriftView] = {}
        self.registry.register(_HotCollector(self._versions))
        if energy is not None:
            self.registry.register(_EnergyCollector(energy, tier))
        self.registry.register(_DriftCollector(self.drift))
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
            handle = self.energy.model(model) if self.energy is not None else None
            series = self._versions[key] = VersionMetrics(handle)
        return series
