"""The scoring rules of the decision matrix: one function per driver, each giving a score
from 1 (poor) to 5 (best) with a reason, or marking a hard constraint infeasible with why.

=============  ==========================================  =================================
driver         measure                                      score 5 / 4 / 3 / 2 / 1
=============  ==========================================  =================================
latency        p99 ms = compute p99 at batch 1 (profile)    <= 25% / 50% / 75% / 100% of the
               + network p99 to the tier                    SLO p99; above it: infeasible.
                                                            Unprofiled: network only, score
                                                            at most 3
privacy        privacy class and residency rules            device 5, edge at the origin
               (:mod:`tierwise.spec`)                       site 4, in the origin region 3,
                                                            elsewhere 2; excluded: infeasible
throughput     peak requests/s (mean for deferrable) over   <= 10% / 30% / 60% / 100% used;
               capacity = rows/s per replica within the     above: infeasible. Unprofiled: 3
               SLO x replicas x nodes x max_utilization
memory         footprint = max(variant size, measured       <= 5% / 15% / 35% / 70% / 100%
               peak memory) over the node's memory          of memory; above, missing
                                                            hardware tags, or no variant
                                                            that fits reaching the
                                                            workload's min_accuracy:
                                                            infeasible
cost           USD per 1M on the tier for the workload      <= 1.5x / 3x / 10x / 100x the
               alone (the cost model) against the           cheapest, else 1; over the
               cheapest tier for this workload              budget: infeasible
operations     nodes to keep running                        cloud pool <= 10 instances 5,
                                                            larger 4; edge <= 5 boxes 4,
                                                            <= 50 3, more 2; devices
                                                            <= 1,000 2, more 1
=============  ==========================================  =================================

The variant scored on a tier is the workload's pinned one, else the first (in spec order)
that fits the tier and, when the workload sets ``min_accuracy`` and profiles say, reaches
it. Device tiers' network is zero (the data is there). Edge capacity counts every site's
boxes (``node_count x site_count``); cloud capacity uses ``max_node_count`` when set. Cloud
cost assumes instances busy ``max_utilization`` of the time at the profiled throughput
(:data:`~tierwise.plan.cost.DEFAULT_CLOUD_THROUGHPUT_PER_S` when unprofiled).

Cost is stated for the workload *alone* on the tier (:data:`~tierwise.plan.cascade.ALONE_BASIS`):
an edge or device tier's fixed cost is all its own, as the playbook's formulas have it
(:mod:`tierwise.plan.cost`). The plan charges a workload only its share of the capacity it
keeps busy (:data:`~tierwise.plan.cascade.SHARE_BASIS`); the cell gives that share too,
so the two outputs can be read side by side.
"""

from __future__ import annotations

from dataclasses import dataclass

from tierwise.plan.cost import DEFAULT_CLOUD_THROUGHPUT_PER_S, tier_cost
from tierwise.plan.perf import Estimate, network_ms
from tierwise.plan.settings import PlanSettings
from tierwise.spec import (
    AnyTier,
    CloudTier,
    DeviceTier,
    EdgeTier,
    FleetSpec,
    Variant,
    Workload,
    region_of,
    variant_misfit,
    workload_origin,
)
from tierwise.spec.rules import exclusion_reasons, node_memory_mib

__all__ = [
    "DRIVERS",
    "Cell",
    "capacity_per_s",
    "cost_cell",
    "demand_per_s",
    "latency_cell",
    "memory_cell",
    "operations_cell",
    "privacy_cell",
    "score_by_steps",
    "throughput_cell",
    "tier_usd_per_million",
]


#: The six drivers of the playbook, in the order the matrix shows them.
DRIVERS: tuple[str, ...] = ("latency", "privacy", "throughput", "memory", "cost", "operations")

