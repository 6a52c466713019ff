"""Device telemetry intake: the reports devices (or edge nodes on their behalf) send to the
cloud, validated, filtered by the workload's privacy and aggregated into Prometheus series.

A report covers one workload on one device class over ``window_s`` seconds::

    {"device_class": "pi5", "workload": "digits", "window_s": 60,
     "counts": {"answered": 120, "escalated": 7},
     "latency_ms": {"bounds": [5, 10, 50], "counts": [80, 30, 15, 2], "sum_ms": 1234.5},
     "drift": {"confidence/psi": 0.04, "mean/ks": 0.1},
     "samples": [{"image": [[0.0, 1.0]]}]}

``latency_ms.counts`` has one count per bound (``le``, not cumulative) and one more for
what was over the last bound; ``sum_ms`` is optional (estimated from the bucket middles
when absent). Everything is checked strictly (:class:`DeviceReport`): no unknown fields,
non-negative integer counts, finite numbers, bounded sizes, names as the spec writes them.

Privacy (the workload's class in the plan, :class:`WorkloadRules`): every workload may
send counts, by outcome and by latency bucket (aggregates); ``sensitive`` workloads send
nothing else (no drift statistics, which are computed from the inputs, and no samples);
raw input ``samples`` only come from a workload with ``allow_raw_samples``. A report that
breaks a rule is refused whole (422) and nothing of it is counted.

Exported by :class:`DeviceTelemetry` (a Prometheus collector):

- ``tierwise_device_requests_total{workload,device_class,outcome}``;
- ``tierwise_device_request_duration_seconds{workload,device_class}``: each device bucket
  is counted in the smallest of the gateway's buckets that holds its upper bound, so the
  percentiles read from it are never better than the device's own;
- ``tierwise_device_drift_score{workload,device_class,signal,test}``: the last reported;
- ``tierwise_device_reports_total{device_class}``.

The number of device classes is bounded (``max_device_classes``): labels stay few.
"""

from __future__ import annotations

import math
from bisect import bisect_left
from collections import deque
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from itertools import pairwise
from typing import Annotated, Any

import orjson
from prometheus_client.core import (
    CounterMetricFamily,
    GaugeMetricFamily,
    HistogramMetricFamily,
    Metric,
)
from prometheus_client.registry import Collector
from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    StringConstraints,
    ValidationError,
    model_validator,
)

from tierwise.errors import HttpError, ProtocolError
from tierwise.settings_errors import SettingsModel
from tierwise.spec.base import NAME_PATTERN
from tierwise.telemetry.families import LATENCY_BUCKETS_S, Buckets

__all__ = [
    "DEVICE_TELEMETRY_PATH",
    "MAX_BOUNDS",
    "DeviceReport",
    "DeviceTelemetry",
    "DeviceTelemetrySettings",
    "LatencyHistogram",
    "WorkloadRules",
]

#: where the gateway takes reports
DEVICE_TELEMETRY_PATH = "/v2/telemetry/device"
#: most latency bounds a report may carry
MAX_BOUNDS = 64
_MAX_COUNT = 10**12
_NAME = Annotated[str, StringConstraints(pattern=NAME_PATTERN, max_length=64)]
_PART = NAME_PATTERN.strip("^$")
_DRIFT_KEY = Annotated[str, StringConstraints(pattern=f"^{_PART}/{_PART}$", max_length=129)]
_COUNT = Annotated[int, Field(ge=0, le=_MAX_COUNT)]
_FINITE = Annotated[float, Field(ge=0, le=1e9, allow_inf_nan=False)]


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True, frozen=True)


