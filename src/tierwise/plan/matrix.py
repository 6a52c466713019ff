"""The decision matrix: every workload scored on every tier across the playbook's six
drivers, with a reason in each cell and a ranked recommendation.

Scores follow :mod:`tierwise.plan.matrix_rules`. A tier is *feasible* for a workload when
no driver marks a hard constraint (SLO, privacy and residency, capacity, memory, budget);
its *total* is the weighted mean of its six scores, with weights that follow the workload:

- every driver weighs 1;
- interactive workloads: latency weighs 2; deferrable ones: latency 0.5 and cost 2;
- ``personal`` or ``sensitive`` data: privacy weighs 2;
- a budget: cost weighs 2.

Every tier of the spec is scored, also those a workload does not list yet (``listed``
says which), so the matrix shows where else a workload could go. Feasible tiers are
ranked listed ones first, then by total (higher first), cost per 1M (lower first) and
spec order; the first is the recommendation. Without profiles, latency counts the
network only and throughput is unknown; both are said in the reasons.

Cost is the workload's alone on the tier (``usd_per_million``); ``usd_per_million_share``
is what ``tierwise plan`` would charge it there, its share of the capacity it keeps busy,
and ``fixed_usd_per_month`` the tier's fixed cost that makes the difference
(:mod:`tierwise.plan.cascade`).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, replace

from tierwise.bench.profiles import ProfileSet
from tierwise.plan.cascade import ALONE_BASIS, SHARE_BASIS, stage_figures
from tierwise.plan.matrix_rules import (
    DRIVERS,
    Cell,
    cost_cell,
    latency_cell,
    memory_cell,
    operations_cell,
    privacy_cell,
    throughput_cell,
    tier_usd_per_million,
)
from tierwise.plan.perf import Estimate, ProfileCatalog
from tierwise.plan.problem import TierModel, day_periods, period_rates, tier_models
from tierwise.plan.settings import PlanSettings
from tierwise.spec import (
    AnyTier,
    FleetSpec,
    Variant,
    Workload,
    variant_for,
    variant_misfit,
)

__all__ = ["DecisionMatrix", "TierScore", "WorkloadScores", "decision_matrix", "driver_weights"]


def driver_weights(workload: Workload) -> dict[str, float]:
    """How much each driver counts for this workload (see the module docs)."""
    weights = dict.fromkeys(DRIVERS, 1.0)
    if workload.urgency == "interactive":
        weights["latency"] = 2.0
    else:
        weights["latency"] = 0.5
        weights["cost"] = 2.0
    if workload.privacy != "public":
        weights["privacy"] = 2.0
    if workload.budget is not None:
        weights["cost"] = 2.0
    return weights


@dataclass(frozen=True)
class TierScore:
    """One workload on one tier: a cell per driver, the weighted total when feasible."""

    tier: str
    kind: str
    listed: bool
    variant: str | None
    cells: dict[str, Cell]
    total: float | None
    usd_per_million: float  # alone on the tier (ALONE_BASIS)
    rank: int | None = None
    usd_per_million_share: float | None = None  # as the plan counts it (SHARE_BASIS)
    fixed_usd_per_month: float = 0.0  # the tier's, paid once anything runs there

    @property
    def feasible(self) -> bool:
        return self.total is not None

    @property
    def infeasible_because(self) -> list[str]:
        """``driver: reason`` for each hard constraint the tier breaks."""
        return [f"{d}: {c.reason}" for d, c in self.cells.items() if not c.feasible]

    def to_dict(self) -> dict[str, object]:
        return {
            "tier": self.tier,
            "kind": self.kind,
            "listed": self.listed,
            "variant": self.variant,
            "feasible": self.feasible,
            "total": self.total,
            "rank": self.rank,
            "usd_per_million": self.usd_per_million,
            "usd_per_million_share": self.usd_per_million_share,
            "fixed_usd_per_month": self.fixed_usd_per_month,
            "infeasible_because": self.infeasible_because,
            "cells": {d: c.to_dict() for d, c in self.cells.items()},
        }


@dataclass(frozen=True)
class WorkloadScores:
    """A workload's row of the matrix: every tier scored, the feasible ones ranked."""

    workload: str
    weights: dict[str, float]
    tiers: list[TierScore]

    @property
    def ranking(self) -> list[str]:
        """Feasible tiers, best first."""
        ranked = sorted((t for t in self.tiers if t.rank is not None), key=lambda t: t.rank or 0)
        return [t.tier for t in ranked]

    @property
    def recommended(self) -> str | None:
        return self.ranking[0] if self.ranking else None

    def to_dict(self) -> dict[str, object]:
        return {
            "workload": self.workload,
            "weights": self.weights,
            "recommended": self.recommended,
            "ranking": self.ranking,
            "tiers": [t.to_dict() for t in self.tiers],
        }


@dataclass(frozen=True)
class DecisionMatrix:
    """The whole matrix: one :class:`WorkloadScores` per workload, in spec order."""

    drivers: tuple[str, ...]
    workloads: list[WorkloadScores]
    profiled: bool

    def workload(self, name: str) -> WorkloadScores:
        for row in self.workloads:
            if row.workload == name:
                return row
        raise KeyError(name)

    def to_dict(self) -> dict[str, object]:
        return {
            "drivers": list(self.drivers),
            "profiled": self.profiled,
            "cost_basis": {"usd_per_million": ALONE_BASIS, "usd_per_million_share": SHARE_BASIS},
            "workloads": [w.to_dict() for w in self.workloads],
        }


