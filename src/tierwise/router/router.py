"""The router: executes a policy's route, tier by tier.

It calls the first tier of the route; when the answer's confidence (by the stage's
escalation rule) is under the stage's threshold it escalates to the next tier; on an
error, a timeout or an open breaker it falls back to the next tier; when none is left it
answers with the best answer it already has. Such an answer is ``degraded`` when a stage
the cascade would have asked was skipped or failed (see :mod:`tierwise.router.fallback`),
and ``degraded_reason`` names the cause. Deferrable requests the policy holds back go to
the outbox.

On a device the router runs in front of every request, so the common case costs little:
routes are reused while the tiers' health flags stay as they are
(:mod:`tierwise.router.routes`), each workload's stages are resolved once, the trace id
and the :class:`Trace` are made only when read, and an in-process model (a plain
``LocalTier``) asked without a deadline is awaited right here, with no task, timer or
extra coroutine. Nothing could interrupt a model running on the event loop's thread; a
request with a deadline goes through ``LocalTier.infer``, which holds a model that waits
(a worker thread) to the time left.
"""

from __future__ import annotations

import asyncio
import math
import time
from collections.abc import Callable, Mapping, Sequence
from typing import TYPE_CHECKING

from tierwise.errors import (
    ConfigError,
    DeadlineExceededError,
    NoRouteError,
    TierError,
    TierRejectedError,
)
from tierwise.protocol import InferRequest, InferResponse
from tierwise.router.answer import AttemptRecord, RoutedAnswer, settle_response
from tierwise.router.fallback import failure_cause, settle
from tierwise.router.flags import TierFlags
from tierwise.router.health import CircuitBreaker, LatencyWindow
from tierwise.router.hedge import hedged
from tierwise.router.ledger import SpendLedger
from tierwise.router.metrics import RouterMetrics, rule_name
from tierwise.router.routes import RouteCache, observed_states, tiers_after
from tierwise.router.score_outputs import answer_confidence, check_stages, stage_failure
from tierwise.router.settings import RouterSettings
from tierwise.router.stages import Answer, ConfidenceRule, Defer, RoutePolicy, Stage, Step
from tierwise.router.tiers import LocalTier, Tier
from tierwise.router.types import Cause, RequestMeta, Route, TierState
from tierwise.telemetry.sampling import Sampler

if TYPE_CHECKING:
    import numpy as np

    from tierwise.router.shadow import Shadow
    from tierwise.router.stages import Deferrable, Effective

__all__ = ["ConfidenceRule", "Defer", "RoutePolicy", "RoutedAnswer", "Router", "SpendLedger",
           "Stage"]  # fmt: skip