class LatencyHistogram(_Strict):
    """Request latency on the device: ``counts[i]`` requests took at most ``bounds[i]``
    ms (and more than the bound before); the last count is over the last bound."""

    bounds: list[Annotated[float, Field(gt=0, le=1e7, allow_inf_nan=False)]] = Field(
        min_length=1, max_length=MAX_BOUNDS
    )
    counts: list[_COUNT] = Field(min_length=2, max_length=MAX_BOUNDS + 1)
    sum_ms: _FINITE | None = None

    @model_validator(mode="after")
    def _shape(self) -> LatencyHistogram:
        if any(b <= a for a, b in pairwise(self.bounds)):
            raise ValueError("latency_ms.bounds must be strictly increasing")
        if len(self.counts) != len(self.bounds) + 1:
            raise ValueError(
                f"latency_ms.counts must hold one count per bound and one over the last"
                f" ({len(self.bounds) + 1}), not {len(self.counts)}"
            )
        return self


class DeviceReport(_Strict):
    """One device report (module docstring)."""

    device_class: _NAME
    workload: _NAME
    window_s: Annotated[float, Field(gt=0, le=7 * 86_400, allow_inf_nan=False)]
    counts: dict[_NAME, _COUNT] = Field(max_length=16)
    latency_ms: LatencyHistogram | None = None
    drift: dict[_DRIFT_KEY, _FINITE] = Field(default_factory=dict, max_length=32)
    samples: list[dict[_NAME, list[Any]]] | None = Field(default=None, max_length=16)


@dataclass(frozen=True, slots=True)
class WorkloadRules:
    """What a workload's devices may send: its privacy class and ``allow_raw_samples``."""

    privacy: str
    allow_raw_samples: bool = False


class DeviceTelemetrySettings(SettingsModel):
    """Bounds of the intake: a report's body size, and how many device classes (label
    values) the series may hold."""

    max_body_bytes: int = Field(default=256 * 1024, ge=1024, le=16 * 1024 * 1024)
    max_device_classes: int = Field(default=64, ge=1, le=10_000)
    samples_kept: int = Field(default=100, ge=0, le=10_000)


def _problem(exc: ValidationError) -> str:
    """Each error of a refused report: where, and what was expected."""
    parts = []
    for error in exc.errors(include_url=False):
        where = ".".join(str(p) for p in error["loc"]) or "report"
        parts.append(f"{where}: {error['msg']}")
    return "invalid device report: " + "; ".join(parts[:5])


class _Series:
    """The aggregates of one (workload, device class)."""

    __slots__ = ("drift", "duration_s", "requests")

    def __init__(self, bounds_s: tuple[float, ...]) -> None:
        self.requests: dict[str, int] = {}
        self.duration_s = Buckets(bounds_s)
        self.drift: dict[tuple[str, str], float] = {}


