"""The device intake's bounds, held by the collector itself: raw samples kept as bytes
under a byte bound, drift scores that go stale and take the highest of the fresh
reports, and report ids remembered for a while only."""

from __future__ import annotations

from typing import Any

import orjson
import pytest

from tierwise.errors import HttpError
from tierwise.telemetry.device import DeviceTelemetry, DeviceTelemetrySettings, WorkloadRules


class Clock:
    def __init__(self) -> None:
        self.now_s = 100.0

    def __call__(self) -> float:
        return self.now_s


RULES = {
    "w": WorkloadRules("public"),
    "raw": WorkloadRules("public", allow_raw_samples=True),
}


def intake(clock: Clock, **settings: Any) -> DeviceTelemetry:
    return DeviceTelemetry(RULES, DeviceTelemetrySettings(**settings), clock=clock)


def take(telemetry: DeviceTelemetry, **fields: Any) -> bool:
    doc = {"device_class": "pi5", "workload": "w", "window_s": 60, "counts": {"answered": 1}}
    return telemetry.accept(telemetry.parse(orjson.dumps(doc | fields)))


def drift(telemetry: DeviceTelemetry) -> dict[tuple[str, ...], float]:
    return {
        tuple(s.labels.values()): s.value
        for family in telemetry.collect()
        for s in family.samples
        if s.name == "tierwise_device_drift_score"
    }


def test_samples_are_kept_as_bytes_under_a_byte_bound() -> None:
    telemetry = intake(Clock(), samples_kept=100, samples_max_bytes=3000)
    row = [[0.125] * 200]  # about 1,200 bytes as JSON
    for i in range(4):
        take(telemetry, workload="raw", samples=[{"x": row}, {"x": [[float(i)]]}])
    kept = list(telemetry.samples)
    assert all(isinstance(raw, bytes) for _, _, raw in kept)
    assert sum(len(raw) for _, _, raw in kept) <= 3000
    assert orjson.loads(kept[-1][2]) == {"x": [[3.0]]}  # the newest kept, the oldest gone
    assert len(kept) < 8
    # one sample over the whole bound is never kept
    small = intake(Clock(), samples_max_bytes=100)
    take(small, workload="raw", samples=[{"x": row}])
    assert list(small.samples) == []


def test_drift_scores_take_the_highest_fresh_report_and_go_stale() -> None:
    clock = Clock()
    telemetry = intake(clock, drift_stale_windows=2.0)
    take(telemetry, window_s=60, drift={"class/psi": 0.5})  # one device: drifted
    clock.now_s += 30
    take(telemetry, window_s=60, drift={"class/psi": 0.01})  # another: fine
    key = ("w", "pi5", "class", "psi")
    assert drift(telemetry) == {key: 0.5}  # the later report does not hide the first
    clock.now_s = 100.0 + 120.0  # the first is two of its windows old: stale
    assert drift(telemetry) == {key: 0.01}
    clock.now_s = 130.0 + 120.0
    assert drift(telemetry) == {}  # no fresh report: no score, no alert kept firing


def test_report_ids_are_remembered_for_the_dedupe_window() -> None:
    clock = Clock()
    telemetry = intake(clock, dedupe_window_s=60.0)
    assert take(telemetry, report_id="device-1:0001")
    assert not take(telemetry, report_id="device-1:0001")
    clock.now_s += 61.0
    assert take(telemetry, report_id="device-1:0001")  # forgotten: counted again
    assert telemetry.reports == {"pi5": 2}


def test_a_refused_report_leaves_its_id_free() -> None:
    telemetry = intake(Clock(), device_classes=["pi5"])
    with pytest.raises(HttpError, match="not one of"):
        take(telemetry, device_class="other", report_id="abcdefgh")
    assert take(telemetry, report_id="abcdefgh")
