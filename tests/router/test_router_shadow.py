"""Remote re-evaluation through a real gateway on loopback: a share of the device's
answers is re-run on the cloud tier in the background and the agreement exported; never
for requests whose data may not reach the cloud; bounded by a daily budget and a number
in flight; and the request never waits for it.

The device runs ``y = x`` in process; the cloud is a real tier server running a model the
zoo did not make (``y = x * [1, 1, 1, -1]``: it agrees with the device unless the last
class wins), or a scripted tier held until the test lets it answer."""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import pytest
from gateway_fleet import body, fleet_plan, running_gateway, samples, workload
from onnx import TensorProto, helper

from onnx_models import save_graph, scale_model
from scripted_tiers import HIGH, Scripted
from server_helpers import running_server
from tierwise.errors import SpecError
from tierwise.planfile.load import load_plan
from tierwise.protocol import InferRequest, InferResponse
from tierwise.router.answer import RoutedAnswer
from tierwise.router.build import build_router
from tierwise.router.types import RequestMeta
from tierwise.server import ServerSettings

FIRST = np.array([[0.9, 0.05, 0.03, 0.02]], np.float32)  # both say class 0
LAST = np.array([[0.02, 0.03, 0.05, 0.9]], np.float32)  # the device 3, the cloud 2
CHECKS = "tierwise_shadow_checks_total"
TWO_AGREE = ("cloud", "agree", "device", "w")


def flip_model(path: Path) -> Path:
    """y = x * [1, 1, 1, -1] on FP32 [batch, 4]."""
    t = helper.make_tensor_value_info
    graph = helper.make_graph(
        [helper.make_node("Mul", ["x", "k"], ["y"])],
        "flip",
        [t("x", TensorProto.FLOAT, ["batch", 4])],
        [t("y", TensorProto.FLOAT, ["batch", 4])],
        [helper.make_tensor("k", TensorProto.FLOAT, [4], [1.0, 1.0, 1.0, -1.0])],
    )
    path.parent.mkdir(parents=True, exist_ok=True)
    return save_graph(graph, path)


