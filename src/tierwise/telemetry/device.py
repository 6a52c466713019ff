"""Device telemetry intake: the reports devices (or edge nodes on their behalf) send to the
cloud, validated, filtered by the workload's privacy and aggregated into Prometheus series.

A report covers one workload on one device class over ``window_s`` seconds::

    {"device_class": "pi5", "workload": "digits", "window_s": 60, "report_id": "a1b2...",
     "counts": {"answered": 120, "escalated": 7},
     "latency_ms": {"bounds": [5, 10, 50], "counts": [80, 30, 15, 2], "sum_ms": 1234.5},
     "drift": {"confidence/psi": 0.04, "input_mean/ks": 0.1},
     "samples": [{"image": [[0.0, 1.0]]}]}

``latency_ms.counts`` has one count per bound (``le``, not cumulative) and one more for
what was over the last bound; ``sum_ms`` is optional (estimated from the bucket middles
when absent). Everything is checked strictly (:class:`DeviceReport`): no unknown fields,
non-negative integer counts, finite numbers, bounded sizes, names as the spec writes them.
Label values come from fixed sets, so no token can mint series: outcomes are the router's
(:data:`DEVICE_OUTCOMES`), drift keys those a drift monitor gives (:data:`DRIFT_KEYS`),
device classes those the settings list (else the first ``max_device_classes`` seen), and
``max_series`` bounds them all. ``report_id`` (optional) names one window of one device:
one sent again under it (its 202 lost) within ``dedupe_window_s`` gets 202, counted once.

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
- ``tierwise_device_drift_score{workload,device_class,signal,test}``: the highest among
  the reports received less than ``drift_stale_windows`` of their windows ago (a stale
  one keeps no alert firing, and one device does not hide another's drift);
- ``tierwise_device_reports_total{device_class}``.

Raw samples are kept as the JSON bytes they came in: ``samples_kept`` and
``samples_max_bytes`` at most.
"""

from __future__ import annotations

import time
from bisect import bisect_left
from collections import OrderedDict, deque
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass

import orjson
from prometheus_client.core import (
    CounterMetricFamily,
    GaugeMetricFamily,
    HistogramMetricFamily,
    Metric,
)
from prometheus_client.registry import Collector
from pydantic import Field, ValidationError

from tierwise.errors import HttpError, ProtocolError
from tierwise.settings_errors import SettingsModel
from tierwise.telemetry.device_schema import (
    DEVICE_OUTCOMES,
    DEVICE_TELEMETRY_PATH,
    DRIFT_KEYS,
    MAX_BOUNDS,
    MAX_WINDOW_S,
    NAME,
    DeviceReport,
    LatencyHistogram,
    report_problem,
)
from tierwise.telemetry.families import LATENCY_BUCKETS_S, Buckets

__all__ = [
    "DEVICE_OUTCOMES",
    "DEVICE_TELEMETRY_PATH",
    "DRIFT_KEYS",
    "MAX_BOUNDS",
    "MAX_WINDOW_S",
    "DeviceReport",
    "DeviceTelemetry",
    "DeviceTelemetrySettings",
    "LatencyHistogram",
    "WorkloadRules",
]


@dataclass(frozen=True, slots=True)
class WorkloadRules:
    """What a workload's devices may send: its privacy class and ``allow_raw_samples``."""

    privacy: str
    allow_raw_samples: bool = False


class DeviceTelemetrySettings(SettingsModel):
    """Bounds of the intake: a report's body size; the device classes it takes
    (``device_classes``; when not listed, the first ``max_device_classes`` seen); how many
    series it may hold in all; the raw samples it keeps (count and bytes); how long a
    drift score counts (``drift_stale_windows`` of its report's window); and how long a
    ``report_id`` is remembered to drop a report sent twice."""

    max_body_bytes: int = Field(default=256 * 1024, ge=1024, le=16 * 1024 * 1024)
    device_classes: list[NAME] | None = Field(default=None, min_length=1, max_length=10_000)
    max_device_classes: int = Field(default=64, ge=1, le=10_000)
    max_series: int = Field(default=20_000, ge=1, le=1_000_000)
    samples_kept: int = Field(default=100, ge=0, le=10_000)
    samples_max_bytes: int = Field(default=4 * 1024 * 1024, ge=0, le=256 * 1024 * 1024)
    drift_stale_windows: float = Field(default=3.0, gt=0, le=1000)
    dedupe_window_s: float = Field(default=3600.0, ge=0, le=7 * 86_400)
    dedupe_max_ids: int = Field(default=16_384, ge=0, le=1_000_000)


class _Series:
    """The aggregates of one (workload, device class). ``drift`` holds, per (signal,
    test), the recent reports' ``(stale after, score)``, oldest first."""

    __slots__ = ("drift", "duration_s", "requests")

    def __init__(self, bounds_s: tuple[float, ...]) -> None:
        self.requests: dict[str, int] = {}
        self.duration_s = Buckets(bounds_s)
        self.drift: dict[tuple[str, str], deque[tuple[float, float]]] = {}

    def new_series(self, report: DeviceReport) -> int:
        """How many series (label sets) accepting ``report`` would add."""
        added = sum(1 for outcome in report.counts if outcome not in self.requests)
        added += report.latency_ms is not None and not any(self.duration_s.counts)
        return added + sum(1 for k in report.drift if tuple(k.split("/")) not in self.drift)


#: the recent reports a drift score keeps per (workload, device class, signal, test)
_DRIFT_KEPT = 256


