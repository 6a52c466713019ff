"""Every tier serves the requests an hour's blocks send it, in the order the routes visit
the tiers (see :mod:`tierwise.sim.engine` for what happens to a call)."""

from __future__ import annotations

import itertools
import random
from collections.abc import Mapping, Sequence

import numpy as np

from tierwise.sim.core import Simulation
from tierwise.sim.inputs import SimFleet
from tierwise.sim.records import Block, SimRun
from tierwise.sim.tiers import Cut, Outage, run_tier, sent_into

__all__ = ["serve"]


def _cut(
    cuts: Sequence[Mapping[str, list[Cut]]], tier: str, group: np.ndarray, sent: np.ndarray
) -> tuple[np.ndarray, np.ndarray] | None:
    """Which calls to ``tier`` (sent at ``sent`` by requests of ``group``) meet a
    partition of their group's: held in a blackhole, refused by a reset link; None when
    none can."""
    if not any(tier in by_tier for by_tier in cuts):
        return None
    held = np.zeros(sent.size, dtype=bool)
    reset = np.zeros(sent.size, dtype=bool)
    for g, by_tier in enumerate(cuts):
        spans = by_tier.get(tier)
        if not spans:
            continue
        mine = np.flatnonzero(group == g) if len(cuts) > 1 else np.arange(sent.size)
        held[mine] = sent_into(spans, sent[mine], blackhole=True)
        reset[mine] = sent_into(spans, sent[mine], blackhole=False)
    return held, reset


def _answered_right(
    fleet: SimFleet,
    names: tuple[str, ...],
    tier_names: tuple[str, ...],
    workload: np.ndarray,
    rows: np.ndarray,
    answered: np.ndarray,
    correct: np.ndarray,
) -> None:
    """Where a workload's requests are held-out rows, each answer is right as the stage
    that gave it was on its row (an earlier answer that stood, or a stage fallen over to,
    included)."""
    for wi, name in enumerate(names):
        outcomes = fleet.workloads[name].rows
        if outcomes is None:
            continue
        mine = np.flatnonzero((workload == wi) & (answered >= 0) & (rows >= 0))
        position = np.full(len(tier_names), -1, dtype=np.int64)
        for p, tier in enumerate(fleet.workloads[name].cascade):
            position[tier_names.index(tier)] = p
        stage = position[answered[mine]]
        known = stage >= 0
        correct[mine[known]] = outcomes.correct[rows[mine[known]], stage[known]]


def _order(blocks: Sequence[Block], count: int) -> list[int]:
    """Tiers in the order routes visit them (Kahn's; a cycle is broken by first sight)."""
    edges: set[tuple[int, int]] = set()
    seen: list[int] = []
    for row in {block.route for block in blocks}:
        for t in row:
            if t not in seen:
                seen.append(t)
        edges.update(itertools.pairwise(row))
    order: list[int] = []
    remaining = list(seen)
    while remaining:
        free = [t for t in remaining if not any(a in remaining and b == t for a, b in edges)]
        pick = free[0] if free else remaining[0]
        order.append(pick)
        remaining.remove(pick)
    return order + [t for t in range(count) if t not in order]


