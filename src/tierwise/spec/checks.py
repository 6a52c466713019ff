"""Cross-reference checks, run after every entry has passed its own field validation.

They find names that point nowhere (a workload's tier or model, a pinned variant, a tier's
site or region, a network's next tier), variants that cannot run where they are pinned, and
workloads whose privacy class or residency no listed tier satisfies. Each problem is a
``(path, message)`` pair; the loader adds the file.
"""

from __future__ import annotations

import difflib
from collections.abc import Collection, Mapping

from tierwise.spec.rules import exclusion_reasons, resolve_origin, variant_misfit
from tierwise.spec.tiers import KIND_RANK, AnyTier, CloudTier, DeviceTier, Region, Site
from tierwise.spec.workloads import ModelSpec, Workload

__all__ = ["cross_reference_problems", "raw_reference_problems"]

Problem = tuple[str, str]


def _unknown(what: str, name: str, declared: Collection[str], lead: str = "") -> str:
    """An "unknown tier 'x'" message with a did-you-mean or the declared names."""
    head = lead or f"unknown {what} {name!r}"
    close = difflib.get_close_matches(name, list(declared), n=1)
    if close:
        return f"{head}; did you mean {close[0]!r}?"
    listed = ", ".join(sorted(declared)) or "none"
    return f"{head} (declared: {listed})"


def _tier_problems(
    tiers: Mapping[str, AnyTier], names: Mapping[str, Collection[str]]
) -> list[Problem]:
    problems: list[Problem] = []
    for name, tier in tiers.items():
        base = f"tiers.{name}"
        if isinstance(tier, CloudTier):
            if tier.region not in names["regions"]:
                problems.append(
                    (f"{base}.region", _unknown("region", tier.region, names["regions"]))
                )
        else:
            if tier.site is not None and tier.site not in names["sites"]:
                problems.append((f"{base}.site", _unknown("site", tier.site, names["sites"])))
            region = tier.region if isinstance(tier, DeviceTier) else None
            if region is not None and region not in names["regions"]:
                problems.append((f"{base}.region", _unknown("region", region, names["regions"])))
        nxt = tier.network.next_tier if tier.network is not None else None
        if nxt is None:
            continue
        path = f"{base}.network.next_tier"
        if nxt not in names["tiers"]:
            problems.append((path, _unknown("tier", nxt, names["tiers"])))
        elif nxt in tiers and KIND_RANK[tiers[nxt].kind] <= KIND_RANK[tier.kind]:
            above = tiers[nxt]
            message = f"expected a tier above this {tier.kind} tier, got {above.kind} tier {nxt!r}"
            problems.append((path, message))
    return problems


def _workload_problems(
    base: str,
    workload: Workload,
    tiers: Mapping[str, AnyTier],
    sites: Mapping[str, Site],
    models: Mapping[str, ModelSpec],
    names: Mapping[str, Collection[str]],
) -> list[Problem]:
    problems: list[Problem] = []
    if workload.model not in names["models"]:
        problems.append((f"{base}.model", _unknown("model", workload.model, names["models"])))
    for i, tier_name in enumerate(workload.tiers):
        if tier_name not in names["tiers"]:
            problems.append((f"{base}.tiers[{i}]", _unknown("tier", tier_name, names["tiers"])))
    model = models.get(workload.model)
    for tier_name, variant_name in workload.variants.items():
        path = f"{base}.variants.{tier_name}"
        if tier_name not in workload.tiers:
            problems.append((path, f"tier {tier_name!r} is not in this workload's tiers"))
            continue
        if model is None:
            continue
        variant = model.variants.get(variant_name)
        if variant is None:
            lead = f"model {model.name!r} has no variant {variant_name!r}"
            problems.append((path, _unknown("variant", variant_name, model.variants, lead)))
        elif tier_name in tiers and (misfit := variant_misfit(variant, tiers[tier_name])):
            problems.append((path, misfit))
    for field, section in (("origin_site", "sites"), ("origin_region", "regions")):
        value = getattr(workload, field)
        if value is not None and value not in names[section]:
            problems.append((f"{base}.{field}", _unknown(section[:-1], value, names[section])))
    site = sites.get(workload.origin_site or "")
    wanted = workload.origin_region
    if site is not None and wanted is not None and site.region not in (None, wanted):
        message = f"origin site {site.name!r} is in region {site.region!r}, not {wanted!r}"
        problems.append((f"{base}.origin_region", message))
    problems.extend(_placement_problems(base, workload, tiers, sites))
    return problems


