"""The simulation: seeded traffic routed by the live :class:`~tierwise.router.policy.Policy`
through the fleet's tiers, queues and links, under a scenario.

Time runs in blocks (``block_s``, split at every scenario event and every server's
outage, and finer in and after a partition), the moments between which the fleet's state
is constant. At the start of each block the tiers' state (every server out, failed,
preempted or not yet scaled up, makes a tier unhealthy; an open breaker keeps it out;
heat sets thermal offload), the money spent so far and the prices are read, and the live
policy routes each workload's requests once per group (the requests of sites that a
partition of some sites only cuts have their own routers and breakers,
:mod:`tierwise.sim.sites`; there is one group without such a partition): within the
block every fresh request of a group has the same route, which is exactly what
:meth:`Policy.route` answers for it (``tests/sim`` checks this against calls made request
by request). Requests arrive as a Poisson process at the spec's rate for the local hour
(times a burst's factor), or as replayed; each stage escalates as the request's held-out
row did, or with the plan's measured probability; and a request whose route skips a stage
it would have reached is degraded. A deferred request (off-peak or spot hours, or no tier
reachable for deferrable work) waits in its group's outbox until its route opens, then is
routed afresh as the drainer delivers it (``drain_batch`` items a round, a round per
answer).

Then, an hour at a time, every tier, in the order the routes visit them, serves all the
requests of the hour that reach it (:mod:`tierwise.sim.serve`): devices without a queue,
edge and cloud tiers through their servers' batchers. A request reaches a remote tier one round
trip after it leaves the previous stage (drawn from the same :class:`RttModel` the link
emulator uses) and goes round robin to one of the tier's servers that is up (a
``node_failure`` takes servers down for its span, ``spot_preemption`` at random until a
replacement is up, an autoscaled pool has only the servers its load called for,
:mod:`tierwise.sim.scaling`); a call refused (queue full, or no server up) or slower than the
tier's timeout fails over to the next tier of its route, degraded; when none is left,
the answer of an earlier stage stands (degraded), and a request without one fails. A
partition is not seen by the router: calls to the cut tier fail until its breaker opens
(:mod:`tierwise.sim.breakers`), and the breaker keeps the tier out of the routes until a
probe after the heal succeeds.
"""

from __future__ import annotations

import random
from collections.abc import Mapping, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import replace

import numpy as np

from tierwise.errors import ConfigError, DeadlineExceededError
from tierwise.router.policy import Policy
from tierwise.router.types import RequestMeta, Route, TierState
from tierwise.sim.breakers import BreakerBook, feed, refine
from tierwise.sim.core import Simulation
from tierwise.sim.inputs import SimFleet, SimWorkload
from tierwise.sim.records import NO_TRAFFIC, Block, SimRun, Traffic, join
from tierwise.sim.scaling import fleet_outages
from tierwise.sim.scenario import Scenario
from tierwise.sim.serve import serve
from tierwise.sim.sites import Group, site_groups
from tierwise.sim.tiers import Cut, partition_cuts, tier_states

__all__ = ["SimRun", "Traffic", "block_starts", "simulate"]

_DEGRADING = frozenset({"breaker_open", "unhealthy", "thermal_offload", "budget", "deadline"})


def block_starts(horizon_s: float, block_s: float, scenario: Scenario) -> np.ndarray:
    """The blocks' start times: every ``block_s`` and every scenario event in the run."""
    grid = np.arange(0.0, horizon_s, block_s)
    events = [t for t in scenario.times_s() if 0.0 < t < horizon_s]
    return np.unique(np.concatenate((grid, np.asarray(events, dtype=float))))


