"""The decision-matrix and cost sections of a report, from the planner's decision matrix.

The matrix section shows every workload on every tier it lists (the tiers a plan may use),
each driver's score 1..5 with its reason, the weighted total and the rank or why the tier
is infeasible; tiers a workload does not list are left out. The cost section shows, per
workload, the cost per 1M inferences on each of those tiers (the planner's cost model),
and the workload's budget turned into USD per 1M.
"""

from __future__ import annotations

from collections.abc import Mapping

from tierwise.plan.matrix import DecisionMatrix as PlannerMatrix
from tierwise.plan.matrix import TierScore
from tierwise.report.data import DecisionMatrix, MatrixRow, WorkloadCost
from tierwise.spec import FleetSpec, Workload

__all__ = ["MATRIX_SCORE_RANGE", "budget_usd_per_million", "cost_section", "matrix_section"]

#: The planner scores each driver from 1 (poor) to 5 (best).
MATRIX_SCORE_RANGE = (1.0, 5.0)


def _verdict(score: TierScore, placed: bool) -> str:
    if score.rank is not None:
        return f"rank {score.rank}, placed" if placed else f"rank {score.rank}"
    broken = ", ".join(d for d, c in score.cells.items() if not c.feasible)
    if placed:
        return f"placed in cascade (alone: {broken})"
    return f"infeasible: {broken}"


def matrix_section(
    matrix: PlannerMatrix,
    spec: FleetSpec,
    placed: Mapping[str, set[str]] | None = None,
) -> DecisionMatrix:
    """One row per workload and listed tier; ``placed`` (workload -> tiers the plan uses)
    marks the plan's choices in the verdict. A tier infeasible on its own (say, no variant
    it can hold is accurate enough) may still be placed as a stage of a cascade."""
    rows = []
    for scores in matrix.workloads:
        listed = spec.workloads[scores.workload].tiers
        chosen = (placed or {}).get(scores.workload, set())
        for score in sorted(
            (t for t in scores.tiers if t.tier in listed), key=lambda t: listed.index(t.tier)
        ):
            rows.append(
                MatrixRow(
                    workload=scores.workload,
                    tier=score.tier,
                    scores={
                        d: None if c.score is None else float(c.score)
                        for d, c in score.cells.items()
                    },
                    reasons={d: c.reason for d, c in score.cells.items()},
                    total=score.total,
                    verdict=_verdict(score, score.tier in chosen),
                )
            )
    return DecisionMatrix(tuple(matrix.drivers), tuple(rows), score_range=MATRIX_SCORE_RANGE)


def budget_usd_per_million(workload: Workload) -> float | None:
    """The tighter of the workload's budgets per 1M inferences and per month (at its mean
    traffic), as USD per 1M; None without a budget."""
    budget = workload.budget
    if budget is None:
        return None
    limits = []
    if budget.usd_per_million_inferences is not None:
        limits.append(budget.usd_per_million_inferences)
    volume = workload.traffic.requests_per_month
    if budget.usd_per_month is not None and volume > 0:
        limits.append(budget.usd_per_month / volume * 1e6)
    return min(limits) if limits else None


def cost_section(
    matrix: PlannerMatrix,
    spec: FleetSpec,
    planned_usd_per_million: Mapping[str, float] | None = None,
    *,
    planned_label: str = "plan",
) -> tuple[WorkloadCost, ...]:
    """Per workload: USD per 1M on each listed tier, what the plan pays, and the budget."""
    out = []
    for scores in matrix.workloads:
        workload = spec.workloads[scores.workload]
        by_tier = {t.tier: t.usd_per_million for t in scores.tiers if t.tier in workload.tiers}
        ordered = {name: by_tier[name] for name in workload.tiers if name in by_tier}
        out.append(
            WorkloadCost(
                workload=workload.name,
                usd_per_million_by_tier=ordered,
                planned_usd_per_million=(planned_usd_per_million or {}).get(workload.name),
                planned_label=planned_label,
                budget_usd_per_million=budget_usd_per_million(workload),
            )
        )
    return tuple(out)