class DeviceTelemetry(Collector):
    """Takes device reports for the ``workloads`` a plan knows and exports the device
    series. :meth:`parse` then :meth:`accept`: a report either counts whole or not at all.
    Meant for one thread (the gateway's event loop); ``clock`` dates reports."""

    def __init__(
        self,
        workloads: Mapping[str, WorkloadRules],
        settings: DeviceTelemetrySettings | None = None,
        *,
        bounds_s: tuple[float, ...] = LATENCY_BUCKETS_S,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.workloads = dict(workloads)
        self.settings = settings or DeviceTelemetrySettings()
        self._bounds_s = tuple(bounds_s)
        self._clock = clock
        self._series: dict[tuple[str, str], _Series] = {}
        #: label sets the device families hold now (bounded by ``max_series``)
        self.series_count = 0
        self.reports: dict[str, int] = {}
        #: raw samples of workloads that allow them, as JSON bytes, newest last
        self.samples: deque[tuple[str, str, bytes]] = deque()
        self._samples_bytes = 0
        self._seen_ids: OrderedDict[str, float] = OrderedDict()
        listed = self.settings.device_classes
        self._classes = frozenset(listed) if listed is not None else None

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
            raise HttpError(422, report_problem(exc)) from exc

    def check(self, report: DeviceReport) -> None:
        """HttpError 422 for a report its workload's rules refuse, from a device class
        not taken, or one that would pass the bound on series."""
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
        self._check_class(report.device_class)
        series = self._series.get((report.workload, report.device_class))
        added = (series or _Series(())).new_series(report)
        if self.series_count + added > self.settings.max_series:
            raise HttpError(
                422,
                f"the report would add {added} device series past the bound of"
                f" {self.settings.max_series} (max_series)",
            )

    def _check_class(self, device_class: str) -> None:
        classes, bound = self._classes, self.settings.max_device_classes
        if classes is not None and device_class not in classes:
            allowed = ", ".join(sorted(classes))
            raise HttpError(
                422, f"device class {device_class!r} is not one of the settings' {allowed}"
            )
        if classes is None and device_class not in self.reports and len(self.reports) >= bound:
            raise HttpError(
                422, f"device class {device_class!r} would pass the bound of {bound} device classes"
            )

    def accept(self, report: DeviceReport) -> bool:
        """Check a report (:meth:`check`) and add it to the series; False (nothing
        counted) for a ``report_id`` already taken within ``dedupe_window_s``."""
        now = self._clock()
        if self._seen(report.report_id, now):
            return False
        self.check(report)
        key = (report.workload, report.device_class)
        series = self._series.get(key)
        if series is None:
            series = self._series[key] = _Series(self._bounds_s)
        self.series_count += series.new_series(report)
        for outcome, count in report.counts.items():
            series.requests[outcome] = series.requests.get(outcome, 0) + count
        if report.latency_ms is not None:
            self._add_latency(series.duration_s, report.latency_ms)
        stale_at = now + self.settings.drift_stale_windows * report.window_s
        for name, score in report.drift.items():
            signal, _, test = name.partition("/")
            recent = series.drift.setdefault((signal, test), deque(maxlen=_DRIFT_KEPT))
            recent.append((stale_at, score))
        for sample in report.samples or ():
            self._keep_sample(report.workload, report.device_class, orjson.dumps(sample))
        self.reports[report.device_class] = self.reports.get(report.device_class, 0) + 1
        if report.report_id is not None and self.settings.dedupe_max_ids:
            self._seen_ids[report.report_id] = now
            if len(self._seen_ids) > self.settings.dedupe_max_ids:
                self._seen_ids.popitem(last=False)
        return True

    def _seen(self, report_id: str | None, now: float) -> bool:
        """Whether ``report_id`` was taken within the dedupe window (older ids forgotten)."""
        seen = self._seen_ids
        cutoff = now - self.settings.dedupe_window_s
        while seen and next(iter(seen.values())) < cutoff:
            seen.popitem(last=False)
        return report_id is not None and report_id in seen

    def _keep_sample(self, workload: str, device_class: str, raw: bytes) -> None:
        """Keep one sample's bytes; the oldest go past ``samples_kept`` or the byte bound."""
        settings = self.settings
        if len(raw) > settings.samples_max_bytes or not settings.samples_kept:
            return
        self.samples.append((workload, device_class, raw))
        self._samples_bytes += len(raw)
        while (
            len(self.samples) > settings.samples_kept
            or self._samples_bytes > settings.samples_max_bytes
        ):
            self._samples_bytes -= len(self.samples.popleft()[2])

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

    def drift_scores(self, workload: str, device_class: str) -> dict[tuple[str, str], float]:
        """``(signal, test) -> score``: the highest among the fresh reports (stale ones
        are dropped here)."""
        series = self._series.get((workload, device_class))
        if series is None:
            return {}
        now = self._clock()
        scores = {}
        for key, recent in series.drift.items():
            while recent and recent[0][0] <= now:
                recent.popleft()
            if recent:
                scores[key] = max(score for _, score in recent)
        return scores

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
            "The highest drift score among the fresh device reports, by signal and test.",
            labels=["workload", "device_class", "signal", "test"],
        )
        for (workload, device_class), s in series:
            for outcome, count in sorted(s.requests.items()):
                requests.add_metric([workload, device_class, outcome], float(count))
            if any(s.duration_s.counts):
                duration.add_metric(
                    [workload, device_class], s.duration_s.cumulative(), s.duration_s.total
                )
            for (signal, test), score in sorted(self.drift_scores(workload, device_class).items()):
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
