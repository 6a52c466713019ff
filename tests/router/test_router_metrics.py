"""The router's series as a real gateway's ``/metrics`` on loopback exports them: requests
by workload, answering tier and outcome; escalations by stage and rule; fallbacks by cause
(timeout, partition, error, breaker open, thermal offload); degraded answers; deferred
requests with the outbox's depth and age; hedges; cost at the plan's prices; the SLO gauge
and its histogram bucket.

The device runs a real ONNX model in process (``y = x``, not the zoo's); the edge and the
cloud are scripted tiers told to be slow or to fail between requests."""

from __future__ import annotations

import time
from pathlib import Path

import numpy as np
import pytest
from gateway_fleet import body, fleet_plan, running_gateway, samples, workload

from onnx_models import scale_model
from scripted_tiers import EDGE_LOW, HIGH, LOW, Scripted
from tierwise.errors import DeadlineExceededError, TierError, TierUnavailableError
from tierwise.protocol import InferRequest
from tierwise.router.build import build_router
from tierwise.router.deferred import DEFERRED_TIER
from tierwise.router.gateway import GatewaySettings
from tierwise.router.health import BreakerSettings
from tierwise.router.settings import RouterSettings
from tierwise.router.types import RequestMeta


@pytest.fixture(scope="module")
def model(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return scale_model(tmp_path_factory.mktemp("identity") / "model.onnx", 1.0)


def _partition() -> TierError:
    exc = TierUnavailableError("connection refused", tier="cloud")
    exc.__cause__ = ConnectionRefusedError(111, "refused")
    return exc


def _broken() -> TierError:
    return TierError("the model crashed", tier="cloud")


def test_every_router_series_holds_what_the_requests_did(model: Path, tmp_path: Path) -> None:
    plan = fleet_plan(
        model,
        {
            "w": workload("device", "edge", "cloud", slo_p99_ms=120),
            "later": workload("cloud", urgency="deferrable"),
        },
    )
    edge = Scripted("edge", "edge", y=EDGE_LOW)
    cloud = Scripted("cloud", "cloud", y=np.array([[0.1, 0.9, 0.0, 0.0]], np.float32))
    cloud.timeout_s = 0.2  # a delay over it is a timeout
    settings = RouterSettings(
        hedge_after_ms=50.0,
        breaker=BreakerSettings(consecutive_failures=3, open_s=600.0, min_calls=20),
    )
    gateway_settings = GatewaySettings(outbox_path=tmp_path / "outbox.db", drain_poll_s=600.0)
    tiers = {"edge": edge, "cloud": cloud}
    with running_gateway(plan, tiers, gateway_settings, settings) as (client, app):

        def ask(x: np.ndarray) -> dict[str, object]:
            response = client.post("/v2/models/w/infer", json=body(x))
            assert response.status_code == 200, response.text
            parameters_out: dict[str, object] = response.json().get("parameters", {})
            return parameters_out

        # settled on the device; then escalated twice and answered by the cloud
        assert ask(HIGH)["tier"] == ask(HIGH)["tier"] == "device"
        assert ask(LOW)["tier"] == "cloud"
        # a slow edge: the cloud is asked too (a hedge) and answers first
        edge.delay_s = 0.5
        assert ask(LOW)["tier"] == "cloud"
        edge.delay_s = 0.0
        # a hot edge is offloaded: skipped, the cloud answers
        app.router.thermal_offload["edge"] = True
        hot = client.get("/metrics").text
        assert ask(LOW)["tier"] == "cloud"
        del app.router.thermal_offload["edge"]
        # the cloud fails three ways; the edge's answer is below the bar: degraded
        causes = []
        for delay_s, error in ((1.0, None), (0.0, _partition), (0.0, _broken)):
            cloud.delay_s, cloud.error = delay_s, error
            said = ask(LOW)
            assert (said["tier"], said["degraded"]) == ("edge", True)
            causes.append(said["degraded_reason"])
        assert causes == ["timeout", "partition", "error"]
        # three failures in a row: the breaker is open and the cloud is not even asked
        asked = len(cloud.seen)
        said = ask(LOW)
        assert (said["tier"], said["degraded_reason"]) == ("edge", "breaker_open")
        assert len(cloud.seen) == asked
        # a deferrable workload with its only tier's breaker open waits in the outbox
        deferred = client.post("/v2/models/later/infer", json=body(LOW, urgency="deferrable"))
        assert deferred.status_code == 202, deferred.text
        metrics = client.get("/metrics").text

    w = {"workload": "w"}
    assert samples(metrics, "tierwise_router_requests_total", **w) == {
        ("answered", "device", "w"): 2.0,
        ("answered", "cloud", "w"): 3.0,
        ("degraded", "edge", "w"): 4.0,
    }
    # queued after no tier could take it: deferred, not no_route, in both the router's
    # and the gateway's counts
    assert samples(metrics, "tierwise_router_requests_total", workload="later") == {
        ("deferred", "-", "later"): 1.0
    }
    assert samples(metrics, "tierwise_gateway_requests_total", workload="later") == {
        ("deferred", "-", "later"): 1.0
    }
    # the device escalated on every LOW request; the edge each time the cloud was asked
    # after its 0.5 (not when the cloud's open breaker left nothing to escalate to)
    assert samples(metrics, "tierwise_router_escalations_total", **w) == {
        ("max_prob", "device", "w"): 7.0,
        ("max_prob", "edge", "w"): 4.0,
    }
    assert samples(metrics, "tierwise_router_fallbacks_total", **w) == {
        ("thermal_offload", "edge", "w"): 1.0,
        ("timeout", "cloud", "w"): 1.0,
        ("partition", "cloud", "w"): 1.0,
        ("error", "cloud", "w"): 1.0,
        ("breaker_open", "cloud", "w"): 1.0,
    }
    assert samples(metrics, "tierwise_router_degraded_total", **w) == {
        (cause, "edge", "w"): 1.0 for cause in ("timeout", "partition", "error", "breaker_open")
    }
    assert samples(metrics, "tierwise_router_hedges_total") == {("cloud", "w"): 1.0}
    # cost at the plan's prices: each answer a priced tier gave, escalated or not
    cost = samples(metrics, "tierwise_router_cost_usd_total", **w)
    assert cost[("cloud", "w")] == pytest.approx(3 * 1e-5)
    assert cost[("edge", "w")] == pytest.approx(5 * 1e-6)  # B, and four degraded
    assert ("device", "w") not in cost or cost[("device", "w")] == 0.0
    # the breaker and thermal gauges, now and while the edge was hot
    assert samples(metrics, "tierwise_router_breaker_open") == {("cloud",): 1.0, ("edge",): 0.0}
    assert samples(hot, "tierwise_router_thermal_offload", tier="edge") == {("edge",): 1.0}
    assert samples(metrics, "tierwise_router_thermal_offload", tier="edge") == {("edge",): 0.0}
    # the SLO and the histogram bucket at it
    assert samples(metrics, "tierwise_workload_slo_seconds") == {("w",): 0.12}
    buckets = samples(metrics, "tierwise_router_request_duration_seconds_bucket", **w)
    count = samples(metrics, "tierwise_router_request_duration_seconds_count", **w)[("w",)]
    assert count == 9.0
    at_slo = buckets[("0.12", "w")]
    assert 2.0 <= at_slo < count  # the device's answers were fast; the timeout was not
    # the deferred request: one item in the gateway's queue, of a sane age
    assert samples(metrics, "tierwise_outbox_items") == {(DEFERRED_TIER,): 1.0}
    ((age_s,),) = [tuple(samples(metrics, "tierwise_outbox_oldest_age_seconds").values())]
    assert 0.0 <= age_s < 60.0


async def test_a_deadline_passed_before_routing_counts_its_wait_in_the_histogram(
    model: Path,
) -> None:
    """The time since arrival, not 0 s: overload must not pull the percentiles down."""
    plan = fleet_plan(model, {"w": workload("device")})
    router = build_router(plan)
    await router.start()
    request = InferRequest(inputs={"x": np.zeros((1, 4), np.float32)})
    late = RequestMeta("w", deadline_ms=100.0, received_s=time.time() - 0.5)
    unknown = RequestMeta("w", deadline_ms=100.0, received_s=0.0)
    try:
        with pytest.raises(DeadlineExceededError):
            await router.infer(request, late)
        series = router.metrics.workloads["w"]
        assert series.duration_s.total >= 0.5
        assert sum(series.duration_s.counts) == 1
        # a request whose arrival is not known is counted, but kept out of the histogram
        assert RequestMeta("w").waited_s(time.time()) is None
        assert unknown.waited_s(time.time()) is None
    finally:
        await router.close()
    assert {k: t.value for k, t in series.requests.items()} == {("-", "deadline"): 1.0}


def test_a_first_stage_answer_counts_as_the_general_path_counts_it() -> None:
    """observe's shortcut for an answer the first stage gave and accepted leaves every
    series as the general walk does for the same answer."""
    from tierwise.router.answer import RoutedAnswer
    from tierwise.router.metrics import RouterMetrics
    from tierwise.router.types import Route, TierDecision

    cascade = {"w": [("device", "max_prob"), ("cloud", None)]}
    general, short = RouterMetrics(cascade, {"w": 0.12}), RouterMetrics(cascade, {"w": 0.12})
    general._first_tier.clear()  # no shortcut: the general walk
    route = Route("w", ("device", "cloud"), (TierDecision("device", True, "kept"),
                                              TierDecision("cloud", True, "kept")))  # fmt: skip
    for total_ms, cost in ((0.4, 8e-9), (130.0, 8e-9), (2.0, 0.0)):
        attempts = [("device", "answered", "answered", total_ms, cost, 0.97, None)]
        answer = RoutedAnswer("w", route.tiers, attempts, None, "device", None, "answered",
                              total_ms)  # fmt: skip
        general.observe(answer, route)
        short.observe(answer, route)
    a, b = general.workloads["w"], short.workloads["w"]
    assert {k: t.value for k, t in a.requests.items()} == {
        k: t.value for k, t in b.requests.items()
    }
    assert {k: t.value for k, t in a.cost.items()} == {k: t.value for k, t in b.cost.items()}
    assert a.duration_s.cumulative() == b.duration_s.cumulative()
    assert a.escalations == b.escalations == {}
    assert a.fallbacks == b.fallbacks == {}
