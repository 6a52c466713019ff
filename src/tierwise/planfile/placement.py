"""Privacy and residency for plan tiers: which tiers may see a workload's data, and why not.

The rules are the fleet spec's (see :mod:`tierwise.spec`), applied to a plan's tiers,
which carry only a kind, a site and a region rather than whole spec tiers:

- privacy ``sensitive``: device tiers only; ``personal``: device tiers and edge tiers at
  the origin site; ``public``: any tier.
- residency ``device``: device tiers only; ``site``: device tiers and edge tiers at the
  origin site; ``region``: device tiers and edge or cloud tiers in the origin region;
  ``any``: any tier.

Device tiers always qualify (the data starts there). The origin is resolved as the spec
does it (:func:`tierwise.spec.rules.resolve_origin`), from the cascade's device tiers,
else its edge tiers; when it stays unknown the rules that need it allow no edge or cloud
tier. Reasons are plain sentences for ``tierwise route explain``.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass

from tierwise.spec.rules import Origin
from tierwise.spec.tiers import TierKind

__all__ = [
    "PRIVACY_RANK",
    "RESIDENCY_RANK",
    "Origin",
    "Place",
    "describe_place",
    "exclusion_reason",
    "resolve_origin",
]

#: Privacy classes from least to most restrictive; a request may only move up.
PRIVACY_RANK: dict[str, int] = {"public": 0, "personal": 1, "sensitive": 2}
#: Residencies from least to most restrictive; a request may only move up.
RESIDENCY_RANK: dict[str, int] = {"any": 0, "region": 1, "site": 2, "device": 3}


@dataclass(frozen=True, slots=True)
class Place:
    """Where a tier runs: its kind, site and region (``None`` when unknown or roaming)."""

    kind: TierKind
    site: str | None = None
    region: str | None = None


def _only(values: Iterable[str | None]) -> str | None:
    found = {v for v in values if v is not None}
    return found.pop() if len(found) == 1 else None


def resolve_origin(
    cascade: Iterable[Place],
    *,
    origin_site: str | None = None,
    origin_region: str | None = None,
    site_regions: Mapping[str, str] | None = None,
) -> Origin:
    """The workload's origin: explicit values first, else what its lowest tiers agree on.

    Mirrors :func:`tierwise.spec.rules.resolve_origin`: the site all device tiers share
    (or, when none has a site, the site all edge tiers share); the region of that site,
    else the one the device tiers share, else (with no device tiers) the edge tiers'.
    """
    places = list(cascade)
    devices = [p for p in places if p.kind == "device"]
    edges = [p for p in places if p.kind == "edge"]
    site = origin_site if origin_site is not None else _only(d.site for d in devices)
    if site is None and not any(d.site for d in devices):
        site = _only(e.site for e in edges)
    region = origin_region
    if region is None and site is not None and site_regions is not None:
        region = site_regions.get(site)
    if region is None:
        region = _only(d.region for d in devices)
    if region is None and not devices:
        region = _only(e.region for e in edges)
    return Origin(site, region)


def describe_place(place: Place) -> str:
    """``'cloud tier in region 'us-east''``, ``'edge tier at site 'store-1''``..."""
    if place.site is not None and place.kind != "cloud":
        return f"{place.kind} tier at site {place.site!r}"
    if place.region is not None:
        return f"{place.kind} tier in region {place.region!r}"
    return f"{place.kind} tier at an unknown place"


def _privacy_reason(place: Place, privacy: str, origin: Origin) -> str | None:
    if privacy == "public" or place.kind == "device":
        return None
    where = describe_place(place)
    if privacy == "sensitive":
        return f"privacy 'sensitive' keeps data on the device ({where})"
    if origin.site is None:
        return f"privacy 'personal' needs the origin site, which is unknown ({where})"
    if place.kind == "cloud" or place.site != origin.site:
        return f"privacy 'personal' may not leave site {origin.site!r} ({where})"
    return None


def _residency_reason(place: Place, residency: str, origin: Origin) -> str | None:
    if residency == "any" or place.kind == "device":
        return None
    where = describe_place(place)
    if residency == "device":
        return f"residency 'device' keeps data on the device ({where})"
    if residency == "site":
        if origin.site is None:
            return f"residency 'site' needs the origin site, which is unknown ({where})"
        if place.kind == "cloud" or place.site != origin.site:
            return f"residency 'site' keeps data at site {origin.site!r} ({where})"
        return None
    if origin.region is None:
        return f"residency 'region' needs the origin region, which is unknown ({where})"
    if place.region != origin.region:
        return f"residency 'region' keeps data in region {origin.region!r} ({where})"
    return None


def exclusion_reason(place: Place, privacy: str, residency: str, origin: Origin) -> str | None:
    """Why data of this privacy class and residency may not reach ``place``; else None.

    ``privacy`` is one of :data:`PRIVACY_RANK`, ``residency`` one of :data:`RESIDENCY_RANK`.
    Privacy is checked first, so a tier both rules exclude names its privacy reason.
    """
    return _privacy_reason(place, privacy, origin) or _residency_reason(place, residency, origin)
