"""Cost views: how much each workload of a plan costs per 1M inferences when the cloud is
bought differently, so a user sees how sensitive the plan is to cloud repricing.

Scenarios: every cloud instance-hour priced under the spec's purchase mix, or all
on-demand, all spot, all reserved (:data:`~tierwise.plan.problem.MIXES`), each with and
without the energy fee. The placements and the instances the plan runs stay as they are;
only prices change (a tier without a spot or reserved price keeps its on-demand price,
and the scenario says so). Each workload's figure is its placement's cost as
:mod:`tierwise.plan.cascade` attributes it; the total is the plan's whole bill.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from tierwise.plan.problem import MIXES, TierModel, hours_per_month, tier_models, with_cloud_prices
from tierwise.plan.result import PlanResult
from tierwise.spec import FleetSpec

__all__ = ["CostScenario", "CostViews", "cost_views"]


@dataclass(frozen=True)
class CostScenario:
    """One pricing of the plan: per-workload USD per 1M and per month, and the total."""

    mix: str
    energy_fee: bool
    usd_per_million: dict[str, float]
    usd_per_month: dict[str, float]
    total_usd_per_month: float
    notes: tuple[str, ...] = ()

    @property
    def name(self) -> str:
        return f"{self.mix}{'' if self.energy_fee else ' (no energy fee)'}"

    def to_dict(self) -> dict[str, Any]:
        return {
            "mix": self.mix,
            "energy_fee": self.energy_fee,
            "usd_per_million": dict(self.usd_per_million),
            "usd_per_month": dict(self.usd_per_month),
            "total_usd_per_month": self.total_usd_per_month,
            "notes": list(self.notes),
        }


@dataclass(frozen=True)
class CostViews:
    """Every scenario; ``baseline`` is the spec's mix with the energy fee (the plan's own
    pricing)."""

    scenarios: tuple[CostScenario, ...]

    @property
    def baseline(self) -> CostScenario:
        return next(s for s in self.scenarios if s.mix == "spec" and s.energy_fee)

    def spread(self, workload: str) -> tuple[float, float]:
        """The lowest and highest USD per 1M of ``workload`` over the scenarios."""
        values = [s.usd_per_million[workload] for s in self.scenarios]
        return min(values), max(values)

    def to_dict(self) -> dict[str, Any]:
        return {"scenarios": [s.to_dict() for s in self.scenarios]}


def _cloud_share(usage: tuple[float, ...], model: TierModel, periods: tuple[float, ...]) -> float:
    replica_hours = sum(u * hours_per_month(h) for u, h in zip(usage, periods, strict=True))
    return replica_hours * model.instance_usd_per_hour / model.capacity_replicas


def _scenario(
    result: PlanResult,
    base: dict[str, TierModel],
    priced: dict[str, TierModel],
    mix: str,
    energy_fee: bool,
) -> CostScenario:
    per_month: dict[str, float] = {}
    per_million: dict[str, float] = {}
    for name, placement in result.placements.items():
        usd = placement.usd_per_month
        for tier, usage in placement.option.usage.items():
            if base[tier].cloud:
                usd += _cloud_share(usage, priced[tier], result.periods)
                usd -= _cloud_share(usage, base[tier], result.periods)
        per_month[name] = usd
        volume = placement.requests_per_month
        per_million[name] = usd / volume * 1e6 if volume > 0 else 0.0
    total = result.total_usd_per_month
    for tier, use in result.tiers.items():
        if base[tier].cloud:
            for k, hours in zip(use.instances, result.periods, strict=True):
                delta = priced[tier].instance_usd_per_hour - base[tier].instance_usd_per_hour
                total += k * delta * hours_per_month(hours)
    notes = tuple(
        f"{t}: {m.price_note}" for t, m in priced.items() if m.price_note and result.tiers[t].used
    )
    return CostScenario(mix, energy_fee, per_million, per_month, total, notes)


def cost_views(result: PlanResult, spec: FleetSpec) -> CostViews:
    """The plan priced under every purchase mix, with and without the energy fee."""
    base = tier_models(spec, result.settings)
    scenarios = [
        _scenario(result, base, with_cloud_prices(spec, base, mix, energy_fee=fee), mix, fee)
        for mix in MIXES
        for fee in (True, False)
    ]
    return CostViews(tuple(scenarios))
