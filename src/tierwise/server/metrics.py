"""Prometheus metrics of one server (``tierwise_`` prefix, seconds, one registry per app)."""

from __future__ import annotations

from dataclasses import dataclass

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

__all__ = ["ServerMetrics", "VersionMetrics"]

_LATENCY_BUCKETS_S = (
    0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0,
)  # fmt: skip
_BATCH_BUCKETS = (1, 2, 4, 8, 16, 32, 64, 128, 256, 512, 1024)

#: request outcomes, the values of the ``outcome`` label
OUTCOMES = ("success", "client_error", "rejected", "deadline", "error")


@dataclass(slots=True)
class VersionMetrics:
    """Label-bound children for one model version, resolved once (labels cost on the hot path)."""

    requests: dict[str, Counter]
    request_s: Histogram
    queue_s: Histogram
    compute_s: Histogram
    batch_size: Histogram

    def observe_batch(self, rows: int, waits_s: list[float], compute_s: float) -> None:
        self.batch_size.observe(rows)
        self.compute_s.observe(compute_s)
        for wait in waits_s:
            self.queue_s.observe(wait)


class ServerMetrics:
    """Every metric the server exports, registered in its own registry."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry(auto_describe=True)
        r = self.registry
        self.requests = Counter(
            "tierwise_requests", "Inference requests by outcome.",
            ["model", "version", "outcome"], registry=r,
        )  # fmt: skip
        self.request_duration = Histogram(
            "tierwise_request_duration_seconds", "Time from request received to response ready.",
            ["model", "version"], buckets=_LATENCY_BUCKETS_S, registry=r,
        )  # fmt: skip
        self.queue_duration = Histogram(
            "tierwise_queue_duration_seconds", "Time a request waited for its batch to start.",
            ["model", "version"], buckets=_LATENCY_BUCKETS_S, registry=r,
        )  # fmt: skip
        self.compute_duration = Histogram(
            "tierwise_compute_duration_seconds", "Time a batch spent in the model.",
            ["model", "version"], buckets=_LATENCY_BUCKETS_S, registry=r,
        )  # fmt: skip
        self.batch_size = Histogram(
            "tierwise_batch_size", "Rows per batch run by the model.",
            ["model", "version"], buckets=_BATCH_BUCKETS, registry=r,
        )  # fmt: skip
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
        return VersionMetrics(
            requests={o: self.requests.labels(model, version, o) for o in OUTCOMES},
            request_s=self.request_duration.labels(model, version),
            queue_s=self.queue_duration.labels(model, version),
            compute_s=self.compute_duration.labels(model, version),
            batch_size=self.batch_size.labels(model, version),
        )
