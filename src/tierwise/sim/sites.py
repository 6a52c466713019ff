"""Partitions of some sites only: a store's uplink down while the other stores, and the
cloud, carry on.

A partition event that names ``sites`` cuts those sites (by name or pattern, as the spec
names them) from the tiers it names, or, naming none, from every remote tier that is not
at the site itself (the cloud, other sites' edge boxes): the site's own edge boxes stay
reachable from its devices. ``instances: N`` cuts only N of a site entry's
``site_count`` identical sites (all of them by default, and at most all of them).

Each site runs its own router, so only the routers of the cut sites see their calls fail
and their breakers open. The simulator therefore splits traffic into **groups**: the
requests from site instances cut by the same events share a group, with its own cuts
and breakers, and every other request (other sites, no site) is in the first group,
which meets only the partitions of whole tiers. A workload's requests come from its
origin site (the spec's ``origin_site``, or what its tiers agree on), spread evenly over
the site's instances. Without site partitions there is one group and nothing changes.
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass, field

from tierwise.sim.inputs import SimFleet
from tierwise.sim.scenario import Scenario, ScenarioEvent
from tierwise.sim.tiers import Cut
from tierwise.spec.queries import workload_origin

__all__ = ["OTHERS", "Group", "site_groups"]

#: the first group's name: every request no site partition cuts (no spec site is named so)
OTHERS = "(other sites)"


@dataclass(frozen=True)
class Group:
    """Requests that share their routers' view of the links: ``cuts`` per tier (the
    partitions their calls meet), ``shares`` per workload (the share of its requests
    from this group; a workload not named has none here, except in the first group,
    which holds whatever the others do not)."""

    name: str
    cuts: dict[str, list[Cut]]
    shares: dict[str, float] = field(default_factory=dict)


def _cut_tiers(fleet: SimFleet, event: ScenarioEvent, site: str) -> list[str]:
    """The remote tiers a site event cuts ``site`` from."""
    out = []
    for name, tier in fleet.tiers.items():
        if not tier.remote:
            continue
        if event.tiers:
            if event.applies_to((name, tier.spec_tier)):
                out.append(name)
        elif fleet.plan.tiers[name].site != site:
            out.append(name)
    return out


def site_groups(
    fleet: SimFleet, scenario: Scenario, base: dict[str, list[Cut]], horizon_s: float
) -> list[Group]:
    """The groups of a run (see the module docstring); ``base``: the cuts of whole tiers,
    which every group meets."""
    events = [e for e in scenario.events if e.kind == "partition" and e.sites]
    rest = Group(OTHERS, base)
    if not events:
        return [rest]
    origins = {
        name: workload_origin(fleet.spec, name).site
        for name in fleet.workloads
        if name in fleet.spec.workloads
    }
    groups = [rest]
    uncut: dict[str, float] = {}  # per workload: the share from sites no event cuts
    for site_name, site in fleet.spec.sites.items():
        mine = [e for e in events if e.names_site(site_name)]
        if not mine:
            continue
        count = site.site_count
        reach = {id(e): min(count, e.instances or count) for e in mine}
        edges = sorted({0, count, *reach.values()})
        top = max(reach.values())
        uncut.update({w: (count - top) / count for w, o in origins.items() if o == site_name})
        for low, high in itertools.pairwise(edges):
            cutting = [e for e in mine if reach[id(e)] > low]
            if not cutting:
                continue
            cuts = {tier: list(spans) for tier, spans in base.items()}
            for event in cutting:
                end = horizon_s if event.end_s is None else event.end_s
                for tier in _cut_tiers(fleet, event, site_name):
                    cuts.setdefault(tier, []).append(
                        (event.start_s, end, event.mode == "blackhole")
                    )
            share = (high - low) / count
            shares = {w: share for w, origin in origins.items() if origin == site_name}
            label = site_name if (low, high) == (0, count) else f"{site_name}[{low}:{high}]"
            groups.append(Group(label, cuts, shares))
    rest.shares.update({w: uncut.get(w, 1.0) for w in fleet.workloads})
    return groups