_LATENCY_STEPS = (0.25, 0.5, 0.75, 1.0)
_THROUGHPUT_STEPS = (0.1, 0.3, 0.6, 1.0)
_MEMORY_STEPS = (0.05, 0.15, 0.35, 0.7, 1.0)
_COST_STEPS = (1.5, 3.0, 10.0, 100.0)
_UNPROFILED_CAP = 3
_MIB_PER_GIB = 1024.0
_CLOUD_SMALL_POOL = 10
_EDGE_FEW, _EDGE_SOME = 5, 50
_DEVICES_MANY = 1000


@dataclass(frozen=True)
class Cell:
    """One driver for one workload on one tier: a score 1..5 (None when infeasible), the
    measure behind it (``value`` in ``unit``) and the reason in words."""

    driver: str
    score: int | None
    reason: str
    value: float | None = None
    unit: str | None = None

    @property
    def feasible(self) -> bool:
        return self.score is not None

    def to_dict(self) -> dict[str, object]:
        return {
            "driver": self.driver,
            "score": self.score,
            "feasible": self.feasible,
            "reason": self.reason,
            "value": self.value,
            "unit": self.unit,
        }


def score_by_steps(ratio: float, steps: tuple[float, ...]) -> int | None:
    """5 for ``ratio <= steps[0]``, 4 for ``<= steps[1]`` and so on; None past the last
    step (a hard bound)."""
    for i, bound in enumerate(steps):
        if ratio <= bound:
            return 5 - i
    return None


def latency_cell(
    spec: FleetSpec, workload: Workload, tier: AnyTier, estimate: Estimate | None
) -> Cell:
    network = network_ms(spec, workload, tier, "p99")
    slo = workload.slo.p99_ms
    if estimate is None:
        total = network
        ratio = total / slo
        score = score_by_steps(ratio, _LATENCY_STEPS)
        if score is None:
            reason = f"network alone is {total:.3g} ms at p99 > SLO {slo:g} ms"
            return Cell("latency", None, reason, total, "ms")
        reason = f"network {network:.3g} ms of SLO {slo:g} ms; compute not profiled"
        return Cell("latency", min(score, _UNPROFILED_CAP), reason, total, "ms")
    compute = estimate.single.p99_ms
    if estimate.includes_network:
        network = 0.0
    total = compute + network
    score = score_by_steps(total / slo, _LATENCY_STEPS)
    parts = f"compute {compute:.3g} + network {network:.3g}"
    if score is None:
        return Cell("latency", None, f"p99 {total:.3g} ms ({parts}) > SLO {slo:g} ms", total, "ms")
    pct = total / slo * 100
    return Cell("latency", score, f"p99 {total:.3g} ms ({parts}), {pct:.0f}% of SLO", total, "ms")


def privacy_cell(spec: FleetSpec, workload: Workload, tier: AnyTier) -> Cell:
    origin = workload_origin(spec, workload)
    reasons = exclusion_reasons(tier, workload, origin, spec.sites)
    if reasons:
        return Cell("privacy", None, "; ".join(reasons))
    if isinstance(tier, DeviceTier):
        return Cell("privacy", 5, "data stays on the device it starts on")
    if isinstance(tier, EdgeTier) and tier.site == origin.site:
        return Cell("privacy", 4, f"data stays at its site {origin.site!r}")
    region = region_of(spec, tier)
    if region is not None and region == origin.region:
        return Cell("privacy", 3, f"data leaves its site but stays in region {region!r}")
    where = f"region {region!r}" if region else "an unknown region"
    return Cell("privacy", 2, f"{workload.privacy} data may go to {where}")


def _nodes(spec: FleetSpec, tier: AnyTier) -> int:
    if isinstance(tier, EdgeTier):
        site = spec.sites.get(tier.site)
        return tier.capacity.node_count * (site.site_count if site is not None else 1)
    if isinstance(tier, CloudTier):
        return tier.capacity.max_node_count or tier.capacity.node_count
    return tier.capacity.node_count


