"""The device reporter: counts and latency buckets for every workload, drift scores from
a real drift monitor where privacy allows, raw samples only where the workload allows
them, and, checked on the wire into a real gateway, no input bytes and no input hashes
from a sensitive workload."""

from __future__ import annotations

import hashlib
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import numpy as np
import orjson
import pytest
from prometheus_client.parser import text_string_to_metric_families

from onnx_models import scale_model
from server_helpers import running_app
from tierwise.errors import ConfigError
from tierwise.http import HttpClient
from tierwise.http.asgi import Receive, Scope, Send
from tierwise.planfile.schema import Plan
from tierwise.router.build import build_router
from tierwise.router.gateway import Gateway, GatewaySettings
from tierwise.telemetry.device import DEVICE_TELEMETRY_PATH, MAX_WINDOW_S
from tierwise.telemetry.device_report import DeviceReporter
from tierwise.telemetry.drift import DriftMonitor, DriftSettings
from tierwise.telemetry.drift_reference import reference_from_outputs


class Recorder:
    """ASGI middleware keeping the exact bytes of every device report the gateway gets."""

    def __init__(self, app: Gateway) -> None:
        self.app = app
        self.bodies: list[bytes] = []

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["path"] != DEVICE_TELEMETRY_PATH:
            await self.app(scope, receive, send)
            return
        chunks: list[bytes] = []

        async def recording() -> dict[str, Any]:
            message: dict[str, Any] = await receive()
            chunks.append(message.get("body", b""))
            if not message.get("more_body", False):
                self.bodies.append(b"".join(chunks))
            return message

        await self.app(scope, recording, send)


@pytest.fixture(scope="module")
def plan(tmp_path_factory: pytest.TempPathFactory) -> Plan:
    model = scale_model(tmp_path_factory.mktemp("identity") / "model.onnx", 1.0)
    where = {"rtt_p50_ms": 0, "rtt_p99_ms": 0, "cost_usd_per_inference": 0}
    tiers = {"device": {"kind": "device", "site": "s1", "region": "r1",
                        "local": {"model": str(model)}, **where}}  # fmt: skip
    cascade = [{"tier": "device"}]
    workloads = {
        "faces": {"privacy": "sensitive", "cascade": cascade},
        "raw": {"privacy": "public", "allow_raw_samples": True, "cascade": cascade},
    }
    return Plan.model_validate({"tiers": tiers, "workloads": workloads})


def _requests(metrics: str) -> dict[tuple[str, ...], float]:
    return {
        tuple(v for _, v in sorted(s.labels.items())): s.value
        for family in text_string_to_metric_families(metrics)
        for s in family.samples
        if s.name == "tierwise_device_requests_total"
    }


@contextmanager
def recorded_gateway(plan: Plan) -> Iterator[tuple[str, Recorder]]:
    recorder = Recorder(Gateway(plan, build_router(plan), GatewaySettings()))
    with running_app(recorder) as (_, port):
        yield f"http://127.0.0.1:{port}", recorder


def _inputs(seed: int) -> dict[str, np.ndarray]:
    rng = np.random.default_rng(seed)
    return {"x": rng.random((1, 4)).astype(np.float32)}


def _traces(inputs: dict[str, np.ndarray]) -> list[bytes]:
    """What would betray the inputs on the wire: their bytes, their values as JSON writes
    them, and the sha256 (hex) of either."""
    found = []
    for array in inputs.values():
        raw = array.tobytes()
        as_json = orjson.dumps(array.tolist())
        found += [raw, as_json, repr(float(array.ravel()[0])).encode()]
        found += [hashlib.sha256(b).hexdigest().encode() for b in (raw, as_json)]
    return found


async def _observe_and_send(url: str, reporter: DeviceReporter, seeds: range) -> int:
    sent = []
    for seed in seeds:
        inputs = _inputs(seed)
        sent.append(inputs)
        reporter.observe("answered", 0.004, inputs, {"y": inputs["x"]})
    async with HttpClient(url) as client:
        status = await reporter.send(client)
    reporter.sent_inputs = sent  # type: ignore[attr-defined]
    return status