def _variant_on(
    spec: FleetSpec, workload: Workload, tier: AnyTier, catalog: ProfileCatalog | None
) -> tuple[Variant | None, Estimate | None, str | None]:
    """The variant scored on ``tier``, its estimate, and why it misses ``min_accuracy``."""
    model = spec.models[workload.model]
    pinned = workload.variants.get(tier.name)
    if pinned is not None:
        candidates = [model.variants[pinned]]
    else:
        candidates = [v for v in model.variants.values() if variant_misfit(v, tier) is None]
    if not candidates:
        return variant_for(spec, workload, tier), None, None
    measured = [
        (v, catalog.estimate(model.name, v.name, tier) if catalog is not None else None)
        for v in candidates
    ]
    need = workload.min_accuracy
    if need is None:
        return (*measured[0], None)
    known = [(v, e) for v, e in measured if e is not None and e.accuracy is not None]
    for variant, estimate in known:
        if (estimate.accuracy or 0.0) >= need:
            return variant, estimate, None
    if not known:
        return (*measured[0], None)
    best, best_estimate = max(known, key=lambda ve: ve[1].accuracy or 0.0)
    problem = (
        f"no variant that fits reaches min_accuracy {need:g}"
        f" (best: {best.name} {(best_estimate.accuracy or 0.0) * 100:.1f}%)"
    )
    return best, best_estimate, problem


def _share_usd_per_million(
    spec: FleetSpec,
    workload: Workload,
    tier: AnyTier,
    estimate: Estimate | None,
    models: dict[str, TierModel],
    periods: tuple[float, ...],
) -> float | None:
    """What the plan would charge the workload per 1M on ``tier`` alone in one stage (its
    variable costs and capacity share, :func:`~tierwise.plan.cascade.stage_figures`)."""
    volume = workload.traffic.requests_per_month
    if estimate is None or volume <= 0:
        return None
    rates = period_rates(workload, periods)
    (figures,) = stage_figures(spec, workload, (tier,), (estimate,), (1.0,), models, periods, rates)
    return figures.usd_per_month / volume * 1e6


def _score_workload(
    spec: FleetSpec,
    workload: Workload,
    catalog: ProfileCatalog | None,
    settings: PlanSettings,
    models: dict[str, TierModel],
    periods: tuple[float, ...],
) -> WorkloadScores:
    weights = driver_weights(workload)
    rows: list[TierScore] = []
    estimates: dict[str, Estimate | None] = {}
    costs: dict[str, tuple[float, str]] = {}
    chosen: dict[str, tuple[Variant | None, str | None]] = {}
    for tier in spec.tiers.values():
        variant, estimate, problem = _variant_on(spec, workload, tier, catalog)
        chosen[tier.name] = (variant, problem)
        estimates[tier.name] = estimate
        costs[tier.name] = tier_usd_per_million(spec, workload, tier, estimate, settings)
    cheapest = min(c for c, _ in costs.values())
    for tier in spec.tiers.values():
        variant, problem = chosen[tier.name]
        estimate = estimates[tier.name]
        usd, note = costs[tier.name]
        share = _share_usd_per_million(spec, workload, tier, estimate, models, periods)
        fixed = models[tier.name].fixed_usd_per_month
        cells = {
            "latency": latency_cell(spec, workload, tier, estimate),
            "privacy": privacy_cell(spec, workload, tier),
            "throughput": throughput_cell(spec, workload, tier, estimate, settings),
            "memory": memory_cell(workload, tier, variant, estimate, problem),
            "cost": cost_cell(
                workload,
                usd,
                cheapest,
                note,
                kind=tier.kind if workload.traffic.requests_per_month > 0 else None,
                share_usd_per_million=share,
                fixed_usd_per_month=fixed,
            ),
            "operations": operations_cell(spec, tier),
        }
        name = variant.name if variant is not None else None
        row = TierScore(
            tier.name, tier.kind, tier.name in workload.tiers, name, cells, None, usd,
            usd_per_million_share=share, fixed_usd_per_month=fixed,
        )  # fmt: skip
        rows.append(row)
    scored: list[TierScore] = []
    for row in rows:
        total = None
        if all(c.feasible for c in row.cells.values()):
            weighted = sum(weights[d] * (row.cells[d].score or 0) for d in DRIVERS)
            total = round(weighted / sum(weights.values()), 2)
        scored.append(replace(row, total=total))
    order = sorted(
        (i for i, t in enumerate(scored) if t.total is not None),
        key=lambda i: (
            not scored[i].listed,
            -(scored[i].total or 0.0),
            scored[i].usd_per_million,
            i,
        ),
    )
    ranks = {i: r + 1 for r, i in enumerate(order)}
    ranked = [replace(t, rank=ranks.get(i)) for i, t in enumerate(scored)]
    return WorkloadScores(workload.name, weights, ranked)


def decision_matrix(
    spec: FleetSpec,
    profiles: Sequence[ProfileSet] | ProfileCatalog | None = None,
    *,
    settings: PlanSettings | None = None,
) -> DecisionMatrix:
    """Score every workload of ``spec`` on every tier (profiles optional: without them
    latency is the network's and throughput unknown). Raises ProfileError for profiles that
    do not fit the spec."""
    settings = settings or PlanSettings()
    catalog: ProfileCatalog | None
    if profiles is None or isinstance(profiles, ProfileCatalog):
        catalog = profiles
    else:
        catalog = ProfileCatalog(spec, profiles) if profiles else None
    models, periods = tier_models(spec, settings), day_periods(spec)
    rows = [
        _score_workload(spec, w, catalog, settings, models, periods)
        for w in spec.workloads.values()
    ]
    return DecisionMatrix(DRIVERS, rows, catalog is not None)
