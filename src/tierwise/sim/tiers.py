"""The tiers under a scenario: the state the router observes in them, which of their
servers are up, and how a tier serves the calls that reach it.

- :func:`tier_states`: unhealthy while every server is down, the breaker's state (a
  partition is seen only through it), thermal offload during heat, and the p99 a
  router's latency window would read;
- :func:`partition_cuts`: when calls to a tier meet a partition;
- :func:`server_outages`: servers a ``node_failure`` or a ``spot_preemption`` takes down;
- :func:`run_tier`: devices answer in process; an edge or cloud tier's balancer hands
  the calls round robin to its servers that are up, each a dynamic batcher
  (:func:`~tierwise.sim.queues.batching_server`) that carries its backlog from one call
  of this function to the next.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from tierwise.link.delay import Z99
from tierwise.router.types import TierState
from tierwise.sim.core import Simulation
from tierwise.sim.inputs import SimFleet, SimTier
from tierwise.sim.queues import batching_server
from tierwise.sim.scenario import Scenario

__all__ = [
    "Cut",
    "Outage",
    "assign",
    "partition_cuts",
    "run_tier",
    "sent_into",
    "server_outages",
    "tier_states",
]


def tier_states(
    fleet: SimFleet,
    scenario: Scenario,
    time_s: float,
    breakers: Any = None,
    outages: Mapping[str, Sequence[Outage]] | None = None,
) -> dict[str, TierState]:
    """The tiers' state at ``time_s`` as the router would observe it: unhealthy while
    every server is down (as ``outages`` say, else as the node failures do), its breaker
    open as ``breakers`` (a :class:`~tierwise.sim.breakers.BreakerBook`) says (a
    partition is not seen, only its failed calls), thermal offload during heat, and the
    p99 of a call at light load (service plus round trip) as its latency window would
    read."""
    states = {}
    for name, tier in fleet.tiers.items():
        names = (name, tier.spec_tier)
        down = heat = False
        failed = 0
        for event in scenario.events:
            if not event.active(time_s) or not event.applies_to(names):
                continue
            if event.kind == "heat":
                heat = True
            elif event.kind == "node_failure" and outages is None:
                failed += event.nodes or 0
        if outages is not None:  # every span a server is out, node failures included
            failed = len({j for j, begin, end in outages.get(name, ()) if begin <= time_s < end})
        if tier.remote and failed >= tier.servers:
            down = True  # every server failed: the router finds none
        p99_ms = 1000.0 * float(tier.service_s[1]) * float(np.exp(tier.sigma * Z99))
        if tier.remote:
            p99_ms += tier.rtt.p99_ms
        tripped = breakers is not None and breakers.open_at(name, time_s)
        states[name] = TierState(name, healthy=not down, breaker_open=tripped,
                                 thermal_offload=heat, p99_ms=p99_ms)  # fmt: skip
    return states


#: (server, down from, down until) of one tier
Outage = tuple[int, float, float]
#: (from, until, blackhole?) of one tier's partition
Cut = tuple[float, float, bool]


def sent_into(cuts: Sequence[Cut], sent: np.ndarray, *, blackhole: bool) -> np.ndarray:
    """Which calls sent at ``sent`` meet one of ``cuts`` of that mode (blackhole or reset)."""
    out = np.zeros(sent.size, dtype=bool)
    for begin, end, holds in cuts:
        if holds == blackhole:
            out |= (sent >= begin) & (sent < end)
    return out


def partition_cuts(fleet: SimFleet, scenario: Scenario, horizon_s: float) -> dict[str, list[Cut]]:
    """Each remote tier's partitions: calls that reach it then fail (see run_tier);
    partitions of some sites only are their groups' (:mod:`tierwise.sim.sites`)."""
    out: dict[str, list[Cut]] = {}
    for name, tier in fleet.tiers.items():
        cuts = [
            (e.start_s, horizon_s if e.end_s is None else e.end_s, e.mode == "blackhole")
            for e in scenario.events
            if e.kind == "partition"
            and not e.sites
            and tier.remote
            and e.applies_to((name, tier.spec_tier))
        ]
        if cuts:
            out[name] = cuts
    return out


