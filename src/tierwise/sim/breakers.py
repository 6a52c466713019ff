"""The router's circuit breakers under a partition, run on simulated time.

The router does not know a link is cut: its calls fail, and its own
:class:`~tierwise.router.health.CircuitBreaker` (the very class, on a simulated clock)
opens after enough of them, stays open ``open_s``, then lets one probe through (the
calls meanwhile are skipped); the probe fails while the cut lasts (the breaker opens
again) and closes it once the link is back. So a partition costs the calls made before
the breaker opens (refused at once, or held until the caller times out in a
``blackhole``) and keeps the tier out of the routes until the first probe after it heals.

A call's outcome reaches the breaker when the caller learns it: at once for a refusal
or an answer, ``timeout_s`` later for a call held in a blackhole; outcomes wait in a heap
until simulated time gets there, so the breaker is never read ahead of its time.

The engine asks :meth:`BreakerBook.open_at` at the start of each routing block (the
state the policy sees) and feeds :meth:`BreakerBook.record` the calls each block's
requests would make to a tier that has a partition in the run; the calls it keeps out
(the breaker open, or its probe still out) are skipped when the tiers serve them. Blocks
are cut finer in and after a partition (:func:`refine`).
"""

from __future__ import annotations

import heapq
from collections.abc import Mapping, Sequence

import numpy as np

from tierwise.router.health import BreakerSettings, CircuitBreaker
from tierwise.sim.records import Block
from tierwise.sim.tiers import Cut

__all__ = ["BreakerBook", "feed", "refine"]

#: the routing grid in and after a partition, at most
STEP_S = 1.0


class _Clock:
    def __init__(self) -> None:
        self.now_s = 0.0

    def __call__(self) -> float:
        return self.now_s


class _Tier:
    """One tier's breaker, its clock and the outcomes on their way to it."""

    def __init__(self, settings: BreakerSettings, cuts: list[Cut], timeout_s: float) -> None:
        self.clock = _Clock()
        self.breaker = CircuitBreaker(settings, clock=self.clock)
        self.cuts = cuts
        self.timeout_s = timeout_s
        self.outcomes: list[tuple[float, int, bool]] = []  # (known at, order, failed)
        self.order = 0
        self.probe_until: float | None = None  # a probe's outcome is still out until then

    def advance(self, time_s: float) -> None:
        """Bring the breaker up to ``time_s``: the outcomes known by then reach it."""
        while self.outcomes and self.outcomes[0][0] <= time_s:
            at, _, failed = heapq.heappop(self.outcomes)
            self.clock.now_s = max(self.clock.now_s, at)
            if failed:
                self.breaker.record_failure()
            else:
                self.breaker.record_success()
            if self.probe_until is not None and at >= self.probe_until:
                self.probe_until = None
        self.clock.now_s = max(self.clock.now_s, time_s)

    def call(self, at: float) -> bool:
        """A call the router would make at ``at``: True when it goes through, False when
        the breaker keeps it out (open, or its probe still out)."""
        self.advance(at)
        if self.probe_until is not None or not self.breaker.allow():
            return False
        probing = self.breaker.state == "half_open"
        cut = next((c for c in self.cuts if c[0] <= at < c[1]), None)
        known = at + self.timeout_s if cut is not None and cut[2] else at
        heapq.heappush(self.outcomes, (known, self.order, cut is not None))
        self.order += 1
        if probing and known > at:
            self.probe_until = known
        return True


class BreakerBook:
    """A breaker per tier that has a partition (``cuts``: from
    :func:`~tierwise.sim.tiers.partition_cuts`), each on its own simulated clock."""

    def __init__(
        self,
        cuts: Mapping[str, list[Cut]],
        settings: BreakerSettings,
        timeouts_s: Mapping[str, float],
    ) -> None:
        self._tiers = {t: _Tier(settings, list(c), timeouts_s.get(t, 0.0)) for t, c in cuts.items()}

    def open_at(self, tier: str, time_s: float) -> bool:
        """Whether ``tier``'s breaker keeps calls out at ``time_s``."""
        found = self._tiers.get(tier)
        if found is None:
            return False
        found.advance(time_s)
        return found.breaker.is_open or found.probe_until is not None

    def record(self, tier: str, calls_s: np.ndarray) -> np.ndarray:
        """Feed the calls the router would make to ``tier`` (times, sorted); which of
        them the breaker keeps out."""
        found = self._tiers.get(tier)
        if found is None:
            return np.zeros(calls_s.size, dtype=bool)
        return np.array([not found.call(at) for at in calls_s.tolist()], dtype=bool)


def refine(
    starts: np.ndarray,
    cuts: Mapping[str, list[Cut]],
    open_s: float,
    horizon_s: float,
    timeout_s: float = 0.0,
    step_s: float = STEP_S,
) -> np.ndarray:
    """``starts`` with a block every ``step_s`` from each partition's start until a few
    breaker periods (and a held call's timeout) past its end."""
    tail_s = 3.0 * (open_s + timeout_s)
    extra = [
        np.arange(begin, min(horizon_s, end + tail_s), step_s)
        for tier_cuts in cuts.values()
        for begin, end, _ in tier_cuts
    ]
    if not extra:
        return starts
    grid = np.concatenate([starts, *extra])
    return np.unique(grid[(grid >= 0.0) & (grid < horizon_s)])


def feed(
    book: BreakerBook, cuts: Mapping[str, list[Cut]], blocks: Sequence[Block],
    tier_names: tuple[str, ...], attempts: Mapping[str, list[np.ndarray]],
) -> None:  # fmt: skip
    """Tell the breakers of partitioned tiers about the calls these blocks' requests
    would make (and the ``attempts`` to deliver deferrable work), in the order they are
    made, and mark in each block the calls a breaker keeps out."""
    for tier in cuts:
        t = tier_names.index(tier)
        calls = [
            (i, np.flatnonzero((b.exit >= b.route.index(t)) & ~np.isnan(b.release)))
            for i, b in enumerate(blocks)
            if t in b.route
        ]
        extra = attempts.get(tier, [])
        times = [blocks[i].release[rows] for i, rows in calls] + extra
        if not times:
            continue
        # whose call each is: (block, row), or (-1, 0) for a delivery attempt
        owner = np.concatenate(
            [np.full(r.size, i) for i, r in calls] + [np.full(a.size, -1) for a in extra]
        )
        which = np.concatenate(
            [r for _, r in calls] + [np.zeros(a.size, dtype=np.int64) for a in extra]
        )
        at = np.concatenate(times)
        order = np.argsort(at, kind="stable")
        kept = np.empty(at.size, dtype=bool)
        kept[order] = book.record(tier, at[order])
        for i, _ in calls:
            mask = np.zeros(blocks[i].arrival.size, dtype=bool)
            mask[which[owner == i]] = kept[owner == i]
            blocks[i].kept_out[t] = mask
