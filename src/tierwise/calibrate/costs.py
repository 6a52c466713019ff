"""Per-stage costs for calibration from a fleet spec's cost model.

Each stage of the cascade is a tier kind (``device``, ``edge``, ``cloud``). The spec tier
that stands for a kind is the workload's first listed tier of that kind, else the spec's
first tier of that kind. Costs come from :func:`tierwise.plan.cost.tier_cost` with the
workload's traffic, each tier priced as if it served the workload's whole traffic (the
marginal view a threshold choice needs). Cloud tiers need a throughput per instance; until
measured profiles exist, :data:`tierwise.plan.cost.DEFAULT_CLOUD_THROUGHPUT_PER_S` is assumed.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from tierwise.errors import ConfigError
from tierwise.plan.cost import DEFAULT_CLOUD_THROUGHPUT_PER_S, tier_cost
from tierwise.spec import FleetSpec, get_workload, tiers_of_kind

__all__ = ["SpecCosts", "spec_usd_per_inference"]


@dataclass(frozen=True)
class SpecCosts:
    """USD per inference by tier kind, which spec tier stands for each kind, and the
    workload whose traffic priced them."""

    usd_per_inference: dict[str, float]
    tiers: dict[str, str]
    workload: str

    def describe(self, spec_name: str) -> str:
        """One line for reports: ``spec X, workload W: device=tier-a, edge=tier-b``."""
        mapping = ", ".join(f"{kind}={tier}" for kind, tier in self.tiers.items())
        return f"spec {spec_name}, workload {self.workload}: {mapping}"


def _pick_workload(spec: FleetSpec, kinds: Sequence[str], workload: str | None) -> str:
    if workload is not None:
        return get_workload(spec, workload).name
    if not spec.workloads:
        raise ConfigError("spec", "at least one workload to take traffic from")

    def covered(name: str) -> int:
        listed = {spec.tiers[t].kind for t in spec.workloads[name].tiers}
        return len(listed & set(kinds))

    return max(spec.workloads, key=covered)  # max keeps the first of equals: spec order


def spec_usd_per_inference(
    spec: FleetSpec,
    kinds: Sequence[str] = ("device", "edge", "cloud"),
    *,
    workload: str | None = None,
    cloud_throughput_per_s: float = DEFAULT_CLOUD_THROUGHPUT_PER_S,
) -> SpecCosts:
    """Cost per inference for each tier kind in ``kinds`` from ``spec``'s cost model.

    ``workload`` (default: the one listing tiers of the most of ``kinds``, first in the spec
    among equals) supplies the traffic. ConfigError when the spec has no tier of a kind.
    """

    name = _pick_workload(spec, kinds, workload)
    found = spec.workloads[name]
    costs: dict[str, float] = {}
    tiers: dict[str, str] = {}
    for kind in dict.fromkeys(kinds):
        listed = [t for t in found.tiers if spec.tiers[t].kind == kind]
        candidates = listed or [t.name for t in tiers_of_kind(spec, kind)]  # type: ignore[arg-type]
        if not candidates:
            raise ConfigError(
                "spec", f"a {kind} tier to price the {kind} stage (or give --cost {kind}=USD)"
            )
        tier = candidates[0]
        breakdown = tier_cost(
            spec,
            found,
            tier,
            throughput_per_instance_per_s=cloud_throughput_per_s if kind == "cloud" else None,
        )
        costs[kind] = breakdown.usd_per_inference
        tiers[kind] = tier
    return SpecCosts(usd_per_inference=costs, tiers=tiers, workload=name)