async def test_a_sensitive_workload_sends_no_input_bytes_and_no_hashes(plan: Plan) -> None:
    reporter = DeviceReporter("faces", "pi5", privacy="sensitive")
    with recorded_gateway(plan) as (url, recorder):
        status = await _observe_and_send(url, reporter, range(5))
        async with HttpClient(url) as client:
            metrics = (await client.get("/metrics")).text
    assert status == 202
    (wire,) = recorder.bodies
    for inputs in reporter.sent_inputs:  # type: ignore[attr-defined]
        for trace in _traces(inputs):
            assert trace not in wire
    doc = orjson.loads(wire)
    assert set(doc) <= {"device_class", "workload", "window_s", "report_id", "counts", "latency_ms"}
    assert doc["counts"] == {"answered": 5}
    assert _requests(metrics) == {("pi5", "answered", "faces"): 5.0}
    assert reporter.counts == {}  # a new window once the gateway took it


async def test_raw_samples_reach_the_wire_only_where_allowed(plan: Plan) -> None:
    """The same check finds the inputs when the workload allows raw samples: it can fail."""
    reporter = DeviceReporter("raw", "pi5", privacy="public", allow_raw_samples=True)
    with recorded_gateway(plan) as (url, recorder):
        assert await _observe_and_send(url, reporter, range(3)) == 202
    (wire,) = recorder.bodies
    first = reporter.sent_inputs[0]  # type: ignore[attr-defined]
    assert orjson.dumps(first["x"].tolist()) in wire
    assert len(orjson.loads(wire)["samples"]) == 3


def test_drift_scores_from_a_real_monitor_and_latency_buckets() -> None:
    rng = np.random.default_rng(3)
    x = rng.random((200, 4)).astype(np.float32)
    scores = np.exp(x) / np.exp(x).sum(axis=1, keepdims=True)
    reference = reference_from_outputs(x, scores, output="y", input_name="x")
    monitor = DriftMonitor(reference, DriftSettings(window_rows=40, min_rows=40))
    public = DeviceReporter("w", "pi5", privacy="public", drift=monitor)
    private = DeviceReporter("w", "pi5", privacy="sensitive", drift=monitor)
    shifted = x[:60] + 3.0  # inputs well off the reference
    for i, row in enumerate(shifted):
        inputs = {"x": row[None]}
        outputs = {"y": np.exp(row[None]) / np.exp(row[None]).sum()}
        public.observe("answered", 0.001 * (i % 30), inputs, outputs)
        private.observe("answered", 0.001, inputs, outputs)
    report = public.report()
    assert report["drift"], "the monitor compared a window"
    assert max(report["drift"].values()) > 0.2
    assert all(key.count("/") == 1 for key in report["drift"])
    assert sum(report["latency_ms"]["counts"]) == 60
    assert report["latency_ms"]["counts"][0] == 4  # 0 ms and 1 ms (<= 1.0), twice each
    assert "samples" not in report
    assert private.drift is None
    assert set(private.report()) == {
        "device_class",
        "workload",
        "window_s",
        "report_id",
        "counts",
        "latency_ms",
    }


@pytest.mark.parametrize(
    ("kwargs", "field"),
    [
        ({"privacy": "secret"}, "privacy"),
        ({"privacy": "sensitive", "allow_raw_samples": True}, "allow_raw_samples"),
        ({"privacy": "public", "bounds_ms": (5.0, 5.0)}, "bounds_ms"),
        ({"privacy": "public", "bounds_ms": ()}, "bounds_ms"),
        ({"privacy": "public", "max_samples": 99}, "max_samples"),
    ],
)
def test_reporter_arguments_are_checked(kwargs: dict[str, Any], field: str) -> None:
    with pytest.raises(ConfigError, match=field):
        DeviceReporter("w", "pi5", **kwargs)