def simulate(
    fleet: SimFleet,
    scenario: Scenario,
    *,
    sim: Simulation | None = None,
    keep_requests: bool = True,
    traffic: Mapping[str, Traffic] | None = None,
) -> SimRun:
    """Run ``fleet`` under ``scenario`` (see the module docstring), an hour at a time:
    each hour's requests are served with the servers as the previous hour left them, and
    tallied (:class:`~tierwise.sim.results.Tally`); ``keep_requests`` also keeps every
    request's record (memory grows with the run; off for long runs of large fleets).
    ``traffic`` replays given requests instead of drawing them: per workload, the
    arrival times (seconds, sorted) and the held-out row each one is (-1: none)."""
    from tierwise.sim.results import Tally

    s = fleet.settings
    sim = sim or Simulation(seed=s.seed)
    horizon = s.hours * 3600.0
    policy = Policy(fleet.plan)
    names = tuple(fleet.workloads)
    tier_names = tuple(fleet.tiers)
    index = {t: i for i, t in enumerate(tier_names)}
    # requests whose routers see the same links: one group unless some sites are cut
    groups = site_groups(fleet, scenario, partition_cuts(fleet, scenario, horizon), horizon)
    timeouts = {t.name: t.timeout_s for t in fleet.tiers.values()}
    books = [BreakerBook(g.cuts, s.breaker, timeouts) for g in groups]
    grid = block_starts(horizon, s.block_s, scenario)
    grid_end = dict(zip(grid.tolist(), np.append(grid[1:], horizon).tolist(), strict=True))
    every_cut = {f"{g}/{t}": spans for g, group in enumerate(groups)
                 for t, spans in group.cuts.items()}  # fmt: skip
    longest_s = max((timeouts[t] for g in groups for t in g.cuts), default=0.0)
    starts = refine(grid, every_cut, s.breaker.open_s, horizon, longest_s)  # finer near cuts
    outages, servers_up = fleet_outages(fleet, scenario, sim, horizon)
    # a tier's health changes when its last server goes or its first comes back: a block
    # begins at every server's outage
    changes = [t for spans in outages.values() for _, a, b in spans for t in (a, b)]
    starts = np.unique(np.concatenate((starts, [t for t in changes if 0.0 < t < horizon])))
    ends = np.append(starts[1:], horizon)
    spent = dict.fromkeys(fleet.plan.workloads, 0.0)
    spent_since: dict[str, float] = {}
    tally = Tally(fleet, names, tier_names, horizon, tuple(g.name for g in groups))
    free: dict[str, list[float]] = {t.name: [0.0] * t.servers for t in fleet.tiers.values()}
    kept: list[SimRun] = []
    blocks: list[Block] = []
    routes: dict[tuple[int, str], Route] = {}
    seen: dict[int, dict[str, TierState]] = {}
    waiting: dict[tuple[str, int], list[Traffic]] = {
        (w, g): [] for w in names for g in range(len(groups))
    }
    links = {t.name: random.Random(t.rtt_seed) for t in fleet.tiers.values()  # noqa: S311
             if t.rtt_seed is not None}  # fmt: skip
    calls = total = 0
    drawn: dict[str, Traffic] = {}
    _check_traffic(fleet, traffic or {}, horizon)
    labels = {name: _groups(sim, groups, name, times.size)
              for name, (times, _) in (traffic or {}).items()}  # fmt: skip
    given = sum(times.size for times, _ in (traffic or {}).values())
    if given > s.max_requests:
        raise ConfigError("max_requests", f"a run of at most {s.max_requests} requests", given)
    hour_index = 0

    def serve_hour(hour: list[Block], number: int) -> None:
        part = serve(fleet, sim, hour, names, tier_names, horizon, free,
                     (outages, [g.cuts for g in groups]), links)  # fmt: skip
        tally.add(part, number)
        if keep_requests:
            kept.append(part)

    # an hour is served (queues, tallies) on a worker thread while the next one is routed
    # here: no random stream, server or figure is touched by both threads, so the numbers
    # depend on the seed alone
    serving: list[Future[None]] = []
    worker = ThreadPoolExecutor(max_workers=1, thread_name_prefix="tierwise-sim")

    def flush() -> None:
        hour = list(blocks)
        blocks.clear()
        if serving:
            serving.pop().result()  # one hour at a time, in order
        serving.append(worker.submit(serve_hour, hour, hour_index))

    try:
        for b, (t0, t1) in enumerate(zip(starts.tolist(), ends.tolist(), strict=True)):
            if int(t0 // 3600) != hour_index:
                flush()
                hour_index = int(t0 // 3600)
            views = [tier_states(fleet, scenario, t0, book, outages) for book in books]
            attempts: list[dict[str, list[np.ndarray]]] = [{} for _ in groups]  # deliveries
            seen[b] = views[0]
            first_block = len(blocks)
            for name, config in fleet.plan.workloads.items():  # a new budget period: nothing spent
                period = config.period_s
                if int(t0 // period) != int(spent_since.get(name, 0.0) // period):
                    spent[name] = 0.0
                spent_since[name] = t0
            hour = (s.start_hour + hour_index) % 24
            if traffic is None and t0 in grid_end:  # a block of the grid: its arrivals, drawn once
                drawn = {}
                for name in names:
                    workload = fleet.workloads[name]
                    rate = workload.hourly_rps[hour] * scenario.factor("burst", (name,), t0)
                    n = int(sim.stream(f"arrivals/{name}").poisson(rate * (grid_end[t0] - t0)))
                    total += n
                    if total > s.max_requests:
                        raise ConfigError(
                            "max_requests", f"a run of at most {s.max_requests} requests (this one "
                            "has more; shorten --hours or raise the bound)", total,
                        )  # fmt: skip
                    times = np.sort(sim.stream(f"times/{name}").uniform(t0, grid_end[t0], n))
                    drawn[name] = (times, _rows(sim, workload, n))
                    labels[name] = _groups(sim, groups, name, n)
            for wi, name in enumerate(names):
                given_at, given_rows = (traffic or drawn).get(name, NO_TRAFFIC)
                given_groups = labels.get(name, NO_TRAFFIC[1])
                if traffic is None and t0 in grid_end and grid_end[t0] == t1:
                    lo, hi = 0, given_at.size  # the whole block of the grid
                else:
                    lo, hi = np.searchsorted(given_at, [t0, t1])
                for g in range(len(groups)):
                    if len(groups) == 1:
                        arrival, rows = given_at[lo:hi], given_rows[lo:hi]
                    elif g and not groups[g].shares.get(name):
                        continue  # none of the workload's requests come from these sites
                    else:
                        mine = np.flatnonzero(given_groups[lo:hi] == g) + lo
                        arrival, rows = given_at[mine], given_rows[mine]
                    n = arrival.size
                    try:
                        route = policy.route(RequestMeta(name, received_s=t0), now_s=t0,
                                             tiers=views[g], spent_usd=spent)  # fmt: skip
                    except DeadlineExceededError:  # cannot happen for a fresh request; be safe
                        route = Route(name, (), (), None, None, "deadline")
                    calls += 1
                    if g == 0:
                        routes[(b, name)] = route
                    release = arrival.copy()
                    deferred = np.zeros(n, dtype=bool)
                    deferrable = fleet.plan.workloads[name].urgency == "deferrable"
                    # deferrable work whose route meets a cut fails its delivery: the outbox
                    # keeps it
                    cuts = groups[g].cuts
                    blocked = [t for t in route.tiers if _cut_at(cuts.get(t, ()), t0)] \
                        if deferrable else []  # fmt: skip
                    for tier in blocked:
                        attempts[g].setdefault(tier, []).append(arrival)
                    held = waiting[(name, g)]
                    if (
                        route.defer_until_s is not None
                        or blocked
                        or (not route.tiers and deferrable)
                    ):
                        held.append((arrival, rows))
                        depth = sum(a.size for k in range(len(groups)) for a, _ in
                                    waiting[(name, k)])  # fmt: skip
                        tally.depth(wi, hour_index, depth)
                        continue
                    # deferred work released now: routed afresh with this block's route
                    if held and route.tiers:
                        old = np.concatenate([a for a, _ in held])
                        rows = np.concatenate([*(r for _, r in held), rows])
                        waiting[(name, g)] = []
                        arrival = np.concatenate((old, arrival))
                        release = np.concatenate((_drained(fleet, route, old.size, t0), release))
                        deferred = np.concatenate((np.ones(old.size, dtype=bool), deferred))
                    blocks.append(_paths(fleet, sim, wi, name, route, (arrival, rows), release,
                                         deferred, index, scenario, t0))  # fmt: skip
                    blocks[-1].group = g
                    spent[name] += float(blocks[-1].cost.sum())
            for g, book in enumerate(books):
                mine_blocks = [bl for bl in blocks[first_block:] if bl.group == g]
                feed(book, groups[g].cuts, mine_blocks, tier_names, attempts[g])
        for (name, g), items in waiting.items():  # still in the outbox when the run ends
            for arrival, rows in items:
                gone = np.full(arrival.size, np.nan)
                blocks.append(_paths(fleet, sim, names.index(name), name, None, (arrival, rows),
                                     gone, np.ones(arrival.size, dtype=bool), index, scenario,
                                     horizon))  # fmt: skip
                blocks[-1].group = g
        flush()
        serving.pop().result()
    finally:
        worker.shutdown(wait=True, cancel_futures=True)
    run = join(kept, names, tier_names, horizon) if keep_requests else join(
        [], names, tier_names, horizon)  # fmt: skip
    return replace(run, policy_calls=calls, routes=routes, states=seen, blocks_s=starts,
                   tally=tally, servers_up=servers_up)  # fmt: skip


def _rows(sim: Simulation, workload: SimWorkload, n: int) -> np.ndarray:
    """Which held-out row each of ``n`` fresh requests is (-1 without per-row outcomes)."""
    if workload.rows is None:
        return np.full(n, -1, dtype=np.int64)
    drawn: np.ndarray = sim.stream(f"rows/{workload.name}").integers(0, workload.rows.rows, n)
    return drawn


def _groups(sim: Simulation, groups: Sequence[Group], name: str, n: int) -> np.ndarray:
    """Which group each of ``n`` requests of workload ``name`` is in (all in the first
    when there is one, without a draw)."""
    if len(groups) == 1:
        return np.zeros(n, dtype=np.int64)
    shares = np.array([g.shares.get(name, 0.0) for g in groups])
    drawn: np.ndarray = sim.stream(f"groups/{name}").choice(len(groups), n, p=shares / shares.sum())
    return drawn


def _check_traffic(fleet: SimFleet, traffic: Mapping[str, Traffic], horizon_s: float) -> None:
    """ConfigError naming the workload of replayed traffic that cannot be replayed."""
    for name, (times, rows) in traffic.items():
        where = f"traffic.{name}"
        if name not in fleet.workloads:
            raise ConfigError(where, f"a workload of the plan ({', '.join(fleet.workloads)})", name)
        if times.ndim != 1 or times.shape != rows.shape:
            raise ConfigError(where, "arrival times and held-out rows, one of each per request")
        if times.size and (
            bool(np.any(np.diff(times) < 0)) or times[0] < 0 or times[-1] >= horizon_s
        ):
            raise ConfigError(where, f"sorted arrival times in [0, {horizon_s:g}) s")
        outcomes = fleet.workloads[name].rows
        if outcomes is not None and rows.size and (rows.min() < 0 or rows.max() >= outcomes.rows):
            raise ConfigError(where, f"held-out rows in [0, {outcomes.rows})", int(rows.max()))


def _cut_at(cuts: Sequence[Cut], time_s: float) -> bool:
    return any(begin <= time_s < end for begin, end, _ in cuts)


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
    requests: Traffic,
    release: np.ndarray,
    deferred: np.ndarray,
    index: dict[str, int],
    scenario: Scenario,
    time_s: float,
) -> Block:
    workload = fleet.workloads[name]
    arrival, rows = requests
    n = arrival.size
    cascade = workload.cascade
    outcomes = workload.rows
    tiers = route.tiers if route is not None else ()
    route_idx = tuple(index[t] for t in tiers)
    exit_pos = np.zeros(n, dtype=np.int64)
    degraded = np.zeros(n, dtype=bool)
    cost = np.zeros(n)
    energy = np.zeros(n)
    price = np.ones(len(index))
    for tier in fleet.tiers.values():
        price[index[tier.name]] = scenario.factor("price", (tier.name, tier.spec_tier), time_s)
    if not tiers or n == 0:
        correct = np.zeros(n, dtype=bool)
        return Block(wi, arrival, release, route_idx, exit_pos, degraded, deferred, cost,
                      energy, correct, price, rows=rows)  # fmt: skip
    if outcomes is not None:  # each request escalates as its held-out row did
        escalates = outcomes.escalates[rows]
    else:
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
        cost += reached[:, pos] * stage.cost_usd_per_inference * price[index[name_of_tier]]
        energy += reached[:, pos] * (stage.energy_j_per_inference or 0.0)
    if outcomes is not None:  # right as the answering stage was on the row
        correct = outcomes.correct[rows, np.asarray(kept)[exit_pos]]
    else:
        accuracy = workload.accuracy if workload.accuracy is not None else 1.0
        correct = sim.stream(f"correct/{name}").random(n) < accuracy
    return Block(wi, arrival, release, route_idx, exit_pos, degraded, deferred, cost, energy,
                  correct, price, rows=rows)  # fmt: skip