@pytest.fixture(scope="module")
def model(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return scale_model(tmp_path_factory.mktemp("identity") / "model.onnx", 1.0)


def _wait_for(read: Callable[[], Any], done: Callable[[Any], bool]) -> Any:
    """Poll ``read()`` until ``done`` says so (the re-runs finish in the background)."""
    deadline = time.monotonic() + 30.0
    while True:
        value = read()
        if done(value) or time.monotonic() > deadline:
            return value
        time.sleep(0.02)


def _cloud_requests(url: str) -> float:
    text = httpx.get(f"{url}/metrics", timeout=10).text
    return sum(samples(text, "tierwise_requests_total", model="flip").values())


def test_agreement_with_a_real_cloud_tier_and_never_for_sensitive_requests(
    model: Path, tmp_path: Path
) -> None:
    flip_model(tmp_path / "repo" / "flip" / "1" / "model.onnx")
    with running_server(ServerSettings(model_repo=tmp_path / "repo")) as cloud:
        plan = fleet_plan(
            model,
            {"w": workload("device", "cloud", reeval={"rate": 1.0})},
            cloud_url=cloud.url,
            cloud_model="flip",
        )
        with running_gateway(plan) as (client, _):

            def metrics() -> str:
                return client.get("/metrics").text

            # narrowed to sensitive: answered on the device and never sent to the cloud
            for _ in range(3):
                said = client.post("/v2/models/w/infer", json=body(FIRST, privacy="sensitive"))
                assert said.json()["parameters"]["tier"] == "device", said.text
            before = _cloud_requests(cloud.url)
            for x in (FIRST, FIRST, FIRST, LAST):
                said = client.post("/v2/models/w/infer", json=body(x))
                assert said.json()["parameters"]["tier"] == "device", said.text
            text = _wait_for(metrics, lambda t: sum(samples(t, CHECKS).values()) >= 4)
            after = _cloud_requests(cloud.url)

    assert samples(text, CHECKS) == {
        ("cloud", "agree", "device", "w"): 3.0,
        ("cloud", "disagree", "device", "w"): 1.0,
    }
    assert samples(text, "tierwise_shadow_agreement_ratio") == {("cloud", "device", "w"): 0.75}
    assert before == 0.0  # the sensitive requests reached no tier but the device
    assert after == 4.0  # one re-run per public answer, none for the sensitive ones


def test_a_sensitive_workload_with_reeval_is_refused_at_plan_load(tmp_path: Path) -> None:
    path = tmp_path / "plan.yaml"
    path.write_text(
        """
version: 1
tiers:
  device: {kind: device, site: s1, region: r1, url: "http://127.0.0.1:9", model: m,
           rtt_p50_ms: 0, rtt_p99_ms: 0, cost_usd_per_inference: 0}
  cloud: {kind: cloud, region: r1, url: "http://127.0.0.1:9", model: m,
          rtt_p50_ms: 10, rtt_p99_ms: 20, cost_usd_per_inference: 0.00001}
workloads:
  faces:
    privacy: sensitive
    reeval: {rate: 0.1}
    cascade:
      - {tier: device}
"""
    )
    with pytest.raises(SpecError, match="never re-evaluated"):
        load_plan(path)


class HeldCloud(Scripted):
    """A cloud that answers only once the test releases it; counts calls started."""

    def __init__(self) -> None:
        super().__init__("cloud", "cloud", y=HIGH)
        self.release = threading.Event()
        self.started = 0

    async def infer(self, request: InferRequest, *, timeout_s: float) -> InferResponse:
        self.started += 1
        await asyncio.to_thread(self.release.wait, 30.0)
        return await super().infer(request, timeout_s=timeout_s)


def test_the_request_does_not_wait_and_the_in_flight_bound_holds(
    model: Path, tmp_path: Path
) -> None:
    plan = fleet_plan(
        model, {"w": workload("device", "cloud", reeval={"rate": 1.0, "max_in_flight": 1})}
    )
    cloud = HeldCloud()
    with running_gateway(plan, {"cloud": cloud}) as (client, _):
        first = client.post("/v2/models/w/infer", json=body(HIGH))
        # answered while its re-run is still held on the cloud: the request did not wait
        assert first.status_code == 200, first.text
        assert _wait_for(lambda: cloud.started, lambda n: n == 1) == 1
        assert not cloud.release.is_set()
        for _ in range(2):  # the one re-run allowed is in flight: no room for these
            assert client.post("/v2/models/w/infer", json=body(HIGH)).status_code == 200
        held = client.get("/metrics").text
        cloud.release.set()
        text = _wait_for(
            lambda: client.get("/metrics").text,
            lambda t: samples(t, CHECKS, result="agree") != {},
        )
    assert samples(held, CHECKS) == {("cloud", "over_budget", "device", "w"): 2.0}
    assert samples(text, CHECKS) == {
        ("cloud", "agree", "device", "w"): 1.0,
        ("cloud", "over_budget", "device", "w"): 2.0,
    }
    assert cloud.started == 1


def test_the_daily_budget_bounds_the_re_runs(model: Path) -> None:
    # the cloud's price is 1e-5 per inference: two re-runs fit, the third does not
    reeval = {"rate": 1.0, "budget_usd_per_day": 2.5e-5}
    plan = fleet_plan(model, {"w": workload("device", "cloud", reeval=reeval)})
    cloud = Scripted("cloud", "cloud", y=HIGH)
    with running_gateway(plan, {"cloud": cloud}) as (client, _):
        for _ in range(4):
            assert client.post("/v2/models/w/infer", json=body(HIGH)).status_code == 200
        text = _wait_for(
            lambda: client.get("/metrics").text,
            lambda t: (
                samples(t, CHECKS, result="agree") == {("cloud", "agree", "device", "w"): 2.0}
            ),
        )
    assert samples(text, CHECKS) == {
        TWO_AGREE: 2.0,
        ("cloud", "over_budget", "device", "w"): 2.0,
    }
    assert len(cloud.seen) == 2
    # the spend of the two re-runs is visible, apart from the workload's own cost
    cost = samples(text, "tierwise_shadow_cost_usd_total")
    assert cost == {("cloud", "w"): pytest.approx(2e-5)}


async def test_an_answer_without_readable_scores_is_neither_re_run_nor_charged(
    model: Path,
) -> None:
    """A 1-D score tensor (one score per row, or one row's classes: no telling) and a
    3-D one are errors counted before any budget is taken."""
    reeval = {"rate": 1.0, "budget_usd_per_day": 1.5e-5}  # room for one re-run
    plan = fleet_plan(model, {"w": workload("device", "cloud", reeval=reeval)})
    cloud = Scripted("cloud", "cloud", y=HIGH)
    router = build_router(plan, tiers={"cloud": cloud}, seed=1)
    shadow = router.shadow
    assert shadow is not None
    request = InferRequest(inputs={"x": HIGH})
    answer = RoutedAnswer("w", ["device", "cloud"], [], None, "device", None, "answered", 1.0)
    try:
        for outputs in ({"y": HIGH[0]}, {"y": HIGH[None]}):
            shadow.offer(answer, request, RequestMeta("w"), outputs)
        await shadow.wait()
        assert shadow.checks == {("w", "device", "cloud", "error"): 2}
        assert cloud.seen == []
        assert shadow.cost_usd == {}
        shadow.offer(answer, request, RequestMeta("w"), {"y": HIGH})  # the budget is intact
        await shadow.wait()
    finally:
        await router.close()
    assert shadow.checks[("w", "device", "cloud", "agree")] == 1
    assert len(cloud.seen) == 1
    assert shadow.cost_usd == {("w", "cloud"): pytest.approx(1e-5)}
