"""The placement problem as numbers: what each tier costs and holds, and the day's periods.

Costs are USD per month (a month is :data:`~tierwise.spec.DAYS_PER_MONTH` days):

- an **edge** tier costs its boxes' monthly cost (amortised capex, maintenance, power,
  connectivity; :func:`~tierwise.plan.formulas.edge_cost`) times ``node_count`` per site
  times the site's ``site_count``, once any workload runs on it; plus ``ops`` per
  inference;
- a **device** tier costs its devices' update and telemetry per month, once any workload
  runs on it, plus the energy of each inference when the operator pays it;
- a **cloud** tier costs each instance-hour (the purchase mix's blended price plus the
  energy fee) of the instances it runs in each period of the day, plus egress.

Capacity is counted in busy replicas: a tier of *n* nodes with *r* replicas each may keep
``n x r x max_utilization`` replicas busy (a cloud instance ``r x max_utilization``).

The day is one period of 24 hours when every interactive workload's traffic is flat, else
24 periods of one hour each, so that autoscaled cloud pools follow the daily shape and
fixed tiers are sized for their busiest hour. Deferrable work counts at its mean rate in
every period.
"""

from __future__ import annotations

from dataclasses import dataclass, replace

from tierwise.plan.settings import PlanSettings
from tierwise.spec import (
    DAYS_PER_MONTH,
    HOURS_PER_MONTH,
    CloudTier,
    EdgeTier,
    FleetSpec,
    Workload,
    node_memory_mib,
)

__all__ = [
    "MIXES",
    "TierModel",
    "day_periods",
    "hours_per_month",
    "period_rates",
    "tier_models",
    "with_cloud_prices",
]


#: Purchase mixes the cost views compare: the spec's own, and all of one kind.
MIXES: tuple[str, ...] = ("spec", "on_demand", "spot", "reserved")

_WATTS_PER_KW = 1000.0


@dataclass(frozen=True)
class TierModel:
    """One tier's costs and capacity.

    ``fixed_usd_per_month`` is paid once the tier carries any work (edge and device);
    ``capacity_replicas`` is how many replicas it may keep busy (per instance for cloud);
    ``instance_usd_per_hour`` is a cloud instance-hour (0 elsewhere), of which
    ``energy_fee_usd_per_hour`` is the energy fee; ``max_instances`` bounds a cloud pool.
    ``memory_mib`` is one node's memory (one instance's, for a pool), the larger of its RAM
    and its accelerator's; every variant placed on the tier must fit in it together.
    """

    name: str
    kind: str
    fixed_usd_per_month: float
    capacity_replicas: float
    instance_usd_per_hour: float = 0.0
    energy_fee_usd_per_hour: float = 0.0
    max_instances: int = 0
    price_note: str = ""
    memory_mib: float = 0.0

    @property
    def cloud(self) -> bool:
        return self.kind == "cloud"

    def usd_per_replica_month(self) -> float:
        """What a busy replica costs a month when the tier's cost is shared by the capacity
        it gives (the attribution of :mod:`tierwise.plan.options`)."""
        if self.cloud:
            return self.instance_usd_per_hour * HOURS_PER_MONTH / self.capacity_replicas
        return self.fixed_usd_per_month / self.capacity_replicas


def _edge_monthly(tier: EdgeTier) -> float:
    c = tier.cost
    power = c.power_watts * HOURS_PER_MONTH / _WATTS_PER_KW * c.energy_usd_per_kwh
    return (
        c.capex_usd / c.amortization_months
        + c.maintenance_usd_per_month
        + power
        + c.connectivity_usd_per_month
    )


def tier_models(spec: FleetSpec, settings: PlanSettings) -> dict[str, TierModel]:
    """Every tier of ``spec`` as a :class:`TierModel`."""
    out: dict[str, TierModel] = {}
    headroom = settings.max_utilization
    for tier in spec.tiers.values():
        replicas = tier.capacity.max_replicas_per_node
        if isinstance(tier, CloudTier):
            fee = tier.cost.energy_fee_usd_per_hour
            out[tier.name] = TierModel(
                name=tier.name,
                kind="cloud",
                fixed_usd_per_month=0.0,
                capacity_replicas=replicas * headroom,
                instance_usd_per_hour=tier.cost.blended_usd_per_hour() + fee,
                energy_fee_usd_per_hour=fee,
                max_instances=tier.capacity.max_node_count or tier.capacity.node_count,
            )
        elif isinstance(tier, EdgeTier):
            site = spec.sites.get(tier.site)
            nodes = tier.capacity.node_count * (site.site_count if site is not None else 1)
            out[tier.name] = TierModel(
                tier.name, "edge", _edge_monthly(tier) * nodes, nodes * replicas * headroom
            )
        else:
            nodes = tier.capacity.node_count
            monthly = (tier.cost.update_usd_per_month + tier.cost.telemetry_usd_per_month) * nodes
            out[tier.name] = TierModel(tier.name, "device", monthly, nodes * replicas * headroom)
    for tier in spec.tiers.values():
        out[tier.name] = replace(out[tier.name], memory_mib=node_memory_mib(tier))
    return out


def with_cloud_prices(
    spec: FleetSpec, models: dict[str, TierModel], mix: str, *, energy_fee: bool
) -> dict[str, TierModel]:
    """The tier models with cloud instance-hours priced under ``mix`` (one of
    :data:`MIXES`), with or without the energy fee. A tier without a price for the mix
    keeps its on-demand price, said in ``price_note``."""
    out = dict(models)
    for name, model in models.items():
        tier = spec.tiers[name]
        if not isinstance(tier, CloudTier):
            continue
        c = tier.cost
        note = ""
        if mix == "spec":
            price = c.blended_usd_per_hour()
        elif mix == "on_demand":
            price = c.on_demand_usd_per_hour
        else:
            given = c.spot_usd_per_hour if mix == "spot" else c.reserved_usd_per_hour
            price = c.on_demand_usd_per_hour if given is None else given
            if given is None:
                note = f"no {mix} price: on-demand"
        fee = c.energy_fee_usd_per_hour if energy_fee else 0.0
        out[name] = replace(
            model, instance_usd_per_hour=price + fee, energy_fee_usd_per_hour=fee, price_note=note
        )
    return out


def day_periods(spec: FleetSpec) -> tuple[float, ...]:
    """Hours in each period of the day (see the module docs)."""
    shaped = any(
        w.urgency == "interactive" and w.traffic.hourly_profile is not None
        for w in spec.workloads.values()
    )
    return (1.0,) * 24 if shaped else (24.0,)


def period_rates(workload: Workload, periods: tuple[float, ...]) -> list[float]:
    """The workload's request rate in each period."""
    traffic = workload.traffic
    if workload.urgency == "deferrable" or len(periods) == 1:
        return [traffic.mean_requests_per_s] * len(periods)
    return traffic.hourly_requests_per_s()


def hours_per_month(period_hours: float) -> float:
    """How many hours a month a period of the day adds up to."""
    return period_hours * DAYS_PER_MONTH
