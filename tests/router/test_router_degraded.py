"""Answers that miss the workload's bar say so, table-driven over every cause.

The device tier runs a real ONNX model in process (``y = x``, from ``onnx_models``, not the
digits zoo) whose confidence the test sets through its input; the edge and the cloud are
scripted tiers, or a real endpoint where the failure is a real one (a refused connection).
An answer is degraded when a stage the cascade would have asked was skipped or failed and
the answering stage's rule did not accept it; the response parameters, the trace and the
router's fallback counter all name the cause.
"""

from __future__ import annotations

import time
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pytest

from onnx_models import scale_model
from scripted_tiers import HIGH, LOW, THRESHOLD, Scripted, plan
from server_helpers import free_port
from tierwise.errors import TierError, TierTimeoutError, TierUnavailableError
from tierwise.escalation.rules import MaxProbability
from tierwise.planfile.schema import Plan
from tierwise.protocol import InferRequest
from tierwise.router.health import BreakerSettings
from tierwise.router.policy import Policy
from tierwise.router.router import Router, Stage
from tierwise.router.settings import RouterSettings
from tierwise.router.tiers import LocalTier, RemoteTier, Tier
from tierwise.router.types import RequestMeta
from tierwise.runtime import OnnxBackend


def router_for(the_plan: Plan, device: Tier, edge: Tier, cloud: Tier) -> Router:
    rule = MaxProbability(output="y")
    stages = {
        name: [
            Stage(
                s.tier,
                the_plan.tiers[s.tier].cost_usd_per_inference,
                rule if s.rule is not None else None,
                s.threshold,
            )
            for s in workload.cascade
        ]
        for name, workload in the_plan.workloads.items()
    }
    # a plan's last stage has no rule; the Router API allows one (a bar nothing follows)
    stages["strict"][-1] = Stage("cloud", 1e-5, rule, 0.99)
    breaker = BreakerSettings(consecutive_failures=2, open_s=60.0)
    tiers = {"device": device, "edge": edge, "cloud": cloud}
    return Router(Policy(the_plan), tiers, stages, RouterSettings(breaker=breaker))


