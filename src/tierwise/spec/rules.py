"""The spec's tiers and workloads under the privacy and residency rules, and variant fit.

The rules themselves work on plain values (:mod:`tierwise.spec.placement`); these put a
spec tier in its :class:`~tierwise.spec.placement.Place` and take a workload's privacy,
residency and origin from it. They work on plain mappings of validated entries so the
loader can apply them before a whole :class:`~tierwise.spec.FleetSpec` exists;
:mod:`tierwise.spec.queries` wraps them. The semantics are documented in :mod:`tierwise.spec`.
"""

from __future__ import annotations

from collections.abc import Mapping

from tierwise.spec.placement import Origin, Place, exclusions
from tierwise.spec.placement import resolve_origin as resolve_place_origin
from tierwise.spec.tiers import AnyTier, CloudTier, DeviceTier, Site
from tierwise.spec.workloads import Variant, Workload

__all__ = [
    "exclusion_reasons",
    "node_memory_mib",
    "place_of",
    "resolve_origin",
    "site_regions",
    "tier_region",
    "variant_misfit",
]


def tier_region(tier: AnyTier, sites: Mapping[str, Site]) -> str | None:
    """The region a tier is in: its own, or its site's."""
    if isinstance(tier, CloudTier):
        return tier.region
    if isinstance(tier, DeviceTier) and tier.region is not None:
        return tier.region
    site = sites.get(tier.site) if tier.site is not None else None
    return site.region if site is not None else None


def place_of(tier: AnyTier, sites: Mapping[str, Site]) -> Place:
    """Where a spec tier is: its kind, site (none for a cloud tier) and region."""
    site = None if isinstance(tier, CloudTier) else tier.site
    return Place(tier.kind, site, tier_region(tier, sites))


def site_regions(sites: Mapping[str, Site]) -> dict[str, str]:
    """Each site's region, for the sites that name one."""
    return {name: site.region for name, site in sites.items() if site.region is not None}


def resolve_origin(
    workload: Workload, tiers: Mapping[str, AnyTier], sites: Mapping[str, Site]
) -> Origin:
    """The workload's origin: explicit fields first, else what its listed tiers agree on
    (:func:`tierwise.spec.placement.resolve_origin`; tiers not in ``tiers`` are skipped)."""
    return resolve_place_origin(
        (place_of(t, sites) for n in workload.tiers if (t := tiers.get(n)) is not None),
        origin_site=workload.origin_site,
        origin_region=workload.origin_region,
        site_regions=site_regions(sites),
    )


def exclusion_reasons(
    tier: AnyTier, workload: Workload, origin: Origin, sites: Mapping[str, Site]
) -> list[str]:
    """Why ``workload`` may not use ``tier`` (privacy first); empty when it may."""
    found = exclusions(place_of(tier, sites), workload.privacy, workload.residency, origin)
    return [e.spec_message() for e in found]


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
