"""Privacy and residency on plain values: where a tier is, where a workload's data starts,
and which tiers may see it.

The one implementation of the rules documented in :mod:`tierwise.spec`. A tier is reduced
to a :class:`Place` (kind, site, region), so the fleet spec's tiers
(:mod:`tierwise.spec.rules`) and a plan's tiers (:mod:`tierwise.planfile.checks`) go
through the same functions:

- privacy ``sensitive``: device tiers only; ``personal``: device tiers and edge tiers at
  the origin site; ``public``: any tier.
- residency ``device``: device tiers only; ``site``: device tiers and edge tiers at the
  origin site; ``region``: device tiers and edge or cloud tiers in the origin region;
  ``any``: any tier.

Device tiers always qualify (the data starts there). When the origin a rule needs is
unknown, that rule allows no edge or cloud tier. An :class:`Exclusion` says why a tier is
ruled out in two wordings: :meth:`~Exclusion.spec_message` for problems in a spec (what to
set) and :meth:`~Exclusion.route_message` for ``tierwise route explain`` (where the tier is).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Literal

from tierwise.spec.tiers import TierKind
from tierwise.spec.workloads import Privacy, Residency

__all__ = [
    "PRIVACY_RANK",
    "RESIDENCY_RANK",
    "Exclusion",
    "Origin",
    "Place",
    "describe_place",
    "exclusion_reason",
    "exclusions",
    "resolve_origin",
]

#: Privacy classes from least to most restrictive; a request may only move up.
PRIVACY_RANK: dict[Privacy, int] = {"public": 0, "personal": 1, "sensitive": 2}
#: Residencies from least to most restrictive; a request may only move up.
RESIDENCY_RANK: dict[Residency, int] = {"any": 0, "region": 1, "site": 2, "device": 3}

#: Why a rule rules a tier out: it keeps data on the device; the tier is a cloud tier and
#: the rule keeps data at its site; the origin site (region) the rule needs is unknown;
#: the tier is at another site (in another or an unknown region).
Why = Literal["device_only", "cloud", "no_origin_site", "other_site", "no_origin_region",
              "other_region"]  # fmt: skip


@dataclass(frozen=True, slots=True)
class Place:
    """Where a tier runs: its kind, site and region (``None`` when unknown or roaming)."""

    kind: TierKind
    site: str | None = None
    region: str | None = None


@dataclass(frozen=True, slots=True)
class Origin:
    """Where a workload's data starts; ``None`` when nothing says."""

    site: str | None
    region: str | None


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

    The site is the one all its device tiers share or, when none of them is at a site,
    the one all its edge tiers share. The region is the origin site's (``site_regions``),
    else the one its device tiers share, else (with no device tiers) its edge tiers'.
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


@dataclass(frozen=True, slots=True)
class Exclusion:
    """One rule ruling a tier out: the rule (``privacy`` or ``residency``), the value
    that does it, why, and where the tier and the data are."""

    rule: Literal["privacy", "residency"]
    value: str
    why: Why
    place: Place
    origin: Origin

    def spec_message(self) -> str:
        """The reason as a spec problem puts it (naming the field to set, if any)."""
        head = f"{self.rule} {self.value!r}"
        kind, site, origin = self.place.kind, self.place.site, self.origin
        privacy = self.rule == "privacy"
        if self.why == "device_only":
            return f"{head} keeps data on the device, not on {kind} tiers"
        if self.why == "cloud":
            if privacy:
                return f"{head} data may reach the site's edge but not the cloud"
            return f"{head} keeps data at its site, and a cloud tier is off-site"
        if self.why == "no_origin_site":
            if privacy:
                return f"{head} allows only the origin site's edge; set origin_site"
            return f"{head} needs the origin site; set origin_site"
        if self.why == "other_site":
            if privacy:
                return (
                    f"{head} allows only the edge at origin site {origin.site!r},"
                    f" this tier is at site {site!r}"
                )
            return f"{head} keeps data at site {origin.site!r}, this tier is at site {site!r}"
        if self.why == "no_origin_region":
            return f"{head} needs the origin region; set origin_region"
        region = self.place.region
        where = "an unknown region" if region is None else f"region {region!r}"
        return f"{head} keeps data in region {origin.region!r}, this tier is in {where}"

    def route_message(self) -> str:
        """The reason as a route explanation puts it (naming where the tier is)."""
        head = f"{self.rule} {self.value!r}"
        where = describe_place(self.place)
        origin = self.origin
        if self.why == "device_only":
            return f"{head} keeps data on the device ({where})"
        if self.why in ("cloud", "no_origin_site", "other_site"):
            if origin.site is None:
                return f"{head} needs the origin site, which is unknown ({where})"
            if self.rule == "privacy":
                return f"{head} may not leave site {origin.site!r} ({where})"
            return f"{head} keeps data at site {origin.site!r} ({where})"
        if self.why == "no_origin_region":
            return f"{head} needs the origin region, which is unknown ({where})"
        return f"{head} keeps data in region {origin.region!r} ({where})"


def _site_bound(place: Place, origin: Origin) -> Why | None:
    """Why an edge or cloud tier is not at the origin site; None when it is."""
    if place.kind == "cloud":
        return "cloud"
    if origin.site is None:
        return "no_origin_site"
    if place.site != origin.site:
        return "other_site"
    return None


def _privacy_why(place: Place, privacy: Privacy, origin: Origin) -> Why | None:
    if privacy == "public" or place.kind == "device":
        return None
    if privacy == "sensitive":
        return "device_only"
    return _site_bound(place, origin)


def _residency_why(place: Place, residency: Residency, origin: Origin) -> Why | None:
    if residency == "any" or place.kind == "device":
        return None
    if residency == "device":
        return "device_only"
    if residency == "site":
        return _site_bound(place, origin)
    if origin.region is None:
        return "no_origin_region"
    if place.region != origin.region:
        return "other_region"
    return None


def exclusions(
    place: Place, privacy: Privacy, residency: Residency, origin: Origin
) -> list[Exclusion]:
    """Why data of this privacy class and residency may not reach ``place`` (privacy
    first); empty when it may."""
    out: list[Exclusion] = []
    why = _privacy_why(place, privacy, origin)
    if why is not None:
        out.append(Exclusion("privacy", privacy, why, place, origin))
    why = _residency_why(place, residency, origin)
    if why is not None:
        out.append(Exclusion("residency", residency, why, place, origin))
    return out


def exclusion_reason(
    place: Place, privacy: Privacy, residency: Residency, origin: Origin
) -> Exclusion | None:
    """The first rule that keeps this data from ``place`` (privacy before residency);
    None when both allow it."""
    found = exclusions(place, privacy, residency, origin)
    return found[0] if found else None