@pytest.fixture(scope="module")
def model(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return scale_model(tmp_path_factory.mktemp("identity") / "model.onnx", 1.0)


@pytest.fixture
async def device(model: Path) -> AsyncIterator[LocalTier]:
    backend = OnnxBackend("identity", model)
    await backend.load()
    yield LocalTier("device", backend)
    await backend.unload()


@dataclass
class Case:
    """One situation: how the tiers behave, what the request is, and what should come
    back (``cause`` None: an ordinary answer)."""

    workload: str
    tier: str
    cause: str | None
    x: np.ndarray = field(default_factory=lambda: LOW)
    cloud_error: Callable[[], TierError] | None = None
    cloud_url: str | None = None  # a real RemoteTier at this address
    edge_delay_s: float = 0.0
    edge_late: bool = False
    deadline_ms: float | None = None
    setup: Callable[[Router], None] = lambda router: None
    by_policy: bool = False  # the policy left the tier out (else the router tried it)
    skipped: str = "cloud"  # the stage that was not asked or gave no answer


def _open_breaker(router: Router) -> None:
    breaker = router.breakers["cloud"]
    while breaker.record_failure() is False:
        pass


def _unhealthy(router: Router) -> None:
    router.healthy["cloud"] = False


def _hot_edge(router: Router) -> None:
    router.thermal_offload["edge"] = True


CASES = {
    "breaker open": Case("w", "edge", "breaker_open", setup=_open_breaker, by_policy=True),
    "unhealthy": Case("w", "edge", "unhealthy", setup=_unhealthy, by_policy=True),
    "thermal offload": Case(
        "near", "device", "thermal_offload", setup=_hot_edge, by_policy=True, skipped="edge"
    ),
    "budget spent": Case("capped", "edge", "budget", by_policy=True),
    "no time for the cloud": Case("w", "edge", "deadline", deadline_ms=12.0, by_policy=True),
    "deadline passed on the way": Case(
        "w", "edge", "deadline", deadline_ms=60.0, edge_delay_s=0.08, edge_late=True
    ),
    "edge timed out at the deadline": Case(
        "w", "device", "timeout", deadline_ms=60.0, edge_delay_s=0.08, skipped="edge"
    ),
    "timed out": Case(
        "w", "edge", "timeout", cloud_error=lambda: TierTimeoutError(tier="cloud", timeout_s=2)
    ),
    "partitioned": Case("w", "edge", "partition", cloud_url="dead"),
    "server error": Case(
        "w", "edge", "error", cloud_error=lambda: TierUnavailableError("HTTP 500", tier="cloud")
    ),
    # not degraded: the rule accepted, the request's privacy never allowed the tier, or
    # the last stage's own rule refused with nothing left to ask
    "device sure, cloud down": Case("w", "device", None, x=HIGH, setup=_open_breaker),
    "privacy keeps it on the device": Case("private", "device", None),
    "last stage below its own bar": Case("strict", "cloud", None),
}


@pytest.mark.parametrize("case", CASES.values(), ids=list(CASES))
async def test_degraded_names_its_cause(
    case: Case, device: LocalTier, model: Path, tmp_path: Path
) -> None:
    edge = Scripted("edge", "edge", delay_s=case.edge_delay_s, late=case.edge_late)
    cloud: Tier = Scripted("cloud", "cloud", error=case.cloud_error)
    if case.cloud_url is not None:
        cloud = RemoteTier("cloud", f"http://127.0.0.1:{free_port()}", "m", binary=False)
    router = router_for(plan(model), device, edge, cloud)
    case.setup(router)
    meta = RequestMeta(case.workload, deadline_ms=case.deadline_ms, received_s=time.time())
    answer = await router.infer(InferRequest(inputs={"x": case.x}), meta)
    await cloud.close()

    assert answer.answered_by == case.tier
    assert answer.degraded is (case.cause is not None)
    assert answer.degraded_reason == case.cause
    assert answer.response is not None
    params = answer.response.parameters
    assert params["tier"] == case.tier
    assert params["degraded"] is (case.cause is not None)
    assert params.get("degraded_reason") == case.cause
    trace = answer.trace
    assert trace.degraded is answer.degraded
    assert trace.degraded_reason == case.cause
    if case.cause is None:
        assert router.fallbacks == {}
        assert not trace.reason.startswith("degraded")
        return
    assert router.fallbacks == {(case.workload, case.tier, case.cause): 1}
    assert trace.reason.startswith(f"degraded ({case.cause}): {case.skipped} ")
    assert f"the answer of {case.tier} (confidence " in trace.reason
    marked = [a for a in trace.attempts if a.cause == case.cause]
    assert [a.tier for a in marked] == [case.skipped]
    outcomes = ("skipped",) if case.by_policy else ("skipped", "timeout", "error")
    assert marked[0].outcome in outcomes
    answered = [a for a in trace.attempts if a.tier == case.tier and a.confidence is not None]
    assert answered
    assert answered[-1].confidence is not None
    assert answered[-1].confidence < THRESHOLD


async def test_an_accepted_answer_is_not_degraded_though_later_stages_are_down(
    device: LocalTier, model: Path
) -> None:
    edge = Scripted("edge", "edge", y=HIGH)  # the edge settles what the device cannot
    cloud = Scripted("cloud", "cloud", error=lambda: TierUnavailableError("down", tier="cloud"))
    router = router_for(plan(model), device, edge, cloud)
    _open_breaker(router)
    answer = await router.infer(InferRequest(inputs={"x": LOW}), RequestMeta("w"))
    assert answer.answered_by == "edge"
    assert not answer.degraded
    assert router.fallbacks == {}


async def test_fallback_counts_agree_with_the_answers(device: LocalTier, model: Path) -> None:
    """The cloud fails, its breaker opens (2 failures), then the policy skips it: every
    answer below the edge's bar is degraded, first for the failure, then for the breaker,
    and the counter holds exactly what the answers said."""
    edge = Scripted("edge", "edge")
    cloud = Scripted("cloud", "cloud", error=lambda: TierUnavailableError("HTTP 503", tier="cloud"))
    router = router_for(plan(model), device, edge, cloud)
    said: dict[tuple[str, str, str], int] = {}
    inputs = [LOW, HIGH, LOW, LOW, HIGH, LOW]
    for x in inputs:
        answer = await router.infer(InferRequest(inputs={"x": x}), RequestMeta("w"))
        if answer.degraded:
            key = ("w", answer.answered_by or "", answer.degraded_reason or "")
            said[key] = said.get(key, 0) + 1
        else:
            assert answer.answered_by == "device"
    assert said == {("w", "edge", "error"): 2, ("w", "edge", "breaker_open"): 2}
    assert router.fallbacks == said
    assert len(cloud.seen) == 2  # asked until its breaker opened, then left out