class Router:
    """Runs requests through the tiers the policy allows, in cascade order.

    ``settings`` holds the tunables (hedging, breakers, latency window). A policy that
    offers ``effective(meta)`` (as :class:`~tierwise.router.policy.Policy` does) says each
    request's privacy and urgency: what a sampled trace may keep, and whether a request is
    interactive enough to hedge; without it every request is ``sensitive`` and
    interactive. ``thermal_offload`` and ``healthy`` are per-tier flags the owner sets (an
    edge node's thermal guard, a health probe); with the breakers they are what the policy
    sees. ``fallbacks`` counts degraded answers by (workload, answering tier, cause);
    ``metrics`` counts every request (:mod:`tierwise.router.metrics`; ``slo_s`` holds
    each workload's p99 target in seconds); ``shadow``, when set, re-evaluates a share of
    the lower tiers' answers (:mod:`tierwise.router.shadow`).
    """

    def __init__(
        self,
        policy: RoutePolicy,
        tiers: Mapping[str, Tier],
        stages: Mapping[str, Sequence[Stage]],
        settings: RouterSettings | None = None,
        *,
        defer: Defer | None = None,
        ledger: SpendLedger | None = None,
        sampler: Sampler | None = None,
        clock: Callable[[], float] = time.monotonic,
        wall_clock: Callable[[], float] = time.time,
        slo_s: Mapping[str, float] | None = None,
    ) -> None:
        for workload, cascade in stages.items():
            for stage in cascade:
                if stage.tier not in tiers:
                    raise ConfigError(
                        f"stages.{workload}", f"tiers among {sorted(tiers)}", stage.tier
                    )
        settings = settings or RouterSettings()
        self.settings = settings
        self.policy = policy
        self.tiers = dict(tiers)
        self.stages = {w: {s.tier: s for s in cascade} for w, cascade in stages.items()}
        self.ledger = ledger or SpendLedger()
        self.hedge_after_ms = settings.hedge_after_ms
        self.sampler = sampler
        self._effective: Callable[[RequestMeta], Effective] | None = getattr(
            policy, "effective", None
        )
        self.set_defer(defer)
        self._clock = clock
        self._wall = wall_clock
        self.breakers = {
            name: CircuitBreaker(settings.breaker, clock=clock)
            for name, t in tiers.items()
            if t.remote
        }
        self.latency = {name: LatencyWindow(settings.latency_window_samples) for name in tiers}
        self._routes = RouteCache(policy, self.ledger, self.breakers, self.tier_states)
        self.thermal_offload = TierFlags(default=False, on_change=self._routes.reset)
        self.healthy = TierFlags(default=True, on_change=self._routes.reset)
        self.fallbacks: dict[tuple[str, str, str], int] = {}
        self.metrics = RouterMetrics(
            {w: [(s.tier, rule_name(s.rule)) for s in c] for w, c in stages.items()}, slo_s
        )
        self.shadow: Shadow | None = None
        self._cascades = {w: tuple(cascade) for w, cascade in self.stages.items()}
        self._steps = {
            w: {s.tier: self._new_step(w, s, i) for i, s in enumerate(cascade)}
            for w, cascade in stages.items()
        }

    def set_defer(self, defer: Defer | None, deferrable: Deferrable | None = None) -> None:
        """Where deferred requests go (the gateway's outbox); None answers them now.
        ``deferrable``: whether a request no tier could take waits there too."""
        self._defer = defer
        self._deferrable = deferrable

    def tier_states(self) -> dict[str, TierState]:
        """What the policy sees: breaker state, health, observed p99, thermal flags."""
        return observed_states(
            self.tiers, self.breakers, self.healthy, self.latency, self.thermal_offload
        )

    async def start(self) -> None:
        """Load the in-process models of local tiers (and warm them up), then check each
        stage's score output against its tier's model: ConfigError names a stage whose
        output the model lacks or that holds no scores (:mod:`~.score_outputs`)."""
        for tier in self.tiers.values():
            if isinstance(tier, LocalTier) and not tier.backend.loaded:
                await tier.backend.load()
        await check_stages(s for steps in self._steps.values() for s in steps.values())

    def _new_step(self, workload: str, stage: Stage, position: int) -> Step:
        name = stage.tier
        return Step(
            workload, stage, position,
            tier=self.tiers[name], breaker=self.breakers.get(name), latency=self.latency[name],
        )  # fmt: skip

    def _extra_step(self, workload: str, tier: str) -> Step:
        """A tier the policy routed to outside the workload's cascade: later than all of it."""
        step = self._new_step(workload, Stage(tier), len(self._cascades.get(workload, ())))
        self._steps.setdefault(workload, {})[tier] = step
        return step

    # --- requests ----------------------------------------------------------------------

    async def infer(
        self, request: InferRequest, meta: RequestMeta, *, allow_defer: bool = True
    ) -> RoutedAnswer:
        """Route one request. ``allow_defer=False`` runs it now even if the policy would
        hold it back (the outbox's own deliveries)."""
        started = self._clock()
        now_s = self._wall()
        try:
            route = self._routes.get(meta, now_s, started)
        except DeadlineExceededError:  # the time since arrival (None: counted only)
            self.metrics.failed(meta.workload, "deadline", (), None, meta.waited_s(now_s))
            raise
        if route.defer_until_s is not None and self._defer is not None and allow_defer:
            return await self._queue(self._defer, request, meta, route, [], route.defer_reason)
        tiers = route.tiers
        if meta.escalated_from is not None:
            tiers = tiers_after(self._cascades.get(meta.workload, ()), meta, route)
        steps = self._steps.get(meta.workload) or self._steps.setdefault(meta.workload, {})
        attempts: list[AttemptRecord] = []
        best: Answer | None = None
        index = 0
        deadline_s = None
        if meta.deadline_ms is not None:
            waited_s = now_s - meta.received_s if meta.received_s else 0.0
            deadline_s = started + meta.deadline_ms / 1000.0 - waited_s
        elif (
            tiers
            and (first := steps.get(tiers[0])) is not None
            and first.local is not None
            and first.checked
            and not request.outputs
        ):
            # the common case on a device, written out: its own model, awaited right here
            backend = first.local.backend
            outputs = await backend.infer(request.inputs, None)
            latency_ms = (self._clock() - started) * 1000.0
            first.latency.add(latency_ms)
            if first.cost:
                self.ledger.add(meta.workload, first.cost, now_s)
            try:
                confidence = 1.0 if first.score is None else first.score(outputs)
            except ConfigError as exc:  # the plan's mistake: the next stage's turn
                reason = stage_failure(first, exc).reason
                attempts.append((first.name, "error", reason, latency_ms, 0.0, None, "error"))
            else:
                threshold = first.threshold
                if threshold is None or confidence >= threshold:
                    parameters = {"tier": first.name, "degraded": False}
                    response = InferResponse(backend.name, outputs, None, request.id, parameters)
                    attempts.append(
                        (first.name, "answered", "answered", latency_ms, first.cost, confidence,
                         None)
                    )  # fmt: skip
                    routed = RoutedAnswer(
                        meta.workload, tiers, attempts, response, first.name, None, "answered",
                        latency_ms,
                    )  # fmt: skip
                    return self._done(routed, request, meta, route, outputs)
                best = (first, InferResponse(backend.name, outputs, id=request.id), confidence,
                        latency_ms)  # fmt: skip
                if len(tiers) == 1:  # below the bar with nothing after it: _finish says why
                    attempts.append(
                        (first.name, "answered", "answered", latency_ms, first.cost, confidence,
                         None)
                    )  # fmt: skip
                    return self._finish(request, meta, route, attempts, best, started)
                why = f"confidence {confidence:.3f} < threshold {threshold:.3f}"
                attempts.append(
                    (first.name, "escalated", why, latency_ms, first.cost, confidence, None)
                )
            index = 1
        last = len(tiers) - 1
        hedge_after_ms = self.hedge_after_ms
        hedge = hedge_after_ms is not None and self._is_interactive(meta)
        while index <= last:
            step = steps.get(tiers[index]) or self._extra_step(meta.workload, tiers[index])
            notes: list[AttemptRecord] | None = None
            if hedge and index < last and step.remote and self.tiers[tiers[index + 1]].remote:
                backup = steps.get(tiers[index + 1]) or self._extra_step(
                    meta.workload, tiers[index + 1]
                )
                answer, notes = await hedged(
                    lambda s: self._try(s, request, deadline_s, now_s, attempts),
                    step, backup, (hedge_after_ms or 0.0) / 1000.0,
                    lambda tier: self.metrics.hedged(meta.workload, tier),
                )  # fmt: skip
                if answer is None:  # skip the backup too if it was asked (and failed)
                    index += 2 if any(a[0] == backup.name for a in attempts) else 1
                    attempts.extend(notes)
                    continue
                index = tiers.index(answer[0].name)
            else:
                answer = await self._try(step, request, deadline_s, now_s, attempts)
                if answer is None:
                    index += 1
                    continue
            step, _, confidence, latency_ms = answer
            threshold = step.threshold
            if threshold is None or confidence >= threshold or index == last:
                attempts.append(
                    (step.name, "answered", "answered", latency_ms, step.cost, confidence, None)
                )
                if notes:
                    attempts.extend(notes)
                return self._finish(request, meta, route, attempts, answer, started)
            why = f"confidence {confidence:.3f} < threshold {threshold:.3f}"
            attempts.append((step.name, "escalated", why, latency_ms, step.cost, confidence, None))
            if notes:
                attempts.extend(notes)
            best = answer
            index += 1
        if best is not None:
            return self._finish(request, meta, route, attempts, best, started)
        elapsed_s = self._clock() - started
        if deadline_s is not None and self._clock() >= deadline_s:
            self.metrics.failed(meta.workload, "deadline", attempts, route, elapsed_s)
            deadline_ms = meta.deadline_ms or 0.0
            raise DeadlineExceededError(
                model=meta.workload,
                timeout_us=math.ceil(deadline_ms * 1000.0),
                waited_ms=(self._clock() - deadline_s) * 1000.0 + deadline_ms,
                where="with no tier's answer",
            )
        if self._defer and allow_defer and self._deferrable and self._deferrable(meta):
            why = "no tier reachable now; queued until one is"
            return await self._queue(self._defer, request, meta, route, attempts, why)
        self.metrics.failed(meta.workload, "no_route", attempts, route, elapsed_s)
        raise NoRouteError(meta.workload, [f"{a[0]}: {a[2]}" for a in attempts])

    async def _try(
        self,
        step: Step,
        request: InferRequest,
        deadline_s: float | None,
        now_s: float,
        attempts: list[AttemptRecord],
    ) -> Answer | None:
        """Call one tier; None (and the reason among ``attempts``) when it gives no answer."""
        prepared = step.prepare(request, deadline_s, self._clock, attempts)
        if prepared is None:
            return None
        call, timeout_s = prepared
        t0 = self._clock()
        try:
            response = await step.tier.infer(call, timeout_s=timeout_s)
            return self._answered(step, response, t0, now_s)
        except TierRejectedError:
            raise  # the request itself is wrong; another tier would say the same
        except TierError as exc:
            elapsed_ms = (self._clock() - t0) * 1000.0
            if step.failed(exc.reason, failure_cause(exc), elapsed_ms, attempts):
                self._routes.reset()  # the breaker opened
            return None

    def _answered(self, step: Step, response: InferResponse, t0: float, now_s: float) -> Answer:
        """The tier's answer with its confidence (:func:`~.score_outputs.answer_confidence`)."""
        latency_ms = (self._clock() - t0) * 1000.0
        confidence = answer_confidence(step, response.outputs)
        if step.breaker is not None:
            step.breaker.record_success()
        step.latency.add(latency_ms)
        if step.cost:
            self.ledger.add(step.workload, step.cost, now_s)
        return step, response, confidence, latency_ms

    async def _queue(self, defer: Defer, request: InferRequest, meta: RequestMeta, route: Route,
                     attempts: list[AttemptRecord], why: str | None) -> RoutedAnswer:  # fmt: skip
        """Hand the request to the outbox; counted as deferred (with the tiers it tried)."""
        why = why or "deferred"
        attempts.append(("outbox", "deferred", why, 0.0, 0.0, None, None))
        item = await defer(request, meta, route)
        done = RoutedAnswer(meta.workload, route.tiers, attempts, None, None, None, why, 0.0, item)
        self.metrics.observe(done, route)
        return done

    def _is_interactive(self, meta: RequestMeta) -> bool:
        if meta.urgency is not None:
            return meta.urgency == "interactive"
        return self._effective is None or self._effective(meta).urgency == "interactive"

    def _finish(
        self,
        request: InferRequest,
        meta: RequestMeta,
        route: Route,
        attempts: list[AttemptRecord],
        answer: Answer,
        started: float,
    ) -> RoutedAnswer:
        step, response, confidence, _ = answer
        reason = "answered"
        cause: Cause | None = None
        threshold = step.threshold
        if threshold is not None and confidence < threshold:  # not accepted: degraded?
            cascade = self._cascades.get(meta.workload, ())
            cause, reason = settle(
                cascade, step.name, step.position, confidence, threshold, route, attempts
            )
            if cause is not None:
                key = (meta.workload, step.name, cause)
                self.fallbacks[key] = self.fallbacks.get(key, 0) + 1
        outputs = response.outputs
        settle_response(response, request, step.name, cause)
        total_ms = (self._clock() - started) * 1000.0
        routed = RoutedAnswer(
            meta.workload, route.tiers, attempts, response, step.name, cause, reason, total_ms
        )
        return self._done(routed, request, meta, route, outputs)

    def _done(
        self,
        routed: RoutedAnswer,
        request: InferRequest,
        meta: RequestMeta,
        route: Route,
        outputs: Mapping[str, np.ndarray],
    ) -> RoutedAnswer:
        """Count, sample and maybe re-evaluate an answer; ``outputs`` are all the answering
        tier gave (the score tensor included, even when the client did not ask for it)."""
        self.metrics.observe(routed, route)
        if self.sampler is not None and routed.response is not None:
            privacy = self._effective(meta).privacy if self._effective else "sensitive"
            self.sampler.offer_lazy(
                meta.workload, lambda: routed.trace.to_dict(), request.inputs,
                routed.response.outputs, privacy,
            )  # fmt: skip
        if self.shadow is not None:
            self.shadow.offer(routed, request, meta, outputs)
        return routed

    async def close(self) -> None:
        """Stop the re-evaluations in flight, then close every tier."""
        if self.shadow is not None:
            await self.shadow.close()
        await asyncio.gather(*(tier.close() for tier in self.tiers.values()))