def serve(
    fleet: SimFleet,
    sim: Simulation,
    blocks: list[Block],
    names: tuple[str, ...],
    tier_names: tuple[str, ...],
    horizon: float,
    free: dict[str, list[float]],
    down: tuple[dict[str, list[Outage]], Sequence[Mapping[str, list[Cut]]]],
    links: Mapping[str, random.Random],
) -> SimRun:
    """Serve an hour's ``blocks``; ``down``: each tier's server outages, and each group's
    partitions by tier (:mod:`tierwise.sim.sites`; a block's ``group`` says whose)."""

    def cat(attr: str, dtype: type | None = None) -> np.ndarray:
        parts = [getattr(b, attr) for b in blocks]
        return np.concatenate(parts) if parts else np.zeros(0, dtype=dtype or float)

    sizes = np.array([b.arrival.size for b in blocks], dtype=np.int64)
    workload = np.repeat(np.array([b.workload for b in blocks], dtype=np.int64), sizes)
    group = np.repeat(np.array([b.group for b in blocks], dtype=np.int64), sizes)
    arrival, release = cat("arrival"), cat("release")
    table = sorted({b.route for b in blocks})  # the distinct routes
    route_id = np.repeat(np.array([table.index(b.route) for b in blocks], dtype=np.int64), sizes)
    lengths = np.array([len(r) for r in table] or [0], dtype=np.int64)
    exit_pos = cat("exit").astype(np.int64)
    degraded, deferred = cat("degraded").astype(bool), cat("deferred").astype(bool)
    cost, energy, correct = cat("cost"), cat("energy"), cat("correct").astype(bool)
    block_of = np.repeat(np.arange(len(blocks)), sizes)
    kept_out = {
        t: np.concatenate([b.kept_out.get(t, np.zeros(b.arrival.size, dtype=bool)) for b in blocks])
        for t in {t for b in blocks for t in b.kept_out}
    }
    prices = np.stack([b.price for b in blocks]) if blocks else np.ones((0, len(tier_names)))
    n = arrival.size
    ready = release.copy()  # when the request is ready for its next stage
    done = np.full(n, np.nan)
    answered = np.full(n, -1, dtype=np.int64)
    have = np.full(n, -1, dtype=np.int64)  # the last tier that answered (and escalated)
    fallbacks = np.zeros(n, dtype=np.int64)
    alive = ~np.isnan(release) & (lengths[route_id] > 0) if n else np.zeros(0, dtype=bool)
    for t in _order(blocks, len(tier_names)):
        tier = fleet.tiers[tier_names[t]]
        where = np.array([r.index(t) if t in r else -1 for r in table] or [-1], dtype=np.int64)
        position = where[route_id]
        # the requests that reach this tier (earlier stages were served before)
        rows = np.flatnonzero((position >= 0) & (position <= exit_pos) & alive)
        if rows.size == 0:
            continue
        positions = position[rows]
        order = np.argsort(ready[rows], kind="stable")
        rows, positions = rows[order], positions[order]
        sent = ready[rows].copy()
        start = sent.copy()
        outages = down[0].get(tier.name, [])
        cut = _cut(down[1], tier.name, group[rows], sent) if tier.remote else None
        # calls the router's breaker keeps out are never made: they fail as they are sent
        skipped = kept_out[t][rows] if t in kept_out else None
        if tier.remote:
            # a reset link refuses a call as it is sent: no round trip
            crossing = None if cut is None or not cut[1].any() else ~cut[1]
            if skipped is not None:
                crossing = ~skipped if crossing is None else crossing & ~skipped
            link = links.get(tier.name)
            count = sent.size if crossing is None else int(crossing.sum())
            if link is None:
                delay_ms = tier.rtt.samples_ms(sim.stream(f"rtt/{tier.name}"), count)
            else:  # the sequence the tier's link emulator draws
                delay_ms = np.array([tier.rtt.sample_ms(link) for _ in range(count)])
            if crossing is None:
                start += delay_ms / 1000.0
            else:
                start[crossing] += delay_ms / 1000.0
            order = np.argsort(start, kind="stable")
            rows, positions, start, sent = rows[order], positions[order], start[order], sent[order]
            skipped = skipped[order] if skipped is not None else None
            cut = (cut[0][order], cut[1][order]) if cut is not None else None
        finish, ran, failed = run_tier(
            tier, fleet, sim, start, outages, free[tier.name], sent, cut, skipped
        )
        overhead = tier.overhead_s
        if overhead.size > 1:  # measured samples: each call draws one
            overhead = sim.stream(f"overhead/{tier.name}").choice(overhead, finish.size)
        finish = finish + overhead
        last = positions == exit_pos[rows]
        ok_rows = rows[~failed]
        done_at = finish[~failed]
        ends_here = last[~failed]
        done[ok_rows[ends_here]] = done_at[ends_here]
        answered[ok_rows[ends_here]] = t
        ready[ok_rows[~ends_here]] = done_at[~ends_here]
        have[ok_rows[~ends_here]] = t
        # a failed call falls over to the route's next tier, degraded; none left: failed
        bad_rows, bad_pos, bad_at = rows[failed], positions[failed], finish[failed]
        # a call that gave no answer is not paid for
        cost[bad_rows] -= tier.cost_usd_per_inference * prices[block_of[bad_rows], t]
        energy[bad_rows] -= (tier.energy_j_per_inference or 0.0) * ~ran[failed]  # ran: spent
        fallbacks[bad_rows] += 1 if skipped is None else ~skipped[failed]  # a skip is no call
        degraded[bad_rows] = True
        has_next = bad_pos + 1 < lengths[route_id[bad_rows]]
        move = bad_rows[has_next]
        grown = bad_pos[has_next] + 1 > exit_pos[move]  # a stage past the planned answer
        exit_pos[move] = np.maximum(exit_pos[move], bad_pos[has_next] + 1)
        ready[move] = bad_at[has_next]
        for r, route in enumerate(table):  # what the stage it falls over to costs
            extra = move[grown & (route_id[move] == r)]
            if extra.size:
                for pos in np.unique(exit_pos[extra]).tolist():
                    stage = fleet.tiers[tier_names[route[pos]]]
                    these = extra[exit_pos[extra] == pos]
                    factor = prices[block_of[these], route[pos]]
                    cost[these] += stage.cost_usd_per_inference * factor
                    energy[these] += stage.energy_j_per_inference or 0.0
        # none left: an earlier answer stands (degraded); without one the request failed
        stuck = bad_rows[~has_next]
        earlier = have[stuck] >= 0
        done[stuck[earlier]] = bad_at[~has_next][earlier]
        answered[stuck[earlier]] = have[stuck[earlier]]
        alive[stuck] = False
    _answered_right(fleet, names, tier_names, workload, cat("rows").astype(np.int64), answered,
                    correct)  # fmt: skip
    return SimRun(
        workloads=names, tiers=tier_names, horizon_s=horizon, workload=workload,
        arrival_s=arrival, release_s=release, done_s=done, answered_by=answered,
        degraded=degraded, deferred=deferred, fallbacks=fallbacks, cost_usd=cost,
        energy_j=energy, correct=correct & (answered >= 0), policy_calls=0, routes={},
        group=group,
    )  # fmt: skip
