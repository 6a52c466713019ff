"""The router: executes a policy's route, tier by tier.

It calls the first tier of the route; when the answer's confidence (by the stage's
escalation rule) is under the stage's threshold it escalates to the next tier; on an
error, a timeout or an open breaker it falls back to the next tier; when none is left it
answers with the best answer it already has, marked degraded. Deferrable requests the
policy holds back go to the outbox. Every request gets a :class:`Trace`.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import time
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Protocol

import numpy as np

from tierwise.errors import (
    ConfigError,
    NoRouteError,
    TierError,
    TierRejectedError,
)
from tierwise.protocol import InferRequest, InferResponse
from tierwise.router.health import BreakerSettings, CircuitBreaker, LatencyWindow
from tierwise.router.sampling import Sampler
from tierwise.router.tiers import LocalTier, Tier
from tierwise.router.trace import Attempt, Trace, new_trace_id
from tierwise.router.types import RequestMeta, Route, TierState

__all__ = ["ConfidenceRule", "RoutePolicy", "RoutedAnswer", "Router", "SpendLedger", "Stage"]


class ConfidenceRule(Protocol):
    """What the router needs of an escalation rule: one confidence per row in [0, 1]."""

    def confidence(self, outputs: Mapping[str, np.ndarray]) -> np.ndarray: ...


class RoutePolicy(Protocol):
    """What the router needs of a policy (pure; see ``tierwise.router.policy``)."""

    def route(
        self,
        meta: RequestMeta,
        *,
        now_s: float,
        tiers: Mapping[str, TierState],
        spent_usd: Mapping[str, float],
    ) -> Route: ...


@dataclass(frozen=True, slots=True)
class Stage:
    """One step of a workload's cascade: escalate past it when the answer's confidence is
    under ``threshold`` (no rule: whatever it answers is final)."""

    tier: str
    cost_usd_per_inference: float = 0.0
    rule: ConfidenceRule | None = None
    threshold: float | None = None


class SpendLedger:
    """Money spent per workload in its current budget period (periods aligned to the
    epoch, so a daily budget resets at midnight UTC)."""

    def __init__(
        self, periods_s: Mapping[str, float] | None = None, *, default_period_s: float = 86_400.0
    ) -> None:
        for name, period in {**(periods_s or {}), "default": default_period_s}.items():
            if period <= 0:
                raise ConfigError(f"periods_s.{name}", "> 0", period)
        self._periods = dict(periods_s or {})
        self._default = default_period_s
        self._spent: dict[str, tuple[int, float]] = {}

    def _period(self, workload: str, now_s: float) -> int:
        return int(now_s // self._periods.get(workload, self._default))

    def spent(self, now_s: float) -> dict[str, float]:
        """Spend per workload in the period that contains ``now_s``."""
        return {
            w: usd for w, (period, usd) in self._spent.items() if period == self._period(w, now_s)
        }

    def add(self, workload: str, usd: float, now_s: float) -> None:
        period = self._period(workload, now_s)
        last, total = self._spent.get(workload, (period, 0.0))
        self._spent[workload] = (period, (total if last == period else 0.0) + usd)


@dataclass(slots=True)
class RoutedAnswer:
    """The router's result: the response (with ``tier``, ``degraded`` and ``trace_id`` in
    its parameters) or, for a deferred request, the outbox item id."""

    trace: Trace
    response: InferResponse | None = None
    deferred_id: str | None = None


Defer = Callable[[InferRequest, RequestMeta, Route], Awaitable[str]]
Answer = tuple[InferResponse, float, "Attempt"]


class Router:
    """Runs requests through the tiers the policy allows, in cascade order."""

    def __init__(
        self,
        policy: RoutePolicy,
        tiers: Mapping[str, Tier],
        stages: Mapping[str, Sequence[Stage]],
        *,
        breaker: BreakerSettings | None = None,
        defer: Defer | None = None,
        ledger: SpendLedger | None = None,
        sampler: Sampler | None = None,
        privacy_of: Callable[[RequestMeta], str] | None = None,
        urgency_of: Callable[[RequestMeta], str] | None = None,
        hedge_after_ms: float | None = None,
        clock: Callable[[], float] = time.monotonic,
        wall_clock: Callable[[], float] = time.time,
    ) -> None:
        for workload, cascade in stages.items():
            for stage in cascade:
                if stage.tier not in tiers:
                    raise ConfigError(
                        f"stages.{workload}", f"tiers among {sorted(tiers)}", stage.tier
                    )
        self.policy = policy
        self.tiers = dict(tiers)
        self.stages = {w: {s.tier: s for s in cascade} for w, cascade in stages.items()}
        self.ledger = ledger or SpendLedger()
        if hedge_after_ms is not None and hedge_after_ms <= 0:
            raise ConfigError("hedge_after_ms", "> 0", hedge_after_ms)
        self.hedge_after_ms = hedge_after_ms
        self.sampler = sampler
        self._privacy_of = privacy_of
        self._urgency_of = urgency_of
        self._defer = defer
        self._clock = clock
        self._wall = wall_clock
        self.breakers = {
            name: CircuitBreaker(breaker, clock=clock) for name, t in tiers.items() if t.remote
        }
        self.latency = {name: LatencyWindow() for name in tiers}
        self.thermal_offload: dict[str, bool] = {}

    def set_defer(self, defer: Defer | None) -> None:
        """Where deferred requests go (the gateway's outbox); None answers them now."""
        self._defer = defer

    def tier_states(self) -> dict[str, TierState]:
        """What the policy sees: breaker state, observed p99, thermal flags."""
        states = {}
        for name in self.tiers:
            breaker = self.breakers.get(name)
            states[name] = TierState(
                name=name,
                breaker_open=breaker.is_open if breaker is not None else False,
                p99_ms=self.latency[name].p99_ms,
                thermal_offload=self.thermal_offload.get(name, False),
            )
        return states

    async def start(self) -> None:
        """Load the in-process models of local tiers (and warm them up)."""
        for tier in self.tiers.values():
            if isinstance(tier, LocalTier) and not tier.backend.loaded:
                await tier.backend.load()

    async def infer(
        self, request: InferRequest, meta: RequestMeta, *, allow_defer: bool = True
    ) -> RoutedAnswer:
        """Route one request. ``allow_defer=False`` runs it now even if the policy would
        hold it back (the outbox's own deliveries)."""
        started = self._clock()
        now_s = self._wall()
        route = self.policy.route(
            meta, now_s=now_s, tiers=self.tier_states(), spent_usd=self.ledger.spent(now_s)
        )
        trace = Trace(trace_id=new_trace_id(), workload=meta.workload, route=route.tiers)
        if route.defer_until_s is not None and self._defer is not None and allow_defer:
            item = await self._defer(request, meta, route)
            trace.attempts.append(Attempt("outbox", "deferred", route.defer_reason or "deferred"))
            trace.reason = route.defer_reason or "deferred"
            return RoutedAnswer(trace=trace, deferred_id=item)
        cascade = self.stages.get(meta.workload, {})
        best: tuple[InferResponse, str] | None = None
        deadline_s = None
        if meta.deadline_ms is not None:
            waited_s = now_s - meta.received_s if meta.received_s else 0.0
            deadline_s = started + meta.deadline_ms / 1000.0 - waited_s
        hedge = self.hedge_after_ms is not None and self._is_interactive(meta)
        index = 0
        while index < len(route.tiers):
            name = route.tiers[index]
            following = route.tiers[index + 1] if index + 1 < len(route.tiers) else None
            call = functools.partial(
                self._try, request=request, trace=trace, deadline_s=deadline_s, now_s=now_s,
                workload=meta.workload,
            )  # fmt: skip
            if hedge and following is not None and self._remote(name, following):
                answer = await self._hedged(name, following, cascade, call, trace)
            else:
                answer = await call(name, cascade.get(name, Stage(name)))
            if answer is None:
                index += 1
                continue
            response, confidence, attempt = answer
            name = attempt.tier
            index = route.tiers.index(name)
            stage = cascade.get(name, Stage(name))
            best = (response, name)
            if (
                index == len(route.tiers) - 1
                or stage.rule is None
                or stage.threshold is None
                or confidence >= stage.threshold
            ):
                return self._finish(trace, response, name, route.degraded, started, request, meta)
            attempt.outcome = "escalated"
            attempt.reason = f"confidence {confidence:.3f} < threshold {stage.threshold:.3f}"
            index += 1
        if best is not None:
            response, name = best
            reason = "no later tier could answer; best earlier answer returned"
            return self._finish(trace, response, name, reason, started, request, meta)
        raise NoRouteError(meta.workload, [f"{a.tier}: {a.reason}" for a in trace.attempts])

    async def _try(
        self,
        name: str,
        stage: Stage,
        request: InferRequest,
        trace: Trace,
        deadline_s: float | None,
        now_s: float,
        workload: str,
    ) -> tuple[InferResponse, float, Attempt] | None:
        tier = self.tiers[name]
        breaker = self.breakers.get(name)
        if breaker is not None and not breaker.allow():
            trace.attempts.append(Attempt(name, "skipped", "breaker open"))
            return None
        timeout_s = tier.timeout_s
        if deadline_s is not None:
            timeout_s = min(timeout_s, deadline_s - self._clock())
            if timeout_s <= 0:
                trace.attempts.append(Attempt(name, "skipped", "deadline passed"))
                return None
        t0 = self._clock()
        try:
            response = await tier.infer(request, timeout_s=timeout_s)
        except TierRejectedError:
            raise  # the request itself is wrong; another tier would say the same
        except TierError as exc:
            if breaker is not None:
                breaker.record_failure()
            elapsed_ms = (self._clock() - t0) * 1000.0
            timed_out = exc.status_code == 504
            trace.attempts.append(
                Attempt(name, "timeout" if timed_out else "error", exc.reason, elapsed_ms)
            )
            return None
        latency_ms = (self._clock() - t0) * 1000.0
        if breaker is not None:
            breaker.record_success()
        self.latency[name].add(latency_ms)
        self.ledger.add(workload, stage.cost_usd_per_inference, now_s)
        confidence = 1.0
        if stage.rule is not None:
            scores = stage.rule.confidence(response.outputs)
            confidence = float(np.min(scores)) if scores.size else 0.0
        attempt = Attempt(
            name, "answered", "answered", latency_ms, stage.cost_usd_per_inference, confidence
        )
        trace.attempts.append(attempt)
        return response, confidence, attempt

    def _remote(self, *names: str) -> bool:
        return all(self.tiers[n].remote for n in names)

    def _is_interactive(self, meta: RequestMeta) -> bool:
        if meta.urgency is not None:
            return meta.urgency == "interactive"
        return self._urgency_of is None or self._urgency_of(meta) == "interactive"

    async def _hedged(
        self,
        name: str,
        backup: str,
        cascade: Mapping[str, Stage],
        call: Callable[[str, Stage], Awaitable[Answer | None]],
        trace: Trace,
    ) -> Answer | None:
        """Call ``name``; if it has not answered within ``hedge_after_ms``, call ``backup``
        (the next remote tier) too and take whichever answers first."""
        assert self.hedge_after_ms is not None  # checked by the caller; not input
        first = asyncio.ensure_future(call(name, cascade.get(name, Stage(name))))
        done, _ = await asyncio.wait({first}, timeout=self.hedge_after_ms / 1000.0)
        if done:
            return first.result()
        second = asyncio.ensure_future(call(backup, cascade.get(backup, Stage(backup))))
        pending = {first, second}
        winner: Answer | None = None
        while pending and winner is None:
            done, pending = await asyncio.wait(pending, return_when=asyncio.FIRST_COMPLETED)
            for task in done:
                if winner is None and task.result() is not None:
                    winner = task.result()
        for task in pending:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
            loser = name if task is first else backup
            reason = "hedged: cancelled"
            if winner is not None:
                reason += f" once {winner[2].tier} answered"
            trace.attempts.append(Attempt(loser, "skipped", reason))
        return winner

    def _finish(
        self,
        trace: Trace,
        response: InferResponse,
        tier: str,
        degraded: str | None,
        started: float,
        request: InferRequest,
        meta: RequestMeta,
    ) -> RoutedAnswer:
        trace.answered_by = tier
        trace.degraded = degraded is not None
        trace.reason = degraded or "answered"
        trace.total_ms = (self._clock() - started) * 1000.0
        response.parameters = dict(response.parameters) | {
            "tier": tier,
            "degraded": trace.degraded,
            "trace_id": trace.trace_id,
        }
        routed = RoutedAnswer(trace=trace, response=response)
        self._sample(routed, request, meta)
        return routed

    def _sample(self, answer: RoutedAnswer, request: InferRequest, meta: RequestMeta) -> None:
        if self.sampler is None or answer.response is None:
            return
        privacy = self._privacy_of(meta) if self._privacy_of is not None else "sensitive"
        self.sampler.offer(answer.trace.to_dict(), request.inputs, answer.response.outputs, privacy)

    async def close(self) -> None:
        await asyncio.gather(*(tier.close() for tier in self.tiers.values()))