def _placement_problems(
    base: str, workload: Workload, tiers: Mapping[str, AnyTier], sites: Mapping[str, Site]
) -> list[Problem]:
    """A problem when no listed tier satisfies the workload's privacy and residency."""
    listed = [tiers[n] for n in workload.tiers if n in tiers]
    if len(listed) != len(workload.tiers):
        return []  # unknown or invalid tiers are reported elsewhere
    origin = resolve_origin(workload, tiers, sites)
    reasons = {t.name: exclusion_reasons(t, workload, origin, sites) for t in listed}
    if any(not r for r in reasons.values()):
        return []
    by_privacy = all(r[0].startswith("privacy") for r in reasons.values())
    field = "privacy" if by_privacy else "residency"
    details = "; ".join(f"tier {n!r}: {', '.join(r)}" for n, r in reasons.items())
    return [
        (
            f"{base}.{field}",
            f"no tier listed for this workload satisfies privacy {workload.privacy!r} and"
            f" residency {workload.residency!r} ({details})",
        )
    ]


def cross_reference_problems(
    *,
    regions: Mapping[str, Region],
    sites: Mapping[str, Site],
    tiers: Mapping[str, AnyTier],
    models: Mapping[str, ModelSpec],
    workloads: Mapping[str, Workload],
    declared: Mapping[str, Collection[str]] | None = None,
) -> list[Problem]:
    """Every cross-reference problem among valid entries.

    ``declared`` maps each section to every name written in it, valid or not, so that a
    reference to an entry that failed its own validation is not reported a second time.
    """
    names: dict[str, Collection[str]] = {
        "regions": regions.keys(),
        "sites": sites.keys(),
        "tiers": tiers.keys(),
        "models": models.keys(),
        "workloads": workloads.keys(),
    }
    names.update(declared or {})
    problems: list[Problem] = []
    for name, site in sites.items():
        if site.region is not None and site.region not in names["regions"]:
            problems.append(
                (f"sites.{name}.region", _unknown("region", site.region, names["regions"]))
            )
    problems.extend(_tier_problems(tiers, names))
    for name, workload in workloads.items():
        problems.extend(
            _workload_problems(f"workloads.{name}", workload, tiers, sites, models, names)
        )
    return problems


#: Fields that name entries of another section, by section: (field path, target section).
#: A trailing ``[]`` means a list of names.
_REFERENCES: dict[str, tuple[tuple[str, str], ...]] = {
    "sites": (("region", "regions"),),
    "tiers": (("site", "sites"), ("region", "regions"), ("network.next_tier", "tiers")),
    "workloads": (
        ("model", "models"),
        ("tiers[]", "tiers"),
        ("origin_site", "sites"),
        ("origin_region", "regions"),
    ),
}


def raw_reference_problems(
    section: str, name: str, entry: object, declared: Mapping[str, Collection[str]]
) -> list[Problem]:
    """Unknown names in an entry that failed its own validation, read from the raw data.

    This keeps a typo in a workload's model from hiding behind a typo elsewhere in the
    same workload. Values that are not names are left to the field validation.
    """
    problems: list[Problem] = []
    for field, target in _REFERENCES.get(section, ()):
        value: object = entry
        for part in field.removesuffix("[]").split("."):
            value = value.get(part) if isinstance(value, dict) else None
        many = field.endswith("[]")
        items = list(enumerate(value)) if many and isinstance(value, list) else [(None, value)]
        for i, item in items:
            if isinstance(item, str) and item not in declared.get(target, ()):
                where = f"{section}.{name}.{field.removesuffix('[]')}" + (
                    "" if i is None else f"[{i}]"
                )
                problems.append((where, _unknown(target[:-1], item, declared.get(target, ()))))
    return problems
