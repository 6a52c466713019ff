"""Routes the router reuses: the policy is pure, so while its inputs stay the same its
answer does too.

A policy that offers ``route_key(meta, *, spent_usd)`` says when that is: equal keys give
equal routes for any clock and any observed latency, as long as the tiers' health flags
(breaker open, unhealthy, thermal offload) are unchanged; None means the route depends on
the clock or latency (a deadline, a deferrable request under a price schedule) and is
computed afresh. The router calls :meth:`RouteCache.reset` whenever a flag changes (a
breaker opens, an owner sets a flag); an open breaker's route also expires by itself when
the breaker becomes due for a probe.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Hashable, Iterable, Mapping, Sequence

from tierwise.errors import NoRouteError, RouteError
from tierwise.router.flags import TierFlags
from tierwise.router.health import CircuitBreaker, LatencyWindow
from tierwise.router.ledger import SpendLedger
from tierwise.router.stages import RoutePolicy
from tierwise.router.types import RequestMeta, Route, TierState

__all__ = ["RouteCache", "observed_states", "tiers_after"]


class RouteCache:
    """The policy's routes by key, for one router. :meth:`get` is what a request asks."""

    __slots__ = ("_breakers", "_expire_s", "_fixed", "_key_of", "_plain", "_routes", "_spent",
                 "_states", "policy")  # fmt: skip

    def __init__(
        self,
        policy: RoutePolicy,
        ledger: SpendLedger,
        breakers: Mapping[str, CircuitBreaker],
        tier_states: Callable[[], dict[str, TierState]],
    ) -> None:
        self.policy = policy
        key_of: Callable[..., Hashable | None] | None = getattr(policy, "route_key", None)
        self._key_of = key_of
        self._breakers = breakers
        self._states = tier_states
        self._routes: dict[Hashable, Route] = {}
        # workloads whose route for a request that says nothing about itself depends on
        # no spend (the policy's ``spend_free``); that route, once computed
        self._fixed: Callable[[str], bool] = getattr(policy, "spend_free", lambda _: False)
        self._plain: dict[str, Route] = {}
        self._expire_s = math.inf
        self._spent = ledger.at(0.0)  # one view, moved to each request's time

    def reset(self) -> None:
        """A health flag or a breaker changed: forget every route, and note when the next
        open breaker is due for a probe (its route changes then too)."""
        self._routes = {}
        self._plain = {}
        due = [b.reopens_at_s for b in self._breakers.values() if b.is_open]
        self._expire_s = min((t for t in due if t is not None), default=math.inf)

    def get(self, meta: RequestMeta, now_s: float, mono_s: float) -> Route:
        """The route for ``meta`` at ``now_s`` (UTC seconds; ``mono_s`` on the router's
        clock): reused when it can be, else computed (and kept when it may be reused)."""
        key_of = self._key_of
        if key_of is None:
            return self.compute(meta, now_s)
        if mono_s >= self._expire_s:
            self.reset()
        plain = (
            meta.privacy is None
            and meta.residency is None
            and meta.urgency is None
            and meta.deadline_ms is None
            and not meta.budget_spent
        )
        if plain and (route := self._plain.get(meta.workload)) is not None:
            return route
        spent = self._spent
        spent.now_s = now_s
        key = key_of(meta, spent_usd=spent)
        if key is None:
            return self.compute(meta, now_s)
        route = self._routes.get(key)
        if route is None:
            route = self._routes[key] = self.compute(meta, now_s)
        if plain and self._fixed(meta.workload):
            self._plain[meta.workload] = route
        return route

    def compute(self, meta: RequestMeta, now_s: float) -> Route:
        """The policy's route, computed now over the tiers' observed state."""
        spent = self._spent
        spent.now_s = now_s
        return self.policy.route(meta, now_s=now_s, tiers=self._states(), spent_usd=spent)


def observed_states(
    tiers: Iterable[str],
    breakers: Mapping[str, CircuitBreaker],
    healthy: TierFlags,
    latency: Mapping[str, LatencyWindow],
    thermal_offload: TierFlags,
) -> dict[str, TierState]:
    """What the policy sees of each tier: breaker state, health, observed p99, thermal
    flags."""
    states = {}
    for name in tiers:
        breaker = breakers.get(name)
        states[name] = TierState(
            name=name,
            healthy=healthy.flag(name),
            breaker_open=breaker.is_open if breaker is not None else False,
            p99_ms=latency[name].p99_ms,
            thermal_offload=thermal_offload.flag(name),
        )
    return states


def tiers_after(cascade: Sequence[str], meta: RequestMeta, route: Route) -> tuple[str, ...]:
    """The tiers of ``route`` after ``meta.escalated_from``, the cascade's first stage
    (``cascade``: its tiers' names, in order), which the caller ran itself, as a page
    runs the device stage. Only the first stage may be named: a caller may not skip
    stages it did not run (RouteError). NoRouteError, with why, when none is left."""
    tier = meta.escalated_from
    if tier is None:
        return route.tiers
    if not cascade or tier != cascade[0]:
        first = cascade[0] if cascade else "none"
        raise RouteError(
            "escalated_from", f"the first stage of workload {meta.workload!r}'s cascade"
            f" ({first}), the one a caller may run itself; got {tier!r}",
        )  # fmt: skip
    left = tuple(t for t in route.tiers if t != tier)
    if not left:
        skipped = [f"{d.tier}: {d.reason}" for d in route.decisions if not d.kept]
        raise NoRouteError(meta.workload, skipped or [f"no stage after {tier}"])
    return left
