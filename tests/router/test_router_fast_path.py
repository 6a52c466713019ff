"""The router's own cost on the local path, and what it still does there: routes reused
until a breaker, a health or thermal flag or the budget changes them; no task, timer or
trace made for a request answered in process unless something needs it; a local model
that waits is still held to its time limit; deadlines reach remote tiers."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from onnx_models import scale_model
from outbox_helpers import FakeClock
from scripted_tiers import HIGH, LOW, Scripted, plan
from tierwise.errors import DeadlineExceededError, TierUnavailableError
from tierwise.escalation.rules import MaxProbability
from tierwise.protocol import InferRequest
from tierwise.router import answer as answer_module
from tierwise.router.bounded import bounded
from tierwise.router.health import BreakerSettings
from tierwise.router.policy import Policy
from tierwise.router.router import Router, Stage
from tierwise.router.settings import RouterSettings
from tierwise.router.tiers import LocalTier, Tier
from tierwise.router.types import RequestMeta, Route, TierState
from tierwise.runtime import OnnxBackend, OnnxSettings
from tierwise.telemetry.sampling import JsonlSink, Sampler


class CountingPolicy(Policy):
    """The plan's policy, counting the routes it computes."""

    computed = 0

    def route(
        self,
        meta: RequestMeta,
        *,
        now_s: float,
        tiers: Mapping[str, TierState],
        spent_usd: Mapping[str, float],
    ) -> Route:
        self.computed += 1
        return super().route(meta, now_s=now_s, tiers=tiers, spent_usd=spent_usd)


class SlowBackend(OnnxBackend):
    """A real model that first waits ``delay_s`` (a queue, a busy accelerator)."""

    delay_s = 0.0

    async def predict(
        self, inputs: Mapping[str, np.ndarray], outputs: Sequence[str]
    ) -> dict[str, np.ndarray]:
        if self.delay_s:
            await asyncio.sleep(self.delay_s)
        return await super().predict(inputs, outputs)


