"""Pure queries over a loaded spec that later stages (plan, router, sim) need."""

from __future__ import annotations

from tierwise.errors import ConfigError
from tierwise.spec.fleet import FleetSpec
from tierwise.spec.placement import Origin
from tierwise.spec.rules import exclusion_reasons, resolve_origin, tier_region, variant_misfit
from tierwise.spec.tiers import KIND_RANK, AnyTier, CloudTier, Site, TierKind
from tierwise.spec.workloads import ModelSpec, Variant, Workload

__all__ = [
    "allowed_tiers",
    "excluded_tiers",
    "get_tier",
    "get_workload",
    "region_of",
    "site_of",
    "tiers_of_kind",
    "variant_for",
    "workload_model",
    "workload_origin",
    "workload_tiers",
    "workloads_on_tier",
]


def get_tier(spec: FleetSpec, tier: AnyTier | str) -> AnyTier:
    """The tier itself, given it or its name."""
    if not isinstance(tier, str):
        return tier
    found = spec.tiers.get(tier)
    if found is None:
        raise ConfigError("tier", f"one of {sorted(spec.tiers)}", tier)
    return found


def get_workload(spec: FleetSpec, workload: Workload | str) -> Workload:
    """The workload itself, given it or its name."""
    if not isinstance(workload, str):
        return workload
    found = spec.workloads.get(workload)
    if found is None:
        raise ConfigError("workload", f"one of {sorted(spec.workloads)}", workload)
    return found


def tiers_of_kind(spec: FleetSpec, kind: TierKind) -> list[AnyTier]:
    """The tiers of one kind, in spec order."""
    if kind not in KIND_RANK:
        raise ConfigError("kind", "'device', 'edge' or 'cloud'", kind)
    return [t for t in spec.tiers.values() if t.kind == kind]


def site_of(spec: FleetSpec, tier: AnyTier | str) -> Site | None:
    """The site an edge (or fixed device) tier is at; None for cloud and roaming devices."""
    found = get_tier(spec, tier)
    if isinstance(found, CloudTier) or found.site is None:
        return None
    return spec.sites.get(found.site)


def region_of(spec: FleetSpec, tier: AnyTier | str) -> str | None:
    """The region a tier is in (its own, or its site's)."""
    return tier_region(get_tier(spec, tier), spec.sites)


def workload_model(spec: FleetSpec, workload: Workload | str) -> ModelSpec:
    """The model a workload runs."""
    return spec.models[get_workload(spec, workload).model]


def workload_tiers(spec: FleetSpec, workload: Workload | str) -> list[AnyTier]:
    """The tiers a workload lists, in its cascade order, before privacy and residency."""
    return [spec.tiers[n] for n in get_workload(spec, workload).tiers]


def workload_origin(spec: FleetSpec, workload: Workload | str) -> Origin:
    """Where a workload's data starts (site and region; None where the spec is silent)."""
    return resolve_origin(get_workload(spec, workload), spec.tiers, spec.sites)


def excluded_tiers(spec: FleetSpec, workload: Workload | str) -> dict[str, list[str]]:
    """The listed tiers privacy or residency rule out, with the reasons, by tier name."""
    found = get_workload(spec, workload)
    origin = resolve_origin(found, spec.tiers, spec.sites)
    out: dict[str, list[str]] = {}
    for tier in workload_tiers(spec, found):
        reasons = exclusion_reasons(tier, found, origin, spec.sites)
        if reasons:
            out[tier.name] = reasons
    return out


def allowed_tiers(spec: FleetSpec, workload: Workload | str) -> list[AnyTier]:
    """The listed tiers that honour the workload's privacy class and residency, in order."""
    found = get_workload(spec, workload)
    excluded = excluded_tiers(spec, found)
    return [t for t in workload_tiers(spec, found) if t.name not in excluded]


def variant_for(spec: FleetSpec, workload: Workload | str, tier: AnyTier | str) -> Variant | None:
    """The variant a workload runs on a tier: the pinned one, else the first that fits."""
    found = get_workload(spec, workload)
    where = get_tier(spec, tier)
    model = spec.models[found.model]
    pinned = found.variants.get(where.name)
    if pinned is not None:
        return model.variants[pinned]
    for variant in model.variants.values():
        if variant_misfit(variant, where) is None:
            return variant
    return None


def workloads_on_tier(spec: FleetSpec, tier: AnyTier | str) -> list[Workload]:
    """The workloads allowed (by privacy and residency) to run on a tier."""
    name = get_tier(spec, tier).name
    return [
        w for w in spec.workloads.values() if any(t.name == name for t in allowed_tiers(spec, w))
    ]
