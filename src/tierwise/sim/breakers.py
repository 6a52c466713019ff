"""The router's circuit breakers under a partition, run on simulated time.

The router does not know a link is cut: its calls fail, and its own
:class:`~tierwise.router.health.CircuitBreaker` (the very class, on a simulated clock)
opens after enough of them, stays open ``open_s``, then lets a probe through; the probe
fails while the cut lasts (the breaker opens again) and closes it once the link is back.
So a partition costs the calls made before the breaker opens (refused at once, or held
until the caller times out in a ``blackhole``) and keeps the tier out of the routes until
the first probe after it heals.

The engine asks :meth:`BreakerBook.open_at` at the start of each routing block (the
state the policy sees) and feeds :meth:`BreakerBook.record` the calls each block makes to
a tier that has a partition in the run. Blocks are cut finer in and just after a
partition (:func:`refine`), so the breaker's moments are kept to within ``step_s``.
"""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np

from tierwise.router.health import BreakerSettings, CircuitBreaker
from tierwise.sim.tiers import Cut

__all__ = ["BreakerBook", "refine"]

#: the routing grid in and after a partition, at most
STEP_S = 1.0


class _Clock:
    def __init__(self) -> None:
        self.now_s = 0.0

    def __call__(self) -> float:
        return self.now_s


class BreakerBook:
    """A breaker per tier that has a partition (``cuts``: from
    :func:`~tierwise.sim.tiers.partition_cuts`), each on its own simulated clock."""

    def __init__(
        self,
        cuts: Mapping[str, list[Cut]],
        settings: BreakerSettings,
        timeouts_s: Mapping[str, float],
    ) -> None:
        self._cuts = dict(cuts)
        self._timeouts = dict(timeouts_s)
        self._clocks = {tier: _Clock() for tier in cuts}
        self._breakers = {tier: CircuitBreaker(settings, clock=self._clocks[tier]) for tier in cuts}

    def open_at(self, tier: str, time_s: float) -> bool:
        """Whether ``tier``'s breaker keeps calls out at ``time_s``."""
        breaker = self._breakers.get(tier)
        if breaker is None:
            return False
        self._clocks[tier].now_s = max(self._clocks[tier].now_s, time_s)
        return breaker.is_open

    def record(self, tier: str, calls_s: np.ndarray) -> None:
        """Feed the calls made to ``tier`` (times, sorted): each one the breaker lets
        through fails inside a cut (when the caller gives up, for a blackhole) and
        succeeds outside."""
        breaker = self._breakers.get(tier)
        if breaker is None or calls_s.size == 0:
            return
        clock = self._clocks[tier]
        for at in calls_s.tolist():
            clock.now_s = max(clock.now_s, at)
            if not breaker.allow():
                continue  # open: the router skips the tier for this call
            cut = next((c for c in self._cuts[tier] if c[0] <= at < c[1]), None)
            if cut is None:
                breaker.record_success()
                continue
            if cut[2]:  # a blackhole: the failure is known when the caller gives up
                clock.now_s = max(clock.now_s, at + self._timeouts.get(tier, 0.0))
            breaker.record_failure()


def refine(starts: np.ndarray, cuts: Mapping[str, list[Cut]], open_s: float,
           horizon_s: float, step_s: float = STEP_S) -> np.ndarray:  # fmt: skip
    """``starts`` with a block every ``step_s`` from each partition's start until a few
    breaker periods past its end."""
    extra = [
        np.arange(begin, min(horizon_s, end + 3.0 * open_s), step_s)
        for tier_cuts in cuts.values()
        for begin, end, _ in tier_cuts
    ]
    if not extra:
        return starts
    grid = np.concatenate([starts, *extra])
    return np.unique(grid[(grid >= 0.0) & (grid < horizon_s)])