@pytest.fixture(scope="module")
def model(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return scale_model(tmp_path_factory.mktemp("identity") / "model.onnx", 1.0)


@pytest.fixture
async def device(model: Path) -> AsyncIterator[LocalTier]:
    backend = SlowBackend("identity", model, OnnxSettings(executor="inline"))
    await backend.load()
    yield LocalTier("device", backend, timeout_s=0.2)
    await backend.unload()


def build(
    model: Path,
    device: Tier,
    edge: Tier,
    cloud: Tier,
    *,
    clock: FakeClock | None = None,
    sampler: Sampler | None = None,
) -> tuple[Router, CountingPolicy]:
    the_plan = plan(model)
    rule = MaxProbability(output="y")
    stages = {
        name: [
            Stage(s.tier, the_plan.tiers[s.tier].cost_usd_per_inference,
                  rule if s.rule else None, s.threshold)
            for s in workload.cascade
        ]
        for name, workload in the_plan.workloads.items()
    }  # fmt: skip
    policy = CountingPolicy(the_plan)
    tiers = {"device": device, "edge": edge, "cloud": cloud}
    settings = RouterSettings(breaker=BreakerSettings(consecutive_failures=1, open_s=5.0))
    router = Router(policy, tiers, stages, settings, clock=clock or time.monotonic, sampler=sampler)
    return router, policy


def request(x: np.ndarray = LOW) -> InferRequest:
    return InferRequest(inputs={"x": x})


async def test_routes_are_reused_until_the_state_changes(model: Path, device: LocalTier) -> None:
    clock = FakeClock()
    cloud = Scripted("cloud", "cloud", error=lambda: TierUnavailableError("503", tier="cloud"))
    router, policy = build(model, device, Scripted("edge", "edge"), cloud, clock=clock)
    for _ in range(20):
        await router.infer(request(HIGH), RequestMeta("w"))
    assert policy.computed == 1

    first = await router.infer(request(LOW), RequestMeta("w"))  # the cloud fails: breaker
    assert first.degraded_reason == "error"
    assert policy.computed == 1
    skipped = await router.infer(request(LOW), RequestMeta("w"))
    assert policy.computed == 2  # the open breaker changed the route
    assert skipped.degraded_reason == "breaker_open"
    assert "cloud" not in skipped.trace.route
    await router.infer(request(LOW), RequestMeta("w"))
    assert policy.computed == 2

    clock.now_s += 5.0  # due for a probe: the cloud is back in the route
    probe = await router.infer(request(LOW), RequestMeta("w"))
    assert policy.computed == 3
    assert "cloud" in probe.trace.route
    assert probe.degraded_reason == "error"  # the probe failed: open again
    await router.infer(request(LOW), RequestMeta("w"))
    assert policy.computed == 4

    router.thermal_offload["edge"] = False  # no change: nothing recomputed
    await router.infer(request(HIGH), RequestMeta("w"))
    assert policy.computed == 4
    router.thermal_offload["edge"] = True
    hot = await router.infer(request(LOW), RequestMeta("w"))
    assert policy.computed == 5
    assert hot.trace.route == ("device",)
    assert hot.degraded_reason == "thermal_offload"  # the first stage after the device


async def test_routes_that_depend_on_the_clock_are_not_reused(
    model: Path, device: LocalTier
) -> None:
    router, policy = build(model, device, Scripted("edge", "edge"), Scripted("cloud", "cloud"))
    for _ in range(3):
        meta = RequestMeta("w", deadline_ms=5_000, received_s=time.time())
        await router.infer(request(HIGH), meta)
    assert policy.computed == 3
    # budget 0 is spent from the start: the same cached route every time
    for _ in range(3):
        answer = await router.infer(request(LOW), RequestMeta("capped"))
        assert answer.degraded_reason == "budget"
    assert policy.computed == 4


class _LoopSpy:
    def __init__(self, loop: asyncio.AbstractEventLoop) -> None:
        self.tasks = 0
        self.timers = 0
        self.callbacks: list[str] = []
        self._loop = loop
        self._create_task = loop.create_task
        self._call_at = loop.call_at

    def create_task(self, *args: Any, **kwargs: Any) -> Any:
        self.tasks += 1
        return self._create_task(*args, **kwargs)

    def call_at(self, when: float, callback: Any, *args: Any, **kwargs: Any) -> Any:
        self.timers += 1
        self.callbacks.append(getattr(callback, "__qualname__", repr(callback)))
        return self._call_at(when, callback, *args, **kwargs)


@pytest.fixture
async def spy(monkeypatch: pytest.MonkeyPatch) -> _LoopSpy:
    loop = asyncio.get_running_loop()
    found = _LoopSpy(loop)
    monkeypatch.setattr(loop, "create_task", found.create_task)
    monkeypatch.setattr(loop, "call_at", found.call_at)
    return found


@pytest.fixture
def traces(monkeypatch: pytest.MonkeyPatch) -> list[object]:
    built: list[object] = []
    real = answer_module.Trace

    def counted(*args: Any, **kwargs: Any) -> object:
        built.append(real(*args, **kwargs))
        return built[-1]

    monkeypatch.setattr(answer_module, "Trace", counted)
    return built


async def test_the_local_path_makes_no_task_timer_or_trace(
    model: Path, device: LocalTier, spy: _LoopSpy, traces: list[object]
) -> None:
    router, _ = build(model, device, Scripted("edge", "edge"), Scripted("cloud", "cloud"))
    before = (spy.tasks, spy.timers)  # pytest-asyncio made the test's own task
    answers = [await router.infer(request(HIGH), RequestMeta("w")) for _ in range(50)]
    assert {a.answered_by for a in answers} == {"device"}
    assert (spy.tasks, spy.timers, len(traces)) == (*before, 0)
    assert answers[0].response is not None
    assert answers[0].response.parameters == {"tier": "device", "degraded": False}
    trace = answers[0].trace  # made when read, once, with what the router did
    assert len(traces) == 1
    assert answers[0].trace is trace
    assert [(a.tier, a.outcome) for a in trace.attempts] == [("device", "answered")]
    assert trace.attempts[0].confidence == pytest.approx(0.95)
    assert trace.trace_id == answers[0].trace_id
    assert len({a.trace_id for a in answers}) == 50


@pytest.mark.parametrize(("rate", "built"), [(1.0, 6), (0.0, 0)])
async def test_traces_are_made_when_sampling_keeps_the_request(
    model: Path, device: LocalTier, tmp_path: Path, traces: list[object], rate: float, built: int
) -> None:
    import random

    sink = JsonlSink(tmp_path / "samples.jsonl", max_bytes=1_000_000)
    sampler = Sampler({"w": rate}, sink=sink, rng=random.Random(0))
    router, _ = build(
        model, device, Scripted("edge", "edge"), Scripted("cloud", "cloud"), sampler=sampler
    )
    for x in (HIGH, LOW) * 3:
        await router.infer(request(x), RequestMeta("w"))
    sink.close()
    assert len(traces) == built
    samples = JsonlSink.read(tmp_path / "samples.jsonl")
    assert len(samples) == built
    assert sampler.offered == 6
    for sample in samples:
        assert len(sample["trace"]["trace_id"]) == 16
        assert sample["trace"]["answered_by"] in ("device", "cloud")


async def test_a_local_model_that_waits_is_held_to_the_time_left(
    model: Path, device: LocalTier, spy: _LoopSpy
) -> None:
    """With a deadline, the local call goes through LocalTier.infer: a model that waits
    (a worker thread, a queue) gets a timer for the time left, and is given up on."""
    router, _ = build(model, device, Scripted("edge", "edge", y=HIGH), Scripted("cloud", "cloud"))
    assert isinstance(device.backend, SlowBackend)
    device.backend.delay_s = 0.01  # waits, but well within the limits: answers
    answer = await router.infer(
        request(HIGH), RequestMeta("w", deadline_ms=5_000.0, received_s=time.time())
    )
    assert answer.answered_by == "device"
    assert "_Bounded._expire" in spy.callbacks  # the limit is armed once the model waits

    device.backend.delay_s = 5.0
    started = asyncio.get_running_loop().time()
    meta = RequestMeta("w", deadline_ms=5_000.0, received_s=time.time())
    answer = await router.infer(request(HIGH), meta)
    assert asyncio.get_running_loop().time() - started < 1.0  # the tier's 200 ms limit
    assert answer.answered_by == "edge"  # the next stage answered in its place
    first = answer.trace.attempts[0]
    assert (first.tier, first.outcome, first.cause) == ("device", "timeout", "timeout")
    assert first.reason == "no answer within 200 ms"


async def test_bounded_passes_results_errors_and_outside_cancellation() -> None:
    async def at_once() -> int:
        return 7

    async def later(value: int) -> int:
        await asyncio.sleep(0.01)
        return value

    async def fails() -> int:
        await asyncio.sleep(0)
        raise ValueError("boom")

    assert await bounded(at_once(), 0.1) == 7
    assert await bounded(later(8), 1.0) == 8
    with pytest.raises(ValueError, match="boom"):
        await bounded(fails(), 1.0)
    with pytest.raises(TimeoutError):
        await bounded(later(9), 0.001)
    waiting = asyncio.ensure_future(bounded(later(10), 5.0))
    await asyncio.sleep(0)
    waiting.cancel()
    with pytest.raises(asyncio.CancelledError):
        await waiting  # cancelled from outside: not turned into a timeout


async def test_the_deadline_reaches_remote_tiers_as_a_v2_timeout(
    model: Path, device: LocalTier
) -> None:
    edge, cloud = Scripted("edge", "edge"), Scripted("cloud", "cloud")
    router, _ = build(model, device, edge, cloud)
    await router.infer(request(LOW), RequestMeta("w"))
    await router.infer(request(LOW), RequestMeta("w", deadline_ms=500, received_s=time.time()))
    await router.infer(
        InferRequest(inputs={"x": LOW}, parameters={"timeout": 900_000, "k": 1}),
        RequestMeta("w", deadline_ms=300, received_s=time.time()),
    )
    assert [s.get("timeout") for s in edge.seen[:1]] == [None]  # no deadline: none added
    for seen, bound in zip(edge.seen[1:], (500_000, 300_000), strict=True):
        assert 0 < seen["timeout"] <= bound  # the time left, never more
    assert edge.seen[2]["k"] == 1
    assert cloud.seen[2]["timeout"] <= edge.seen[2]["timeout"]  # tighter as time passes


async def test_no_answer_before_the_deadline_is_a_408(model: Path, device: LocalTier) -> None:
    slow = Scripted("edge", "edge", delay_s=0.05)
    router, _ = build(model, device, slow, Scripted("cloud", "cloud"))
    device.backend.delay_s = 0.0
    meta = RequestMeta("near", deadline_ms=30, received_s=time.time())
    router.thermal_offload["device"] = True  # the device goes last: edge first
    with pytest.raises(DeadlineExceededError) as info:
        await router.infer(request(LOW), meta)
    assert info.value.status_code == 408
    assert len(slow.seen) == 1  # asked, timed out at the deadline; the device never was
    assert "timeout" in slow.seen[0]
