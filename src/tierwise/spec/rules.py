"""Privacy and residency rules: which of a workload's tiers may see its data, and why not.

These work on plain mappings of validated entries so the loader can apply them before a
whole :class:`~tierwise.spec.FleetSpec` exists; :mod:`tierwise.spec.queries` wraps them.
The semantics are documented in :mod:`tierwise.spec`.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from tierwise.spec.tiers import AnyTier, CloudTier, DeviceTier, EdgeTier, Site
from tierwise.spec.workloads import Variant, Workload

__all__ = ["Origin", "exclusion_reasons", "resolve_origin", "tier_region", "variant_misfit"]


@dataclass(frozen=True)
class Origin:
    """Where a workload's data starts; ``None`` when the spec does not say."""

    site: str | None
    region: str | None


def tier_region(tier: AnyTier, sites: Mapping[str, Site]) -> str | None:
    """The region a tier is in: its own, or its site's."""
    if isinstance(tier, CloudTier):
        return tier.region
    if isinstance(tier, DeviceTier) and tier.region is not None:
        return tier.region
    site = sites.get(tier.site) if tier.site is not None else None
    return site.region if site is not None else None


def _only(values: set[str | None]) -> str | None:
    values.discard(None)
    return values.pop() if len(values) == 1 else None


def resolve_origin(
    workload: Workload, tiers: Mapping[str, AnyTier], sites: Mapping[str, Site]
) -> Origin:
    """The workload's origin: explicit fields first, else what its lowest tiers agree on.

    The site is the one all its device tiers share or, when none of them is at a site,
    the one all its edge tiers share. The region is the origin site's, else the one its
    device tiers share, else (with no device tiers) the one its edge tiers' sites share.
    """
    devices = [t for n in workload.tiers if isinstance(t := tiers.get(n), DeviceTier)]
    site = workload.origin_site
    if site is None:
        site = _only({d.site for d in devices})
    if site is None and not any(d.site for d in devices):
        site = _only({t.site for n in workload.tiers if isinstance(t := tiers.get(n), EdgeTier)})
    region = workload.origin_region
    if region is None and site is not None and site in sites:
        region = sites[site].region
    if region is None:
        region = _only({tier_region(d, sites) for d in devices})
    if region is None and not devices:
        edges = [t for n in workload.tiers if isinstance(t := tiers.get(n), EdgeTier)]
        region = _only({tier_region(e, sites) for e in edges})
    return Origin(site, region)


def _privacy_reason(tier: AnyTier, workload: Workload, origin: Origin) -> str | None:
    if workload.privacy == "public" or isinstance(tier, DeviceTier):
        return None
    if workload.privacy == "sensitive":
        return f"privacy 'sensitive' keeps data on the device, not on {tier.kind} tiers"
    if isinstance(tier, CloudTier):
        return "privacy 'personal' data may reach the site's edge but not the cloud"
    if origin.site is None:
        return "privacy 'personal' allows only the origin site's edge; set origin_site"
    if tier.site != origin.site:
        return (
            f"privacy 'personal' allows only the edge at origin site {origin.site!r},"
            f" this tier is at site {tier.site!r}"
        )
    return None


def _residency_reason(
    tier: AnyTier, workload: Workload, origin: Origin, sites: Mapping[str, Site]
) -> str | None:
    residency = workload.residency
    if residency == "any" or isinstance(tier, DeviceTier):
        return None
    if residency == "device":
        return f"residency 'device' keeps data on the device, not on {tier.kind} tiers"
    if residency == "site":
        if isinstance(tier, CloudTier):
            return "residency 'site' keeps data at its site, and a cloud tier is off-site"
        if origin.site is None:
            return "residency 'site' needs the origin site; set origin_site"
        if tier.site != origin.site:
            return (
                f"residency 'site' keeps data at site {origin.site!r},"
                f" this tier is at site {tier.site!r}"
            )
        return None
    if origin.region is None:
        return "residency 'region' needs the origin region; set origin_region"
    region = tier_region(tier, sites)
    if region != origin.region:
        where = "an unknown region" if region is None else f"region {region!r}"
        return f"residency 'region' keeps data in region {origin.region!r}, this tier is in {where}"
    return None


def exclusion_reasons(
    tier: AnyTier, workload: Workload, origin: Origin, sites: Mapping[str, Site]
) -> list[str]:
    """Why ``workload`` may not use ``tier`` (privacy first); empty when it may."""
    reasons = [
        _privacy_reason(tier, workload, origin),
        _residency_reason(tier, workload, origin, sites),
    ]
    return [r for r in reasons if r is not None]


_MIB_PER_GIB = 1024


def node_memory_mib(tier: AnyTier) -> float:
    """One node's memory in MiB: the larger of its RAM and its accelerator's memory."""
    hardware = tier.hardware
    return max(hardware.memory_gib, hardware.accelerator_memory_gib or 0.0) * _MIB_PER_GIB


def variant_misfit(variant: Variant, tier: AnyTier) -> str | None:
    """Why ``variant`` cannot run on ``tier`` (missing hardware tags, too big); else None.

    A variant fits when the tier has all its ``hardware_tags`` and its size fits in the
    larger of the node's memory and its accelerator's memory.
    """
    missing = [t for t in variant.hardware_tags if t not in tier.hardware.tags]
    if missing:
        return (
            f"variant {variant.name!r} needs hardware tags {missing} that tier {tier.name!r}"
            f" lacks (it has {tier.hardware.tags})"
        )
    memory_mib = node_memory_mib(tier)
    if variant.size_mib > memory_mib:
        return (
            f"variant {variant.name!r} ({variant.size_mib:g} MiB) does not fit in the"
            f" {memory_mib / _MIB_PER_GIB:g} GiB of tier {tier.name!r}"
        )
    return None