def capacity_per_s(
    spec: FleetSpec,
    workload: Workload,
    tier: AnyTier,
    estimate: Estimate,
    settings: PlanSettings,
) -> float | None:
    """Requests/s the whole tier serves for this workload within its SLO and headroom;
    None when even one request misses the SLO."""
    network = 0.0 if estimate.includes_network else network_ms(spec, workload, tier, "p99")
    per_replica = estimate.throughput_within(workload.slo.p99_ms - network)
    if per_replica is None:
        return None
    replicas = tier.capacity.max_replicas_per_node * _nodes(spec, tier)
    return per_replica * replicas * settings.max_utilization


def demand_per_s(workload: Workload) -> float:
    """The rate a tier must sustain: the busiest hour's, or the mean for deferrable work."""
    traffic = workload.traffic
    return traffic.mean_requests_per_s if workload.urgency == "deferrable" else (
        traffic.peak_requests_per_s
    )  # fmt: skip


def throughput_cell(
    spec: FleetSpec,
    workload: Workload,
    tier: AnyTier,
    estimate: Estimate | None,
    settings: PlanSettings,
) -> Cell:
    need = demand_per_s(workload)
    if estimate is None:
        return Cell("throughput", _UNPROFILED_CAP, f"needs {need:.3g}/s; not profiled", None, "")
    capacity = capacity_per_s(spec, workload, tier, estimate, settings)
    note = ""
    if capacity is None:  # the latency cell says why; judge batch 1 here
        replicas = tier.capacity.max_replicas_per_node * _nodes(spec, tier)
        capacity = estimate.single.throughput_per_s * replicas * settings.max_utilization
        note = " at batch 1"
    used = need / capacity if capacity > 0 else float("inf")
    score = score_by_steps(used, _THROUGHPUT_STEPS)
    text = f"needs {need:.3g}/s of {capacity:.3g}/s{note} ({used * 100:.2g}% at most)"
    if score is None:
        return Cell("throughput", None, f"{text}: over capacity", used, "fraction")
    return Cell("throughput", score, text, used, "fraction")


def memory_cell(
    workload: Workload,
    tier: AnyTier,
    variant: Variant | None,
    estimate: Estimate | None,
    accuracy_problem: str | None = None,
) -> Cell:
    if variant is None:
        return Cell("memory", None, f"no variant of {workload.model!r} fits tier {tier.name!r}")
    misfit = variant_misfit(variant, tier)
    if misfit is not None:
        return Cell("memory", None, misfit)
    if accuracy_problem is not None:
        return Cell("memory", None, accuracy_problem)
    peak = estimate.peak_memory_mib if estimate is not None else None
    footprint = max(variant.size_mib, peak or 0.0)
    memory_mib = node_memory_mib(tier)
    used = footprint / memory_mib
    score = score_by_steps(used, _MEMORY_STEPS)
    what = "peak" if peak is not None and peak > variant.size_mib else "size"
    text = f"{variant.name} {what} {footprint:.3g} MiB of {memory_mib:,.0f} MiB"
    if score is None:
        return Cell("memory", None, f"{text}: does not fit", used, "fraction")
    return Cell("memory", score, f"{text} ({used * 100:.2g}%)", used, "fraction")


def tier_usd_per_million(
    spec: FleetSpec,
    workload: Workload,
    tier: AnyTier,
    estimate: Estimate | None,
    settings: PlanSettings,
) -> tuple[float, str]:
    """USD per 1M inferences of the workload on the tier (all its traffic), and a note."""

    note = ""
    if workload.traffic.requests_per_month <= 0:
        return 0.0, "; no traffic"
    if isinstance(tier, CloudTier):
        per_s = DEFAULT_CLOUD_THROUGHPUT_PER_S
        if estimate is not None:
            network = 0.0 if estimate.includes_network else network_ms(spec, workload, tier, "p99")
            per_s = estimate.throughput_within(workload.slo.p99_ms - network) or (
                estimate.single.throughput_per_s
            )
            per_s *= tier.capacity.max_replicas_per_node
        else:
            note = f"; assumes {per_s:g}/s per instance (not profiled)"
        breakdown = tier_cost(
            spec,
            workload,
            tier,
            throughput_per_instance_per_s=per_s,
            target_utilization=settings.max_utilization,
        )
    elif isinstance(tier, DeviceTier):
        busy_s = estimate.single.mean_ms / 1000.0 if estimate is not None else 0.0
        joules = estimate.energy_j_per_inference if estimate is not None else None
        breakdown = tier_cost(
            spec, workload, tier, busy_s_per_inference=busy_s, energy_j_per_inference=joules
        )
    else:
        breakdown = tier_cost(spec, workload, tier)
    return breakdown.usd_per_million_inferences, note