class CountingMonitor:
    """A drift source that records what it was fed."""

    def __init__(self) -> None:
        self.fed: list[dict[str, np.ndarray]] = []

    def observe(self, inputs: dict[str, np.ndarray], outputs: dict[str, np.ndarray]) -> None:
        self.fed.append(dict(inputs))

    def scores(self) -> dict[tuple[str, str], float]:
        return {("input_mean", "ks"): 0.5} if self.fed else {}


def test_a_request_narrowed_to_sensitive_is_only_counted() -> None:
    """The workload allows drift and raw samples; the request's own privacy does not."""
    monitor = CountingMonitor()
    reporter = DeviceReporter("raw", "pi5", privacy="public", allow_raw_samples=True,
                              drift=monitor)  # fmt: skip
    secret = _inputs(7)
    reporter.observe("answered", 0.002, secret, {"y": secret["x"]}, privacy="sensitive")
    assert monitor.fed == []
    report = reporter.report()
    assert "samples" not in report
    assert "drift" not in report
    assert report["counts"] == {"answered": 1}
    wire = orjson.dumps(report)
    for trace in _traces(secret):
        assert trace not in wire
    # the same request under the workload's own class feeds both
    reporter.observe("answered", 0.002, secret, {"y": secret["x"]}, privacy="public")
    assert len(monitor.fed) == 1
    assert len(reporter.report()["samples"]) == 1


@pytest.mark.parametrize(
    ("call", "field"),
    [
        ({"outcome": "made up"}, "outcome"),
        ({"outcome": "answered", "privacy": "secret"}, "privacy"),
    ],
)
def test_observe_refuses_what_the_gateway_would(call: dict[str, str], field: str) -> None:
    reporter = DeviceReporter("w", "pi5", privacy="public")
    outcome = call.pop("outcome")
    with pytest.raises(ConfigError, match=field):
        reporter.observe(outcome, 0.001, **call)
    assert reporter.counts == {}


class Response:
    def __init__(self, status_code: int) -> None:
        self.status_code = status_code


class ScriptedPoster:
    """Answers each post with the next status; keeps what was posted."""

    def __init__(self, *statuses: int) -> None:
        self.statuses = list(statuses)
        self.posted: list[dict[str, Any]] = []

    async def post(self, url: str, *, headers: Any = None, json: Any = None) -> Response:
        self.posted.append(json)
        return Response(self.statuses.pop(0))


class Clock:
    def __init__(self) -> None:
        self.now_s = 0.0

    def __call__(self) -> float:
        return self.now_s


async def test_a_refused_report_is_dropped_and_a_lost_one_sent_again_under_its_id() -> None:
    clock = Clock()
    reporter = DeviceReporter("w", "pi5", privacy="public", clock=clock)
    gateway = ScriptedPoster(503, 202, 422, 202)
    reporter.observe("answered", 0.001)
    assert await reporter.send(gateway) == 503  # kept, as it was
    reporter.observe("error", 0.001)  # a new window already
    assert await reporter.send(gateway) == 202
    first, again = gateway.posted
    assert first == again  # the same report and report_id: the gateway counts it once
    assert first["counts"] == {"answered": 1}
    assert reporter.pending is None
    assert await reporter.send(gateway) == 422  # refused: dropped, not stuck on it
    assert gateway.posted[2]["counts"] == {"error": 1}
    reporter.observe("answered", 0.001)
    assert await reporter.send(gateway) == 202
    assert gateway.posted[3]["counts"] == {"answered": 1}
    assert len({doc["report_id"] for doc in gateway.posted}) == 3


async def test_a_week_long_outage_never_makes_a_report_the_gateway_refuses(plan: Plan) -> None:
    clock = Clock()
    reporter = DeviceReporter("raw", "pi5", privacy="public", clock=clock)
    reporter.observe("answered", 0.001)
    clock.now_s = 30 * 86_400.0  # a month without sending
    report = reporter.report()
    assert report["window_s"] == MAX_WINDOW_S
    with recorded_gateway(plan) as (url, _):
        async with HttpClient(url) as client:
            assert await reporter.send(client) == 202