class DeviceTelemetry(Collector):
    """Takes device reports for the ``workloads`` a plan knows and exports the device
    series. :meth:`parse` then :meth:`accept`: a report either counts whole or not at all.
    Meant for one thread (the gateway's event loop)."""

    def __init__(
        self,
        workloads: Mapping[str, WorkloadRules],
        settings: DeviceTelemetrySettings | None = None,
        *,
        bounds_s: tuple[float, ...] = LATENCY_BUCKETS_S,
    ) -> None:
        self.workloads = dict(workloads)
        self.settings = settings or DeviceTelemetrySettings()
        self._bounds_s = tuple(bounds_s)
        self._series: dict[tuple[str, str], _Series] = {}
        self.reports: dict[str, int] = {}
        #: raw samples of workloads that allow them, newest last
        self.samples: deque[tuple[str, str, dict[str, list[Any]]]] = deque(
            maxlen=self.settings.samples_kept
        )

    def parse(self, body: bytes) -> DeviceReport:
        """A report from a request body: ProtocolError (400) when it is not a JSON
        object, HttpError 422 naming each field that is wrong."""
        try:
            doc = orjson.loads(body)
        except orjson.JSONDecodeError as exc:
            raise ProtocolError(f"device report is not valid JSON: {exc}") from exc
        if not isinstance(doc, dict):
            raise ProtocolError("device report must be a JSON object")
        try:
            return DeviceReport.model_validate(doc)
        except ValidationError as exc:
            raise HttpError(422, _problem(exc)) from exc

    def check(self, report: DeviceReport) -> None:
        """HttpError 422 for a report its workload's rules refuse, or one that would add
        a device class past the bound."""
        rules = self.workloads.get(report.workload)
        if rules is None:
            known = ", ".join(sorted(self.workloads))
            raise HttpError(422, f"unknown workload {report.workload!r}; the plan has {known}")
        if rules.privacy == "sensitive" and (report.drift or report.samples is not None):
            raise HttpError(
                422,
                f"workload {report.workload!r} is sensitive: its devices send counts only"
                " (outcomes and latency buckets), no drift statistics and no samples",
            )
        if report.samples is not None and not rules.allow_raw_samples:
            raise HttpError(
                422,
                f"workload {report.workload!r} does not allow raw samples"
                " (allow_raw_samples: false in the plan)",
            )
        if (
            report.device_class not in self.reports
            and len(self.reports) >= self.settings.max_device_classes
        ):
            raise HttpError(
                422,
                f"device class {report.device_class!r} would pass the bound of"
                f" {self.settings.max_device_classes} device classes",
            )

    def accept(self, report: DeviceReport) -> None:
        """Check a report (:meth:`check`) and add it to the series."""
        self.check(report)
        key = (report.workload, report.device_class)
        series = self._series.get(key)
        if series is None:
            series = self._series[key] = _Series(self._bounds_s)
        for outcome, count in report.counts.items():
            series.requests[outcome] = series.requests.get(outcome, 0) + count
        if report.latency_ms is not None:
            self._add_latency(series.duration_s, report.latency_ms)
        for name, score in report.drift.items():
            signal, _, test = name.partition("/")
            series.drift[signal, test] = score
        for sample in report.samples or ():
            self.samples.append((report.workload, report.device_class, sample))
        self.reports[report.device_class] = self.reports.get(report.device_class, 0) + 1

    def _add_latency(self, buckets: Buckets, histogram: LatencyHistogram) -> None:
        bounds = histogram.bounds
        estimate = 0.0
        for i, count in enumerate(histogram.counts):
            if not count:
                continue
            if i < len(bounds):
                upper_s = bounds[i] / 1000.0
                buckets.counts[bisect_left(buckets.bounds, upper_s)] += count
                lower_ms = bounds[i - 1] if i else 0.0
                estimate += count * (lower_ms + bounds[i]) / 2.0
            else:
                buckets.counts[len(buckets.bounds)] += count
                estimate += count * bounds[-1]
        sum_ms = histogram.sum_ms if histogram.sum_ms is not None else estimate
        buckets.total += sum_ms / 1000.0

    def collect(self) -> Iterator[Metric]:
        series = sorted(self._series.items())
        requests = CounterMetricFamily(
            "tierwise_device_requests",
            "Requests devices reported, by workload, device class and outcome.",
            labels=["workload", "device_class", "outcome"],
        )
        duration = HistogramMetricFamily(
            "tierwise_device_request_duration_seconds",
            "Request latency devices reported (each device bucket at its upper bound).",
            labels=["workload", "device_class"],
        )
        drift = GaugeMetricFamily(
            "tierwise_device_drift_score",
            "The last drift score devices reported, by signal and test.",
            labels=["workload", "device_class", "signal", "test"],
        )
        for (workload, device_class), s in series:
            for outcome, count in sorted(s.requests.items()):
                requests.add_metric([workload, device_class, outcome], float(count))
            if any(s.duration_s.counts):
                duration.add_metric(
                    [workload, device_class], s.duration_s.cumulative(), s.duration_s.total
                )
            for (signal, test), score in sorted(s.drift.items()):
                if math.isfinite(score):
                    drift.add_metric([workload, device_class, signal, test], score)
        reports = CounterMetricFamily(
            "tierwise_device_reports", "Device reports accepted, by device class.",
            labels=["device_class"],
        )  # fmt: skip
        for device_class, count in sorted(self.reports.items()):
            reports.add_metric([device_class], float(count))
        yield requests
        yield duration
        yield drift
        yield reports