def _basis(
    kind: str | None, share_usd_per_million: float | None, fixed_usd_per_month: float
) -> str:
    """What the cost figure counts (:data:`~tierwise.plan.cascade.ALONE_BASIS`), beside the
    plan's share of it."""
    if kind is None:
        return ""
    if kind == "cloud":
        return " for the instance-hours it keeps busy, as the plan counts them"
    share = "unknown (not profiled)"
    if share_usd_per_million is not None:
        share = f"${share_usd_per_million:.3g} per 1M"
    return f" alone, fixed ${fixed_usd_per_month:,.2f}/month included; plan share {share}"


def cost_cell(
    workload: Workload,
    usd_per_million: float,
    cheapest_usd_per_million: float,
    note: str = "",
    *,
    kind: str | None = None,
    share_usd_per_million: float | None = None,
    fixed_usd_per_month: float = 0.0,
) -> Cell:
    """The cost driver: ``usd_per_million`` is the workload's cost alone on the tier; with
    ``kind``, the reason says so and gives the plan's share (None: not profiled) and the
    tier's fixed monthly cost."""
    budget = workload.budget
    monthly = usd_per_million * workload.traffic.requests_per_month / 1e6
    basis = _basis(kind, share_usd_per_million, fixed_usd_per_month)
    text = f"${usd_per_million:.4g} per 1M (${monthly:,.2f}/month){basis}{note}"
    if budget is not None:
        limit = budget.usd_per_million_inferences
        if limit is not None and usd_per_million > limit:
            return Cell("cost", None, f"{text} > budget ${limit:g} per 1M", usd_per_million, "usd")
        per_month = budget.usd_per_month
        if per_month is not None and monthly > per_month:
            return Cell(
                "cost", None, f"{text} > budget ${per_month:g}/month", usd_per_million, "usd"
            )
    if usd_per_million <= cheapest_usd_per_million * (1 + 1e-9):
        return Cell("cost", 5, f"{text}, the cheapest", usd_per_million, "usd")
    ratio = usd_per_million / cheapest_usd_per_million if cheapest_usd_per_million > 0 else 1e9
    score = score_by_steps(ratio, _COST_STEPS) or 1
    return Cell("cost", score, f"{text}, {ratio:.3g}x the cheapest", usd_per_million, "usd")


def operations_cell(spec: FleetSpec, tier: AnyTier) -> Cell:
    nodes = _nodes(spec, tier)
    if isinstance(tier, CloudTier):
        score = 5 if nodes <= _CLOUD_SMALL_POOL else 4
        return Cell("operations", score, f"a managed pool of up to {nodes} instances", nodes, "")
    if isinstance(tier, EdgeTier):
        site = spec.sites.get(tier.site)
        sites = site.site_count if site is not None else 1
        score = 4 if nodes <= _EDGE_FEW else 3 if nodes <= _EDGE_SOME else 2
        text = f"{nodes} boxes at {sites} site(s) to update and repair"
        return Cell("operations", score, text, nodes, "")
    score = 2 if nodes <= _DEVICES_MANY else 1
    text = f"{nodes:,} devices run the model: app releases, mixed hardware"
    return Cell("operations", score, text, nodes, "")
