"""The simulation: seeded traffic routed by the live :class:`~tierwise.router.policy.Policy`
through the fleet's tiers, queues and links, under a scenario.

Time runs in blocks (``block_s``, split at every scenario event), the moments between
which the fleet's state is constant. At the start of each block the tiers' state (a
partition or a failure of every node makes a tier unhealthy, heat sets thermal offload),
the money spent so far and the prices are read, and the live policy routes each
workload's requests once: within the block every fresh request has the same route, which
is exactly what :meth:`Policy.route` answers for it (``tests/sim`` checks this against
calls made request by request). Requests arrive as a Poisson process at the spec's rate
for the local hour (times a burst's factor), each stage escalates with the plan's measured
probability, and a request whose route skips a stage it would have reached is degraded.
A deferred request (off-peak or spot hours, or no tier reachable for deferrable work)
waits in the outbox until its route opens, then is routed afresh as the drainer delivers
it (``drain_batch`` items a round, a round per answer).

Then every tier, in the order the routes visit them, serves all the requests that reach
it over the whole run at once (:mod:`tierwise.sim.queues`): devices without a queue, edge
and cloud tiers through their servers' batchers. A request reaches a remote tier one round
trip after it leaves the previous stage (drawn from the same :class:`RttModel` the link
emulator uses) and goes round robin to one of the tier's servers that is up (a
``node_failure`` takes servers down for its span, ``spot_preemption`` at random until a
replacement is up); a call refused (queue full, or no server up) or slower than the
tier's timeout fails over to the next tier of its route, degraded, or fails when none is
left.
"""

from __future__ import annotations

import itertools
from collections.abc import Sequence
from dataclasses import dataclass, replace
from typing import Any

import numpy as np

from tierwise.errors import ConfigError, DeadlineExceededError
from tierwise.router.policy import Policy
from tierwise.router.types import RequestMeta, Route
from tierwise.sim.core import Simulation
from tierwise.sim.inputs import SimFleet
from tierwise.sim.scenario import Scenario
from tierwise.sim.tiers import Outage, run_tier, scenario_factor, server_outages, tier_states

__all__ = ["SimRun", "block_starts", "simulate"]

_DEGRADING = frozenset({"breaker_open", "unhealthy", "thermal_offload", "budget", "deadline"})


@dataclass(frozen=True)
class SimRun:
    """Every simulated request (arrays of one row per request, in arrival order per
    block; empty when the run kept none), the run's bounds and its figures."""

    workloads: tuple[str, ...]
    tiers: tuple[str, ...]
    horizon_s: float
    workload: np.ndarray  # int: index into ``workloads``
    arrival_s: np.ndarray
    release_s: np.ndarray  # when it left the outbox (= arrival when not deferred)
    done_s: np.ndarray  # NaN: failed or still deferred at the end
    answered_by: np.ndarray  # int: index into ``tiers``; -1: no answer
    degraded: np.ndarray
    deferred: np.ndarray
    fallbacks: np.ndarray  # int: failed calls before the answer
    cost_usd: np.ndarray
    energy_j: np.ndarray
    correct: np.ndarray
    policy_calls: int
    routes: dict[tuple[int, str], Route]  # (block index, workload): the block's route
    tally: Any = None  # the run's figures (a tierwise.sim.results.Tally)


def block_starts(horizon_s: float, block_s: float, scenario: Scenario) -> np.ndarray:
    """The blocks' start times: every ``block_s`` and every scenario event in the run."""
    grid = np.arange(0.0, horizon_s, block_s)
    events = [t for t in scenario.times_s() if 0.0 < t < horizon_s]
    return np.unique(np.concatenate((grid, np.asarray(events, dtype=float))))


@dataclass
class _Block:
    """The requests of one workload in one block, before the queues."""

    workload: int
    arrival: np.ndarray
    release: np.ndarray
    route: tuple[int, ...]  # the tiers every request of the block is routed to, in order
    exit: np.ndarray  # route position that answers when nothing fails
    degraded: np.ndarray
    deferred: np.ndarray
    cost: np.ndarray
    energy: np.ndarray
    correct: np.ndarray


