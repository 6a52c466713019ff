"""Checks across a plan's entries, and where its tiers and workloads are.

A plan's entries each validate on their own (:mod:`tierwise.planfile.schema`); these checks
need several at once: cascades naming declared tiers in a sensible order, sites in one
region, and a cascade with at least one tier that may see the workload's data. A plan tier
is put in its :class:`~tierwise.spec.placement.Place` here, and privacy and residency are
the spec's own rules on it (:mod:`tierwise.spec.placement`).
"""

from __future__ import annotations

import difflib
from collections.abc import Collection, Mapping

from tierwise.escalation.rules import RULES
from tierwise.planfile.schema import TierConfig, WorkloadConfig
from tierwise.spec.placement import Origin, Place, exclusion_reason, resolve_origin

__all__ = ["place_of", "plan_problems", "site_regions", "unknown_tier", "workload_origin"]

Problem = tuple[str, str]


def unknown_tier(name: str, declared: Collection[str]) -> str:
    """``unknown tier 'egde'; did you mean 'edge'?`` (or the declared names)."""
    close = difflib.get_close_matches(name, list(declared), n=1)
    if close:
        return f"unknown tier {name!r}; did you mean {close[0]!r}?"
    return f"unknown tier {name!r} (declared: {', '.join(sorted(declared)) or 'none'})"


def site_regions(tiers: Mapping[str, TierConfig]) -> dict[str, str]:
    """Each site's region, as the tiers that give both a site and a region say."""
    out: dict[str, str] = {}
    for tier in tiers.values():
        if tier.site is not None and tier.region is not None:
            out.setdefault(tier.site, tier.region)
    return out


def place_of(tier: TierConfig, regions: Mapping[str, str]) -> Place:
    """Where a tier is; an edge tier without a region takes its site's."""
    region = tier.region
    if region is None and tier.site is not None:
        region = regions.get(tier.site)
    return Place(tier.kind, tier.site, region)


def workload_origin(
    workload: WorkloadConfig, tiers: Mapping[str, TierConfig], regions: Mapping[str, str]
) -> Origin:
    """Where a workload's data starts (see :func:`tierwise.spec.placement.resolve_origin`)."""
    return resolve_origin(
        (place_of(tiers[s.tier], regions) for s in workload.cascade if s.tier in tiers),
        origin_site=workload.origin_site,
        origin_region=workload.origin_region,
        site_regions=regions,
    )


def _stage_problems(workload: WorkloadConfig, base: str) -> list[Problem]:
    problems: list[Problem] = []
    last = len(workload.cascade) - 1
    seen: set[str] = set()
    for i, stage in enumerate(workload.cascade):
        at = f"{base}.cascade[{i}]"
        if stage.tier in seen:
            problems.append((f"{at}.tier", f"tier {stage.tier!r} is listed twice"))
        seen.add(stage.tier)
        if i == last:
            for field in ("rule", "threshold"):
                if getattr(stage, field) is not None:
                    problems.append(
                        (f"{at}.{field}", "the last stage escalates nowhere; remove its " + field)
                    )
        elif stage.rule is None:
            problems.append(
                (
                    f"{at}.rule",
                    f"expected one of {', '.join(RULES)}: a stage before the last"
                    " needs a rule to decide when to escalate",
                )
            )
        elif stage.threshold is None:
            problems.append((f"{at}.threshold", "expected a number in [0, 1] for the rule"))
        if stage.rule == "detector" and stage.scores == "logits":
            problems.append(
                (f"{at}.scores", "expected probabilities: rule 'detector' reads box scores")
            )
    return problems


def _reeval_problems(
    workload: WorkloadConfig,
    tiers: Mapping[str, TierConfig],
    declared: Collection[str],
    regions: Mapping[str, str],
    origin: Origin,
    base: str,
) -> list[Problem]:
    """A re-evaluation tier that is unknown, or that the workload's data may not reach."""
    reference = workload.reference_tier
    if reference is None:
        return []
    at = f"{base}.reeval.tier"
    if reference not in tiers:
        return [] if reference in declared else [(at, unknown_tier(reference, declared))]
    if workload.privacy == "sensitive":
        return [(f"{base}.reeval", "privacy 'sensitive' answers are never re-evaluated")]
    excluded = exclusion_reason(
        place_of(tiers[reference], regions), workload.privacy, workload.residency, origin
    )
    if excluded is not None:
        return [(at, f"the data may not reach {reference!r}: {excluded.route_message()}")]
    return []


def plan_problems(
    tiers: Mapping[str, TierConfig],
    workloads: Mapping[str, WorkloadConfig],
    declared_tiers: Collection[str] | None = None,
) -> list[Problem]:
    """Cross-checks among valid entries, as ``(path, message)`` pairs.

    ``declared_tiers`` also holds tiers that failed their own validation, so a cascade
    naming one of them is not reported a second time as unknown.
    """
    declared = set(tiers) if declared_tiers is None else set(declared_tiers)
    problems: list[Problem] = []
    regions: dict[str, str] = {}
    for name, tier in tiers.items():
        if tier.site is None or tier.region is None:
            continue
        known = regions.setdefault(tier.site, tier.region)
        if known != tier.region:
            problems.append(
                (
                    f"tiers.{name}.region",
                    f"site {tier.site!r} is in region {known!r} on another"
                    f" tier, got {tier.region!r}",
                )
            )
    for name, workload in workloads.items():
        base = f"workloads.{name}"
        problems.extend(_stage_problems(workload, base))
        for i, stage in enumerate(workload.cascade):
            if stage.tier not in declared:
                problems.append((f"{base}.cascade[{i}].tier", unknown_tier(stage.tier, declared)))
        if workload.budget_period_s is not None and workload.budget_usd_per_period is None:
            problems.append((f"{base}.budget_period_s", "applies only with budget_usd_per_period"))
        if workload.allow_raw_samples and workload.privacy == "sensitive":
            problems.append(
                (f"{base}.allow_raw_samples", "privacy 'sensitive' inputs are never sampled")
            )
        if not all(s.tier in tiers for s in workload.cascade):
            continue  # reported above, or by the tier's own validation
        origin = workload_origin(workload, tiers, regions)
        problems.extend(_reeval_problems(workload, tiers, declared, regions, origin, base))
        reasons = [
            exclusion_reason(
                place_of(tiers[s.tier], regions), workload.privacy, workload.residency, origin
            )
            for s in workload.cascade
        ]
        if all(r is not None for r in reasons):
            why = "; ".join(
                f"{s.tier}: {r.route_message()}"
                for s, r in zip(workload.cascade, reasons, strict=True)
                if r is not None
            )
            problems.append((f"{base}.cascade", f"no tier may see this workload's data ({why})"))
    return problems
