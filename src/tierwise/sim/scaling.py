"""Cloud pools that follow their load, late: the autoscaler's delay.

A cloud tier whose spec gives a ceiling (``capacity.max_node_count`` above
``node_count``) is sized as an autoscaler sizes it (Kubernetes' HPA, a cloud's instance
group, KServe on Knative): it starts the run with the servers its load needs then, and
when its load rises the servers it now needs come up ``scale_up_s`` later (the
autoscaler noticing, the instance starting, the model loading); when its load falls, the
servers no longer needed stay up ``scale_down_s`` more (the stabilisation window) and are
then removed. It never has fewer than ``node_count`` servers (times replicas per node)
nor more than the ceiling.

The load is the tier's share of each workload's requests (what the plan's cascade says
reaches it) at the local hour's rate, times any burst; one server takes its throughput at
the largest batch times ``target_utilization``. A server that is not up is one the
balancer cannot hand calls to: an outage of that server, as a failed node's is
(:func:`tierwise.sim.tiers.server_outages`), so the queues of a pool that scales up late
grow, and refuse past ``max_queue``, as they would.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING

from tierwise.sim.core import Simulation
from tierwise.sim.scenario import Scenario

if TYPE_CHECKING:
    from tierwise.sim.inputs import SimFleet

__all__ = ["Scaling", "Timeline", "fleet_outages", "scaling_outages"]

#: (time s, servers up from then on), in time order
Timeline = list[tuple[float, int]]


@dataclass(frozen=True)
class Scaling:
    """How one cloud tier scales: ``floor`` servers always up, at most the tier's
    ``servers``; ``per_server_rps`` requests per second one server is given;
    ``shares``: per workload, the share of its requests that reach the tier."""

    floor: int
    per_server_rps: float
    shares: Mapping[str, float]


def _needs(
    scaling: Scaling,
    ceiling: int,
    hourly_rps: Mapping[str, tuple[float, ...]],
    scenario: Scenario,
    horizon_s: float,
    start_hour: int,
) -> list[tuple[float, float, int]]:
    """``(from, until, servers needed)`` over the run, split at every hour and burst."""
    cuts = {float(h) * 3600.0 for h in range(math.ceil(horizon_s / 3600.0))}
    for event in scenario.events:
        if event.kind == "burst" and event.applies_to(scaling.shares):
            cuts |= {t for t in (event.start_s, event.end_s) if t is not None and t < horizon_s}
    edges = sorted(cuts | {0.0})
    out = []
    for begin, end in zip(edges, [*edges[1:], horizon_s], strict=True):
        hour = (start_hour + int(begin // 3600.0)) % 24
        load = 0.0
        for workload, share in scaling.shares.items():
            factor = scenario.factor("burst", (workload,), begin)
            load += share * hourly_rps[workload][hour] * factor
        wanted = math.ceil(load / scaling.per_server_rps - 1e-9) if scaling.per_server_rps else 0
        out.append((begin, end, min(ceiling, max(scaling.floor, wanted))))
    return out


def _up_spans(
    needs: list[tuple[float, float, int]], server: int, up_s: float, down_s: float, horizon_s: float
) -> list[tuple[float, float]]:
    """When ``server`` is up: from ``up_s`` after its load began needing it (at once when
    the run starts needing it) to ``down_s`` after the need ended."""
    wanted: list[tuple[float, float]] = []
    for begin, end, count in needs:
        if count > server:
            if wanted and wanted[-1][1] == begin:
                wanted[-1] = (wanted[-1][0], end)
            else:
                wanted.append((begin, end))
    spans: list[tuple[float, float]] = []
    for begin, end in wanted:
        start = begin if begin == 0.0 else begin + up_s
        stop = horizon_s if end >= horizon_s else min(horizon_s, end + down_s)
        if spans and begin <= spans[-1][1]:  # needed again before it was removed: kept
            spans[-1] = (spans[-1][0], max(stop, spans[-1][1]))
        elif start < stop:
            spans.append((start, stop))
    return spans


def scaling_outages(
    scaled: Mapping[str, tuple[Scaling, int]],
    hourly_rps: Mapping[str, tuple[float, ...]],
    scenario: Scenario,
    horizon_s: float,
    *,
    start_hour: int,
    up_s: float,
    down_s: float,
) -> tuple[dict[str, list[tuple[int, float, float]]], dict[str, Timeline]]:
    """For each tier in ``scaled`` (its :class:`Scaling` and its ceiling of servers):
    ``(server, from, until)`` for every span a server is not up, and the number of
    servers up over the run."""
    outages: dict[str, list[tuple[int, float, float]]] = {}
    timelines: dict[str, Timeline] = {}
    for name, (scaling, ceiling) in scaled.items():
        needs = _needs(scaling, ceiling, hourly_rps, scenario, horizon_s, start_hour)
        found: list[tuple[int, float, float]] = []
        changes: dict[float, int] = {0.0: scaling.floor}
        for server in range(scaling.floor, ceiling):
            spans = _up_spans(needs, server, up_s, down_s, horizon_s)
            gap_from = 0.0
            for start, stop in spans:
                if start > gap_from:
                    found.append((server, gap_from, start))
                changes[start] = changes.get(start, 0) + 1
                if stop < horizon_s:
                    changes[stop] = changes.get(stop, 0) - 1
                gap_from = stop
            if gap_from < horizon_s:
                found.append((server, gap_from, horizon_s))
        outages[name] = found
        timeline: Timeline = []
        up = 0
        for at in sorted(changes):
            up += changes[at]
            if not timeline or timeline[-1][1] != up:
                timeline.append((at, up))
        timelines[name] = timeline
    return outages, timelines


def fleet_outages(
    fleet: SimFleet, scenario: Scenario, sim: Simulation, horizon_s: float
) -> tuple[dict[str, list[tuple[int, float, float]]], dict[str, Timeline]]:
    """Every server's spans out of service over the run: failed, preempted
    (:func:`~tierwise.sim.tiers.server_outages`; not counted while the server is not up)
    or not up in an autoscaled pool; and the servers up over the run of each autoscaled
    tier."""
    from tierwise.sim.tiers import server_outages

    s = fleet.settings
    outages = server_outages(fleet, scenario, sim, horizon_s)
    scaled = {t.name: (t.scaling, t.servers) for t in fleet.tiers.values() if t.scaling}
    unscaled, servers_up = scaling_outages(
        scaled, {w.name: w.hourly_rps for w in fleet.workloads.values()}, scenario, horizon_s,
        start_hour=s.start_hour, up_s=s.scale_up_s, down_s=s.scale_down_s,
    )  # fmt: skip
    for name, spans in unscaled.items():  # a server not up yet is down to the balancer
        # a failure or preemption of a server that is not up takes nothing away
        failures = [
            (j, begin, end)
            for j, begin, end in outages.get(name, [])
            if not any(k == j and a <= begin < b for k, a, b in spans)
        ]
        outages[name] = [*failures, *spans]
    return outages, servers_up
