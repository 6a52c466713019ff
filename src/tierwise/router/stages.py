"""What the router is built from: a policy, and per workload its cascade of stages (tier,
cost, escalation rule, threshold, the tensor holding the scores); and :class:`Step`, a
stage resolved once with everything a call needs, so a request does no lookups it did
before."""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, replace
from typing import Protocol

import numpy as np

from tierwise.protocol import (
    TIMEOUT_PARAMETER,
    InferRequest,
    InferResponse,
    RequestedOutput,
    timeout_parameter_us,
)
from tierwise.router.answer import AttemptRecord
from tierwise.router.health import CircuitBreaker, LatencyWindow
from tierwise.router.tiers import LocalTier, Tier
from tierwise.router.trace import Outcome
from tierwise.router.types import Cause, RequestMeta, Route, TierState

__all__ = [
    "Answer",
    "ConfidenceRule",
    "Defer",
    "Effective",
    "RoutePolicy",
    "Stage",
    "Step",
    "scorer",
]


class ConfidenceRule(Protocol):
    """What the router needs of an escalation rule: one confidence per row in [0, 1].
    A rule may also offer ``request_confidence(outputs) -> float`` (the least confident
    row's), which the router then uses instead (see ``EscalationRule``)."""

    def confidence(self, outputs: Mapping[str, np.ndarray]) -> np.ndarray: ...


class RoutePolicy(Protocol):
    """What the router needs of a policy (pure; see ``tierwise.router.policy``). A policy
    may also offer ``route_key(meta, *, spent_usd) -> Hashable | None``: equal keys, the
    same route while the tiers' health flags stay as they are (None: not reusable)."""

    def route(
        self,
        meta: RequestMeta,
        *,
        now_s: float,
        tiers: Mapping[str, TierState],
        spent_usd: Mapping[str, float],
    ) -> Route: ...


class Effective(Protocol):
    """What the router reads of a policy's ``effective(meta)``: the request's privacy
    and urgency once the workload's defaults apply."""

    @property
    def privacy(self) -> str: ...

    @property
    def urgency(self) -> str: ...


@dataclass(frozen=True, slots=True)
class Stage:
    """One step of a workload's cascade: escalate past it when the answer's confidence is
    under ``threshold`` (no rule: whatever it answers is final). ``output`` is the score
    tensor the plan names for the stage; a rule reads its own (``rule.output``), and a
    stage without a rule has its ``output`` checked against the model all the same."""

    tier: str
    cost_usd_per_inference: float = 0.0
    rule: ConfidenceRule | None = None
    threshold: float | None = None
    output: str | None = None


#: Where deferred requests go: (request, meta, route) -> outbox item id.
Defer = Callable[[InferRequest, RequestMeta, Route], Awaitable[str]]
#: Whether a request no tier could take now waits in the outbox.
Deferrable = Callable[[RequestMeta], bool]


class Step:
    """One stage of one workload, resolved: the tier object, its breaker and latency
    window, the scoring function and threshold, the cost, and its ``position`` in the
    workload's cascade."""

    __slots__ = (
        "breaker",
        "checked",
        "cost",
        "forward_deadline",
        "latency",
        "local",
        "name",
        "output",
        "position",
        "problem",
        "reads",
        "remote",
        "rule",
        "score",
        "threshold",
        "tier",
        "timeout_s",
        "workload",
    )

    def __init__(
        self,
        workload: str,
        stage: Stage,
        position: int,
        *,
        tier: Tier,
        breaker: CircuitBreaker | None,
        latency: LatencyWindow,
    ) -> None:
        self.name = stage.tier
        self.workload = workload
        self.position = position
        self.tier = tier
        self.breaker = breaker
        self.latency = latency
        self.cost = stage.cost_usd_per_inference
        self.timeout_s = tier.timeout_s
        self.remote = tier.remote
        # an in-process model cannot be told a deadline; every other tier is (V2 timeout)
        self.forward_deadline = not isinstance(tier, LocalTier)
        # a plain in-process model the router awaits itself (a subclass may override infer)
        self.local = tier if type(tier) is LocalTier else None
        self.rule = stage.rule
        self.output = stage.output
        self.score = scorer(stage.rule)
        # a rule without a threshold scores for the trace but never escalates
        self.threshold = stage.threshold if stage.rule is not None else None
        # whether the score tensor was checked against the model (nothing to check: yes);
        # ``problem`` is the last thing found wrong with it (tierwise.router.score_outputs)
        self.checked = stage.rule is None and stage.output is None
        self.problem: str | None = None
        # the output the rule reads, once checked (asked of the tier when a request names
        # the outputs it wants and leaves it out)
        self.reads: str | None = None

    def prepare(
        self,
        request: InferRequest,
        deadline_s: float | None,
        clock: Callable[[], float],
        attempts: list[AttemptRecord],
    ) -> tuple[InferRequest, float] | None:
        """The request and time limit for this tier's call; None when it is not to be
        asked (breaker open, deadline passed), with the reason among ``attempts``."""
        breaker = self.breaker
        if breaker is not None and not breaker.allow():
            attempts.append((self.name, "skipped", "breaker open", 0.0, 0.0, None, "breaker_open"))
            return None
        timeout_s = self.timeout_s
        if deadline_s is not None:
            left_s = deadline_s - clock()
            if left_s <= 0:
                attempts.append(
                    (self.name, "skipped", "deadline passed", 0.0, 0.0, None, "deadline")
                )
                return None
            timeout_s = min(timeout_s, left_s)
            if self.forward_deadline:  # the tier hears of the deadline: V2 ``timeout``
                parameters = request.parameters | {TIMEOUT_PARAMETER: timeout_parameter_us(left_s)}
                request = replace(request, parameters=parameters)
        reads = self.reads
        if request.outputs and reads is not None and all(o.name != reads for o in request.outputs):
            request = replace(request, outputs=[*request.outputs, RequestedOutput(reads)])
        return request, timeout_s

    def failed(
        self, reason: str, cause: Cause, elapsed_ms: float, attempts: list[AttemptRecord]
    ) -> bool:
        """Record a call that gave no answer (among ``attempts``, and on the breaker);
        True when that opened the breaker."""
        opened = self.breaker is not None and self.breaker.record_failure()
        outcome: Outcome = "timeout" if cause == "timeout" else "error"
        attempts.append((self.name, outcome, reason, elapsed_ms, 0.0, None, cause))
        return opened

    @property
    def where(self) -> str:
        """The stage as the plan names it: ``workloads.W.cascade[i]``."""
        return f"workloads.{self.workload}.cascade[{self.position}]"


#: A tier's answer: the step that gave it, the response, its confidence, its latency (ms).
Answer = tuple[Step, InferResponse, float, float]


def scorer(rule: ConfidenceRule | None) -> Callable[[Mapping[str, np.ndarray]], float] | None:
    """What a step calls on each answer: the rule's request confidence (None: no rule)."""
    if rule is None:
        return None
    fast: Callable[[Mapping[str, np.ndarray]], float] | None = getattr(
        rule, "request_confidence", None
    )
    if fast is not None:
        return fast

    def least(outputs: Mapping[str, np.ndarray]) -> float:
        scores = rule.confidence(outputs)
        return float(np.min(scores)) if scores.size else 0.0

    return least