def server_outages(
    fleet: SimFleet, scenario: Scenario, sim: Simulation, horizon_s: float
) -> dict[str, list[Outage]]:
    """Which servers of each remote tier are down when: a ``node_failure`` takes its first
    ``nodes`` servers down for its span; ``spot_preemption`` takes each server down at
    Poisson times (``rate_per_hour``) until a replacement is up ``spot_replace_s`` later."""
    out: dict[str, list[Outage]] = {}
    for name, tier in fleet.tiers.items():
        if not tier.remote:
            continue
        names = (name, tier.spec_tier)
        found: list[Outage] = []
        failed = 0  # servers the node failures so far took: the next takes the next ones
        for i, event in enumerate(scenario.events):
            if not event.applies_to(names):
                continue
            end = horizon_s if event.end_s is None else min(event.end_s, horizon_s)
            if event.kind == "node_failure":
                taken = [(failed + j) % tier.servers for j in range(event.nodes or 0)]
                found += [(j, event.start_s, end) for j in sorted(set(taken))]
                failed += event.nodes or 0
            elif event.kind == "spot_preemption" and event.rate_per_hour:
                rng = sim.stream(f"preemption/{name}/{i}")
                span_h = max(0.0, end - event.start_s) / 3600.0
                for j in range(tier.servers):
                    count = int(rng.poisson(event.rate_per_hour * span_h))
                    times = np.sort(rng.uniform(event.start_s, end, count))
                    replace_s = fleet.settings.spot_replace_s
                    found += [(j, float(t), float(t) + replace_s) for t in times]
        if found:
            out[name] = found
    return out


def assign(start: np.ndarray, servers: int, outages: list[Outage]) -> np.ndarray:
    """The server each call (sorted by ``start``) goes to: round robin over the servers
    that are up when it arrives; -1 while none is (the call is refused)."""
    if not outages:
        return np.arange(start.size) % servers
    edges = sorted({0.0, *(t for _, a, b in outages for t in (a, b))})
    segment = np.searchsorted(np.asarray(edges), start, side="right") - 1
    out = np.empty(start.size, dtype=np.int64)
    turn = 0
    for k, t0 in enumerate(edges):
        rows = np.flatnonzero(segment == k)
        if rows.size == 0:
            continue
        down = {j for j, a, b in outages if a <= t0 < b}
        up = np.array([j for j in range(servers) if j not in down], dtype=np.int64)
        if up.size == 0:
            out[rows] = -1
            continue
        out[rows] = up[(turn + np.arange(rows.size)) % up.size]
        turn += rows.size
    return out


def run_tier(
    tier: SimTier,
    fleet: SimFleet,
    sim: Simulation,
    start: np.ndarray,
    outages: list[Outage],
    free: list[float],
    sent: np.ndarray,
    cut: tuple[np.ndarray, np.ndarray] | None = None,
    skipped: np.ndarray | None = None,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """When each call (sorted by ``start``, when it reaches the tier) ends, whether it
    ran on a server, and whether it failed: refused, or slower than the tier's timeout
    (the caller, who ``sent`` it, gives up at ``sent + timeout_s``); one sent into a
    partition (``cut``: which calls met a blackhole, which a reset one) is refused as it
    is sent or, in a blackhole, given up on; a call ``skipped`` by the router's breaker
    is never made and fails as it is sent. ``free`` holds when each server is free, and
    is brought up to date."""
    rng = sim.stream(f"service/{tier.name}")
    jitter = np.exp(tier.sigma * rng.standard_normal(start.size))
    if tier.steady_s > 0:  # the spread is the model's: the server's own work is steady
        compute = float(tier.service_s[1]) - tier.steady_s
        jitter = (compute * jitter + tier.steady_s) / (compute + tier.steady_s)
    if not tier.remote:  # in process on each device: no shared queue
        finish = start + float(tier.service_s[1]) * jitter
        return finish, np.ones(start.size, dtype=bool), np.zeros(start.size, dtype=bool)
    s = fleet.settings
    server_of = assign(start, tier.servers, outages)
    if cut is None:
        held, reset = np.zeros(start.size, dtype=bool), np.zeros(start.size, dtype=bool)
    else:
        held, reset = cut[0].copy(), cut[1].copy()
    server_of[held | reset] = -1
    if skipped is not None:
        server_of[skipped] = -1
        held &= ~skipped
        reset |= skipped
    done = np.where(server_of < 0, start, np.nan)
    refused = server_of < 0  # no server up: refused at once
    for server in range(tier.servers):  # a balancer spreads the calls over those up
        part = np.flatnonzero(server_of == server)
        if part.size == 0:
            continue
        run = batching_server(
            start[part], tier.service_s, max_batch=tier.service_s.size - 1,
            max_delay_s=s.max_delay_ms / 1000.0, max_queue=s.max_queue, jitter=jitter[part],
            free_s=free[server : server + 1],
        )  # fmt: skip
        done[part], refused[part] = run.done_s, run.refused
        free[server] = run.free_s[0]
    slow = ((done - sent > tier.timeout_s) & ~refused) | held
    failed = refused | slow
    finish = np.where(slow, sent + tier.timeout_s, np.where(refused, start, done))
    finish[reset] = sent[reset]
    return finish, ~refused, failed
