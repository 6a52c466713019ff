"""Values the router's parts pass between them: request metadata, observed tier state,
the route a policy chose and why. Plain frozen dataclasses, no I/O."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Final, Literal, get_args

from tierwise.spec.workloads import Privacy, Residency, Urgency

__all__ = [
    "DEGRADING_CAUSES",
    "Cause",
    "RequestMeta",
    "Route",
    "TierDecision",
    "TierState",
]


#: Why a stage of a workload's cascade was not asked (policy skips) or gave no answer
#: (router failures). ``partition``: the tier could not be reached (refused, reset,
#: unreachable); ``error``: it answered with a server error or an unreadable response.
Cause = Literal[
    "privacy",
    "residency",
    "breaker_open",
    "unhealthy",
    "thermal_offload",
    "budget",
    "deadline",
    "timeout",
    "partition",
    "error",
]

#: Causes that make an answer below its stage's bar ``degraded``: the cascade would have
#: asked the stage. Privacy and residency are not among them: the request's data may not
#: go there, so its cascade never would have.
DEGRADING_CAUSES: Final[frozenset[str]] = frozenset(get_args(Cause)) - {"privacy", "residency"}


@dataclass(frozen=True, slots=True)
class RequestMeta:
    """What a request says about itself (V2 request ``parameters``). ``None`` fields take
    the workload's defaults from the plan. ``received_s`` is on the policy's clock.
    ``budget_spent``: the caller's own budget is spent (a gateway client's daily budget),
    so the policy routes the request as it routes a workload whose budget is spent.
    ``escalated_from``: the cascade tier that already ran on the caller's side (a page
    running the device stage); the router continues with the stages after it."""

    workload: str
    privacy: Privacy | None = None
    residency: Residency | None = None
    deadline_ms: float | None = None
    urgency: Urgency | None = None
    received_s: float = 0.0
    budget_spent: bool = False
    escalated_from: str | None = None

    def waited_s(self, now_s: float) -> float | None:
        """Seconds since the request arrived (``now_s`` on the same clock); None when
        its arrival is not known."""
        return max(0.0, now_s - self.received_s) if self.received_s else None


@dataclass(frozen=True, slots=True)
class TierState:
    """What the router has observed about one tier; the policy reads it, never probes."""

    name: str
    healthy: bool = True
    breaker_open: bool = False
    p99_ms: float | None = None
    thermal_offload: bool = False
    queue_depth: int = 0


@dataclass(frozen=True, slots=True)
class TierDecision:
    """One tier of a workload's cascade, kept or skipped, and why; ``cause`` names a skip's
    kind (None when kept) and is left out of comparisons."""

    tier: str
    kept: bool
    reason: str
    cause: Cause | None = field(default=None, compare=False)


@dataclass(frozen=True, slots=True)
class Route:
    """The policy's answer for one request.

    ``tiers`` is the order to try (the cascade, cheapest first). ``defer_until_s`` is set
    when a deferrable request should wait (off-peak window or spot pool) and
    ``defer_reason`` says why. ``degraded`` says what was given up (e.g. the cloud tier
    after the workload's budget for the period is spent). ``decisions`` explains every
    tier of the workload's cascade.
    """

    workload: str
    tiers: tuple[str, ...]
    decisions: tuple[TierDecision, ...]
    defer_until_s: float | None = None
    defer_reason: str | None = None
    degraded: str | None = None