def simulate(
    fleet: SimFleet,
    scenario: Scenario,
    *,
    sim: Simulation | None = None,
    keep_requests: bool = True,
) -> SimRun:
    """Run ``fleet`` under ``scenario`` (see the module docstring), an hour at a time:
    each hour's requests are served with the servers as the previous hour left them, and
    tallied (:class:`~tierwise.sim.results.Tally`); ``keep_requests`` also keeps every
    request's record (memory grows with the run; off for long runs of large fleets)."""
    from tierwise.sim.results import Tally

    s = fleet.settings
    sim = sim or Simulation(seed=s.seed)
    horizon = s.hours * 3600.0
    policy = Policy(fleet.plan)
    names = tuple(fleet.workloads)
    tier_names = tuple(fleet.tiers)
    index = {t: i for i, t in enumerate(tier_names)}
    starts = block_starts(horizon, s.block_s, scenario)
    ends = np.append(starts[1:], horizon)
    spent = dict.fromkeys(fleet.plan.workloads, 0.0)
    spent_since: dict[str, float] = {}
    tally = Tally(fleet, names, tier_names, horizon)
    free: dict[str, list[float]] = {t.name: [0.0] * t.servers for t in fleet.tiers.values()}
    outages = server_outages(fleet, scenario, sim, horizon)
    kept: list[SimRun] = []
    blocks: list[_Block] = []
    routes: dict[tuple[int, str], Route] = {}
    waiting: dict[str, list[np.ndarray]] = {w: [] for w in names}
    calls = total = 0
    hour_index = 0

    def flush() -> None:
        part = _serve(fleet, sim, blocks, names, tier_names, horizon, free, outages)
        tally.add(part, hour_index)
        if keep_requests:
            kept.append(part)
        blocks.clear()

    for b, (t0, t1) in enumerate(zip(starts.tolist(), ends.tolist(), strict=True)):
        if int(t0 // 3600) != hour_index:
            flush()
            hour_index = int(t0 // 3600)
        states = tier_states(fleet, scenario, t0)
        for name, config in fleet.plan.workloads.items():  # a new budget period: nothing spent
            period = config.period_s
            if int(t0 // period) != int(spent_since.get(name, 0.0) // period):
                spent[name] = 0.0
            spent_since[name] = t0
        hour = (s.start_hour + hour_index) % 24
        for wi, name in enumerate(names):
            workload = fleet.workloads[name]
            rate = workload.hourly_rps[hour] * scenario_factor(scenario, "burst", (name,), t0)
            n = int(sim.stream(f"arrivals/{name}").poisson(rate * (t1 - t0)))
            total += n
            if total > s.max_requests:
                raise ConfigError(
                    "max_requests", f"a run of at most {s.max_requests} requests (this one "
                    "has more; shorten --hours or raise the bound)", total,
                )  # fmt: skip
            arrival = np.sort(sim.stream(f"times/{name}").uniform(t0, t1, n))
            try:
                route = policy.route(
                    RequestMeta(name, received_s=t0), now_s=t0, tiers=states, spent_usd=spent
                )
            except DeadlineExceededError:  # cannot happen for a fresh request; be safe
                route = Route(name, (), (), None, None, "deadline")
            calls += 1
            routes[(b, name)] = route
            release = arrival.copy()
            deferred = np.zeros(n, dtype=bool)
            if route.defer_until_s is not None or (
                not route.tiers and fleet.plan.workloads[name].urgency == "deferrable"
            ):
                waiting[name].append(arrival)
                tally.depth(wi, hour_index, sum(a.size for a in waiting[name]))
                continue
            # deferred work released now: routed afresh with this block's route
            held = waiting[name]
            if held and route.tiers:
                old = np.concatenate(held)
                waiting[name] = []
                arrival = np.concatenate((old, arrival))
                release = np.concatenate((_drained(fleet, route, old.size, t0), release))
                deferred = np.concatenate((np.ones(old.size, dtype=bool), deferred))
            blocks.append(_paths(fleet, sim, wi, name, route, arrival, release, deferred,
                                 index, scenario, t0))  # fmt: skip
            spent[name] += float(blocks[-1].cost.sum())
    for name in names:  # still in the outbox when the run ends
        for arrival in waiting[name]:
            blocks.append(_paths(fleet, sim, names.index(name), name, None, arrival,
                                 np.full(arrival.size, np.nan), np.ones(arrival.size, dtype=bool),
                                 index, scenario, horizon))  # fmt: skip
    flush()
    run = _join(kept, names, tier_names, horizon) if keep_requests else _join(
        [], names, tier_names, horizon)  # fmt: skip
    return replace(run, policy_calls=calls, routes=routes, tally=tally)


def _join(
    parts: list[SimRun], names: tuple[str, ...], tiers: tuple[str, ...], horizon: float
) -> SimRun:
    def cat(attr: str, dtype: type) -> np.ndarray:
        arrays = [getattr(p, attr) for p in parts]
        return np.concatenate(arrays) if arrays else np.zeros(0, dtype=dtype)

    return SimRun(
        workloads=names, tiers=tiers, horizon_s=horizon, workload=cat("workload", np.int64),
        arrival_s=cat("arrival_s", float), release_s=cat("release_s", float),
        done_s=cat("done_s", float), answered_by=cat("answered_by", np.int64),
        degraded=cat("degraded", bool), deferred=cat("deferred", bool),
        fallbacks=cat("fallbacks", np.int64), cost_usd=cat("cost_usd", float),
        energy_j=cat("energy_j", float), correct=cat("correct", bool), policy_calls=0,
        routes={},
    )  # fmt: skip


def _drained(fleet: SimFleet, route: Route, count: int, time_s: float) -> np.ndarray:
    """When ``count`` held items leave the outbox from ``time_s``: the drainer claims
    ``drain_batch`` at a time and claims again once a round is answered (a round trip
    and a call to the route's first tier)."""
    first = fleet.tiers[route.tiers[0]]
    round_s = first.rtt.p50_ms / 1000.0 + float(first.service_s[1])
    rounds = np.arange(count) // fleet.settings.drain_batch
    released: np.ndarray = time_s + rounds * round_s
    return released


def _paths(
    fleet: SimFleet,
    sim: Simulation,
    wi: int,
    name: str,
    route: Route | None,
    arrival: np.ndarray,
    release: np.ndarray,
    deferred: np.ndarray,
    index: dict[str, int],
    scenario: Scenario,
    time_s: float,
) -> _Block:
    workload = fleet.workloads[name]
    n = arrival.size
    cascade = workload.cascade
    tiers = route.tiers if route is not None else ()
    route_idx = tuple(index[t] for t in tiers)
    exit_pos = np.zeros(n, dtype=np.int64)
    degraded = np.zeros(n, dtype=bool)
    cost = np.zeros(n)
    energy = np.zeros(n)
    if not tiers or n == 0:
        correct = np.zeros(n, dtype=bool)
        return _Block(wi, arrival, release, route_idx, exit_pos, degraded, deferred, cost,
                      energy, correct)  # fmt: skip
    draws = sim.stream(f"escalation/{name}").random((n, len(cascade)))
    escalates = draws < np.array([workload.escalate.get(t, 0.0) for t in cascade])
    # where the full cascade would answer, and where this route answers
    full_exit = np.full(n, len(cascade) - 1)
    if len(cascade) > 1:
        stops = ~escalates[:, :-1]
        full_exit = np.where(stops.any(axis=1), np.argmax(stops, axis=1), len(cascade) - 1)
    kept = [cascade.index(t) for t in tiers]
    kept_esc = escalates[:, kept]
    if len(kept) > 1:
        stops_here = ~kept_esc[:, :-1]
        exit_pos = np.where(stops_here.any(axis=1), np.argmax(stops_here, axis=1), len(kept) - 1)
    assert route is not None
    skipped = [
        cascade.index(d.tier) for d in route.decisions if not d.kept and d.cause in _DEGRADING
    ]
    if route.degraded:
        degraded[:] = True
    for position in skipped:
        degraded |= full_exit >= position
    # cost and energy of every call up to the answer (refusals may add more later)
    reached = np.arange(len(tiers))[None, :] <= exit_pos[:, None]
    for pos, name_of_tier in enumerate(tiers):
        stage = fleet.tiers[name_of_tier]
        price = scenario_factor(scenario, "price", (stage.name, stage.spec_tier), time_s)
        cost += reached[:, pos] * stage.cost_usd_per_inference * price
        energy += reached[:, pos] * (stage.energy_j_per_inference or 0.0)
    accuracy = workload.accuracy if workload.accuracy is not None else 1.0
    correct = sim.stream(f"correct/{name}").random(n) < accuracy
    return _Block(wi, arrival, release, route_idx, exit_pos, degraded, deferred, cost, energy,
                  correct)  # fmt: skip


def _order(blocks: Sequence[_Block], count: int) -> list[int]:
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


def _serve(
    fleet: SimFleet,
    sim: Simulation,
    blocks: list[_Block],
    names: tuple[str, ...],
    tier_names: tuple[str, ...],
    horizon: float,
    free: dict[str, list[float]],
    outages: dict[str, list[Outage]],
) -> SimRun:
    def cat(attr: str, dtype: type | None = None) -> np.ndarray:
        parts = [getattr(b, attr) for b in blocks]
        return np.concatenate(parts) if parts else np.zeros(0, dtype=dtype or float)

    workload = np.concatenate([np.full(b.arrival.size, b.workload) for b in blocks]) if blocks \
        else np.zeros(0, dtype=np.int64)  # fmt: skip
    arrival, release = cat("arrival"), cat("release")
    table = sorted({b.route for b in blocks})  # the distinct routes
    route_id = np.concatenate(
        [np.full(b.arrival.size, table.index(b.route), dtype=np.int64) for b in blocks]
    ) if blocks else np.zeros(0, dtype=np.int64)  # fmt: skip
    lengths = np.array([len(r) for r in table] or [0], dtype=np.int64)
    exit_pos = cat("exit").astype(np.int64)
    degraded, deferred = cat("degraded").astype(bool), cat("deferred").astype(bool)
    cost, energy, correct = cat("cost"), cat("energy"), cat("correct").astype(bool)
    n = arrival.size
    ready = release.copy()  # when the request is ready for its next stage
    done = np.full(n, np.nan)
    answered = np.full(n, -1, dtype=np.int64)
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
        if tier.remote:
            start += tier.rtt.samples_ms(sim.stream(f"rtt/{tier.name}"), rows.size) / 1000.0
            order = np.argsort(start, kind="stable")
            rows, positions, start, sent = rows[order], positions[order], start[order], sent[order]
        finish, failed = run_tier(
            tier, fleet, sim, start, outages.get(tier.name, []), free[tier.name], sent
        )
        last = positions == exit_pos[rows]
        ok_rows = rows[~failed]
        done_at = finish[~failed]
        ends_here = last[~failed]
        done[ok_rows[ends_here]] = done_at[ends_here]
        answered[ok_rows[ends_here]] = t
        ready[ok_rows[~ends_here]] = done_at[~ends_here]
        # a failed call falls over to the route's next tier, degraded; none left: failed
        bad_rows, bad_pos, bad_at = rows[failed], positions[failed], finish[failed]
        fallbacks[bad_rows] += 1
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
                    cost[these] += stage.cost_usd_per_inference
                    energy[these] += stage.energy_j_per_inference or 0.0
        alive[bad_rows[~has_next]] = False
    return SimRun(
        workloads=names, tiers=tier_names, horizon_s=horizon, workload=workload,
        arrival_s=arrival, release_s=release, done_s=done, answered_by=answered,
        degraded=degraded, deferred=deferred, fallbacks=fallbacks, cost_usd=cost,
        energy_j=energy, correct=correct & (answered >= 0), policy_calls=0, routes={},
    )  # fmt: skip
