"""A plan: the placement each workload takes, what each tier runs, and what it all costs.

:func:`evaluate` prices any assignment of options the same way (the optimizer's, the
greedy baseline's, a repriced one): edge and device tiers that carry work cost their
monthly figure; cloud pools run, in each period, the fewest instances that hold the
load (``ceil(busy replicas / replicas per instance)``); plus every variable cost. Each
workload's cost is its placement's (:data:`~tierwise.plan.cascade.SHARE_BASIS`: its
variable costs and its share of the tiers it uses, by the capacity it keeps busy); what
no workload's share covers of a paid tier is the tier's idle cost. The decision matrix
prices a tier for a workload *alone* instead (:data:`~tierwise.plan.cascade.ALONE_BASIS`),
which is that share plus the tier's idle cost when nothing else runs there.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from tierwise.plan.cascade import SHARE_BASIS
from tierwise.plan.memory import memory_use
from tierwise.plan.options import Option, WorkloadOptions
from tierwise.plan.problem import TierModel, hours_per_month
from tierwise.plan.settings import PlanSettings

__all__ = ["Placement", "PlanResult", "TierUse", "evaluate"]

_EPS = 1e-9


@dataclass(frozen=True)
class Placement:
    """Where one workload runs and what it costs."""

    workload: str
    option: Option
    requests_per_month: float
    alternatives: int  # how many feasible placements it had

    @property
    def usd_per_month(self) -> float:
        return self.option.usd_per_month

    @property
    def usd_per_million(self) -> float:
        volume = self.requests_per_month
        return self.usd_per_month / volume * 1e6 if volume > 0 else 0.0

    def to_dict(self) -> dict[str, Any]:
        o = self.option
        return {
            "workload": self.workload,
            "placement": o.label,
            "stages": [
                {
                    "tier": s.tier,
                    "kind": s.kind,
                    "variant": s.variant,
                    "reach": s.reach,
                    "rule": s.rule,
                    "threshold": s.threshold,
                    "output": s.output,
                    "scores": s.scores,
                    "provider": s.provider,
                    "estimate": s.source,
                }
                for s in o.stages
            ],
            "accuracy": o.accuracy,
            "latency_ms": dict(o.latency_ms),
            "requests_per_month": self.requests_per_month,
            "usd_per_month": self.usd_per_month,
            "usd_per_million": self.usd_per_million,
            "usd_per_month_by_tier": dict(o.usd_per_month_by_tier),
            "alternatives": self.alternatives,
        }


@dataclass(frozen=True)
class TierUse:
    """One tier in the plan: whether it carries work, how busy it gets, what it costs."""

    tier: str
    kind: str
    used: bool
    peak_busy_replicas: float
    capacity_replicas: float  # for a cloud pool: at its largest size
    instances: tuple[int, ...]  # cloud: per period of the day
    usd_per_month: float
    workloads: tuple[str, ...]
    memory_mib: float = 0.0  # the variants placed here, resident on each node
    node_memory_mib: float = 0.0
    idle_usd_per_month: float = 0.0  # of usd_per_month, what no workload's share covers

    @property
    def peak_utilization(self) -> float:
        return self.peak_busy_replicas / self.capacity_replicas if self.capacity_replicas else 0.0

    def to_dict(self) -> dict[str, Any]:
        return {
            "tier": self.tier,
            "kind": self.kind,
            "used": self.used,
            "peak_busy_replicas": self.peak_busy_replicas,
            "capacity_replicas": self.capacity_replicas,
            "peak_utilization": self.peak_utilization,
            "instances": list(self.instances),
            "usd_per_month": self.usd_per_month,
            "workloads": list(self.workloads),
            "memory_mib": self.memory_mib,
            "node_memory_mib": self.node_memory_mib,
            "idle_usd_per_month": self.idle_usd_per_month,
        }


@dataclass(frozen=True)
class PlanResult:
    """The optimizer's plan with its figures; ``to_dict`` is what ``--json`` prints."""

    placements: dict[str, Placement]
    tiers: dict[str, TierUse]
    total_usd_per_month: float
    feasible: bool
    periods: tuple[float, ...]
    settings: PlanSettings
    status: str = "optimal"
    mip_gap: float = 0.0
    solve_s: float = 0.0
    size: dict[str, int] = field(default_factory=dict)

    @property
    def idle_usd_per_month(self) -> float:
        """What the plan pays for capacity no workload's share covers."""
        return self.total_usd_per_month - sum(p.usd_per_month for p in self.placements.values())

    def to_dict(self) -> dict[str, Any]:
        return {
            "total_usd_per_month": self.total_usd_per_month,
            "idle_usd_per_month": self.idle_usd_per_month,
            "cost_basis": SHARE_BASIS,
            "status": self.status,
            "mip_gap": self.mip_gap,
            "solve_s": self.solve_s,
            "size": dict(self.size),
            "periods_h": list(self.periods),
            "settings": self.settings.model_dump(),
            "placements": {n: p.to_dict() for n, p in self.placements.items()},
            "tiers": {n: t.to_dict() for n, t in self.tiers.items()},
        }


def evaluate(
    workloads: Sequence[WorkloadOptions],
    choice: Sequence[int],
    models: dict[str, TierModel],
    periods: tuple[float, ...],
    settings: PlanSettings,
) -> PlanResult:
    """Price the assignment ``choice`` (an option index per workload); ``feasible`` says
    whether every tier holds its load."""
    n_periods = len(periods)
    load = {t: [0.0] * n_periods for t in models}
    users: dict[str, list[str]] = {t: [] for t in models}
    shares = dict.fromkeys(models, 0.0)  # what the workloads' shares of each tier cover
    placements: dict[str, Placement] = {}
    variable = 0.0
    for w, j in zip(workloads, choice, strict=True):
        option = w.options[j]
        placements[w.workload] = Placement(w.workload, option, w.requests_per_month, len(w.options))
        variable += option.variable_usd_per_month
        for t, usd in option.usd_per_month_by_tier.items():
            shares[t] += usd - option.variable_usd_per_month_by_tier.get(t, 0.0)
        for t, usage in option.usage.items():
            users[t].append(w.workload)
            for p, u in enumerate(usage):
                load[t][p] += u
    memory = memory_use((p.option for p in placements.values()), models)
    feasible = all(use.fits for use in memory.values())
    tiers: dict[str, TierUse] = {}
    total = variable
    for name, model in models.items():
        used = bool(users[name])
        peak = max(load[name], default=0.0)
        if model.cloud:
            instances = tuple(
                math.ceil(u / model.capacity_replicas - _EPS) if u > _EPS else 0 for u in load[name]
            )
            usd = sum(
                k * model.instance_usd_per_hour * hours_per_month(h)
                for k, h in zip(instances, periods, strict=True)
            )
            room = model.capacity_replicas * model.max_instances
            feasible &= max(instances, default=0) <= model.max_instances
        else:
            instances = ()
            usd = model.fixed_usd_per_month if used else 0.0
            room = model.capacity_replicas
            feasible &= peak <= room * (1 + 1e-7) + _EPS
        total += usd
        resident = memory[name].needed_mib if name in memory else 0.0
        tiers[name] = TierUse(
            name, model.kind, used, peak, room, instances, usd, tuple(users[name]), resident,
            model.memory_mib, max(usd - shares[name], 0.0),
        )  # fmt: skip
    return PlanResult(placements, tiers, total, feasible, periods, settings)
