"""``POST /v2/telemetry/device`` on a real gateway on loopback: a good report lands in the
device series of ``/metrics``; bad input (wrong types, huge histograms, negative counts,
unknown workload, privacy rules broken, no or the wrong token) gets a 4xx with a JSON
error and is never counted."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import orjson
import pytest
from gateway_fleet import fleet_plan, running_gateway, samples, workload

from onnx_models import scale_model
from security_helpers import tokens_file
from tierwise.planfile.schema import Plan
from tierwise.router.gateway import GatewaySettings
from tierwise.security import AuthSettings
from tierwise.telemetry.device import MAX_BOUNDS, DeviceTelemetrySettings

PATH = "/v2/telemetry/device"
DEVICE_SERIES = (
    "tierwise_device_requests_total",
    "tierwise_device_request_duration_seconds_count",
    "tierwise_device_drift_score",
    "tierwise_device_reports_total",
)


@pytest.fixture(scope="module")
def plan(tmp_path_factory: pytest.TempPathFactory) -> Plan:
    model = scale_model(tmp_path_factory.mktemp("identity") / "model.onnx", 1.0)
    return fleet_plan(
        model,
        {
            "w": workload("device", "cloud"),
            "private": workload("device", "cloud", privacy="sensitive"),
            "raw": workload("device", "cloud", allow_raw_samples=True),
        },
    )


def report(**changes: Any) -> dict[str, Any]:
    doc: dict[str, Any] = {
        "device_class": "pi5",
        "workload": "w",
        "window_s": 60,
        "counts": {"answered": 120, "escalated": 7},
        "latency_ms": {"bounds": [5, 10, 50], "counts": [80, 30, 15, 2], "sum_ms": 1234.5},
        "drift": {"confidence/psi": 0.04, "input_mean/ks": 0.125},
    }
    doc.update(changes)
    return {k: v for k, v in doc.items() if v is not None}


def test_a_report_lands_in_the_device_series(plan: Plan) -> None:
    with running_gateway(plan) as (client, app):
        for _ in range(2):
            accepted = client.post(PATH, json=report())
            assert accepted.status_code == 202, accepted.text
        sensitive = report(workload="private", drift=None)  # counts and latency buckets
        assert client.post(PATH, json=sensitive).status_code == 202
        sample = {"x": [[0.5, 0.25, 0.0, 0.25]]}
        raw = report(workload="raw", device_class="jetson", samples=[sample])
        assert client.post(PATH, json=raw).status_code == 202
        metrics = client.get("/metrics").text
        kept = list(app.device.telemetry.samples)

    requests = samples(metrics, "tierwise_device_requests_total")
    assert requests[("pi5", "answered", "w")] == 240.0
    assert requests[("pi5", "escalated", "w")] == 14.0
    assert requests[("pi5", "answered", "private")] == 120.0
    buckets = samples(metrics, "tierwise_device_request_duration_seconds_bucket", workload="w")
    # device buckets at their upper bounds: <=5 ms in le=0.005, <=10 ms in 0.01, <=50 in 0.05
    assert buckets[("pi5", "0.005", "w")] == 160.0
    assert buckets[("pi5", "0.01", "w")] == 220.0
    assert buckets[("pi5", "0.05", "w")] == 250.0
    assert buckets[("pi5", "5.0", "w")] == 250.0  # the 2 over 50 ms only in +Inf
    assert buckets[("pi5", "+Inf", "w")] == 254.0
    total = samples(metrics, "tierwise_device_request_duration_seconds_sum", workload="w")
    assert total[("pi5", "w")] == pytest.approx(2 * 1.2345)
    assert samples(metrics, "tierwise_device_drift_score", workload="w") == {
        ("pi5", "confidence", "psi", "w"): 0.04,
        ("pi5", "input_mean", "ks", "w"): 0.125,
    }
    assert samples(metrics, "tierwise_device_reports_total") == {
        ("jetson",): 1.0,
        ("pi5",): 3.0,
    }
    assert [(w, c, orjson.loads(raw)) for w, c, raw in kept] == [("raw", "jetson", sample)]


HUGE = {"bounds": list(range(1, MAX_BOUNDS + 2)), "counts": [0] * (MAX_BOUNDS + 2)}


@pytest.mark.parametrize(
    ("doc", "status", "message"),
    [
        (report(counts={"answered": "3"}), 422, "counts.answered"),
        (report(counts={"answered": 1.5}), 422, "counts.answered"),
        (report(counts={"answered": True}), 422, "counts.answered"),
        (report(window_s="60"), 422, "window_s"),
        (report(counts={"answered": -1}), 422, "counts.answered"),
        (report(latency_ms=HUGE), 422, "latency_ms.bounds"),
        (report(latency_ms={"bounds": [5, 10], "counts": [1, -2, 0]}), 422, "latency_ms"),
        (report(latency_ms={"bounds": [10, 5], "counts": [1, 2, 0]}), 422, "strictly increasing"),
        (report(latency_ms={"bounds": [5, 10], "counts": [1, 2]}), 422, "one count per bound"),
        (report(drift={"confidence/psi": -0.5}), 422, "drift"),
        (report(drift={"no slash": 0.5}), 422, "drift"),
        # label values from fixed sets: no free-text outcome, signal or test
        (report(counts={"junk0": 1}), 422, "counts.junk0"),
        (report(drift={"confidence/junk": 0.5}), 422, "drift.confidence/junk"),
        (report(drift={"made_up/psi": 0.5}), 422, "drift.made_up/psi"),
        (report(report_id="x"), 422, "report_id"),
        (report(device_class="pi 5/../x"), 422, "device_class"),
        (report(workload="ghost"), 422, "unknown workload 'ghost'"),
        (report(extra=1), 422, "extra"),
        (report(workload="private"), 422, "sensitive"),
        (report(workload="private", drift=None, samples=[{"x": [1]}]), 422, "sensitive"),
        (report(samples=[{"x": [1]}]), 422, "does not allow raw samples"),
        ([report()], 400, "JSON object"),
    ],
)
def test_bad_reports_get_a_4xx_and_are_never_counted(
    plan: Plan, doc: Any, status: int, message: str
) -> None:
    with running_gateway(plan) as (client, _):
        refused = client.post(PATH, json=doc)
        metrics = client.get("/metrics").text
    assert refused.status_code == status, refused.text
    assert message in refused.json()["error"]
    for name in DEVICE_SERIES:
        assert samples(metrics, name) == {}, name


@pytest.mark.parametrize(
    ("content", "status", "message"),
    [
        (b"not json", 400, "not valid JSON"),
        (b'{"window_s": 1e400}', 400, "not valid JSON"),  # infinity
        (b"{" + b" " * 4096 + b"}", 413, "exceeds the limit of 2048 bytes"),
    ],
)
def test_bodies_that_are_not_reports_are_refused(
    plan: Plan, content: bytes, status: int, message: str
) -> None:
    settings = GatewaySettings(device_telemetry=DeviceTelemetrySettings(max_body_bytes=2048))
    with running_gateway(plan, settings=settings) as (client, _):
        refused = client.post(PATH, content=content)
        metrics = client.get("/metrics").text
    assert refused.status_code == status, refused.text
    assert message in refused.json()["error"]
    assert samples(metrics, "tierwise_device_reports_total") == {}


def test_device_classes_are_bounded(plan: Plan) -> None:
    settings = GatewaySettings(device_telemetry=DeviceTelemetrySettings(max_device_classes=1))
    with running_gateway(plan, settings=settings) as (client, _):
        assert client.post(PATH, json=report()).status_code == 202
        refused = client.post(PATH, json=report(device_class="other"))
        again = client.post(PATH, json=report())
        metrics = client.get("/metrics").text
    assert refused.status_code == 422
    assert "bound of 1 device classes" in refused.json()["error"]
    assert again.status_code == 202
    assert samples(metrics, "tierwise_device_reports_total") == {("pi5",): 2.0}


def test_reports_need_the_telemetry_scope_when_the_gateway_has_tokens(
    plan: Plan, tmp_path: Path
) -> None:
    path, tokens = tokens_file(tmp_path / "tokens", ("app", "infer"), ("fleet", "telemetry"))
    settings = GatewaySettings(auth=AuthSettings(tokens_file=path))
    with running_gateway(plan, settings=settings) as (client, _):
        anonymous = client.post(PATH, json=report())
        wrong = client.post(PATH, json=report(), headers={"authorization": "Bearer nope"})
        infer_only = client.post(
            PATH, json=report(), headers={"authorization": f"Bearer {tokens['app']}"}
        )
        fleet = {"authorization": f"Bearer {tokens['fleet']}"}
        between = client.get("/metrics", headers=fleet).text
        accepted = client.post(PATH, json=report(), headers=fleet)
        metrics = client.get("/metrics", headers=fleet).text
    assert [anonymous.status_code, wrong.status_code, infer_only.status_code] == [401, 401, 403]
    for refused in (anonymous, wrong, infer_only):
        assert "error" in refused.json()
    assert samples(between, "tierwise_device_reports_total") == {}
    assert accepted.status_code == 202, accepted.text
    assert samples(metrics, "tierwise_device_reports_total") == {("pi5",): 1.0}


def test_no_token_can_mint_series_past_the_bound(plan: Plan) -> None:
    """Each report could add a few series; the total stays under ``max_series`` and a
    report that would pass it is refused whole."""
    settings = GatewaySettings(device_telemetry=DeviceTelemetrySettings(max_series=6))
    with running_gateway(plan, settings=settings) as (client, app):
        # 2 outcomes + 1 histogram + 2 drift scores = 5 series
        assert client.post(PATH, json=report()).status_code == 202
        # the same series again: nothing new, always taken
        assert client.post(PATH, json=report()).status_code == 202
        wider = report(counts={"answered": 1, "error": 1, "deadline": 1})
        refused = client.post(PATH, json=wider)  # 2 new outcomes: 7 > 6
        other = client.post(PATH, json=report(device_class="jetson"))  # 5 more
        fits = client.post(PATH, json=report(counts={"error": 2}, latency_ms=None, drift=None))
        metrics = client.get("/metrics").text
        count = app.device.telemetry.series_count
    assert refused.status_code == other.status_code == 422
    assert "past the bound of 6" in refused.json()["error"]
    assert fits.status_code == 202
    assert count == 6
    assert samples(metrics, "tierwise_device_requests_total") == {
        ("pi5", "answered", "w"): 240.0,
        ("pi5", "escalated", "w"): 14.0,
        ("pi5", "error", "w"): 2.0,
    }


def test_listed_device_classes_are_the_only_ones_taken(plan: Plan) -> None:
    """Junk class names cannot take the places of the real ones."""
    listed = DeviceTelemetrySettings(device_classes=["pi5", "jetson"], max_device_classes=1)
    settings = GatewaySettings(device_telemetry=listed)
    with running_gateway(plan, settings=settings) as (client, _):
        junk = [client.post(PATH, json=report(device_class=f"junk{i}")) for i in range(3)]
        taken = [client.post(PATH, json=report(device_class=c)) for c in ("pi5", "jetson")]
        metrics = client.get("/metrics").text
    assert [r.status_code for r in junk] == [422, 422, 422]
    assert "not one of the settings' jetson, pi5" in junk[0].json()["error"]
    assert [r.status_code for r in taken] == [202, 202]
    assert samples(metrics, "tierwise_device_reports_total") == {("jetson",): 1.0, ("pi5",): 1.0}


def test_a_report_sent_twice_under_its_id_counts_once(plan: Plan) -> None:
    with running_gateway(plan) as (client, _):
        first = client.post(PATH, json=report(report_id="a1b2c3d4e5f6"))
        again = client.post(PATH, json=report(report_id="a1b2c3d4e5f6"))
        other = client.post(PATH, json=report(report_id="f6e5d4c3b2a1"))
        metrics = client.get("/metrics").text
    assert (first.status_code, again.status_code, other.status_code) == (202, 202, 202)
    assert (first.json()["duplicate"], again.json()["duplicate"]) == (False, True)
    assert samples(metrics, "tierwise_device_reports_total") == {("pi5",): 2.0}
    assert samples(metrics, "tierwise_device_requests_total")[("pi5", "answered", "w")] == 240.0
