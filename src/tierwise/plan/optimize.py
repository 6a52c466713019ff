"""The placement optimizer: from a fleet spec and measured profiles to the cheapest plan
that meets every workload's SLO, privacy and residency, capacity, accuracy and budget.

:func:`plan_fleet` is the whole pipeline: estimates from the profiles
(:mod:`tierwise.plan.perf`), each workload's feasible placements
(:mod:`tierwise.plan.options`), the mixed-integer program (:mod:`tierwise.plan.milp`),
then the plan priced (:func:`~tierwise.plan.result.evaluate`). When a workload has no
feasible placement, or the tiers cannot hold all of them together, it raises
:class:`~tierwise.errors.InfeasiblePlanError` naming the workload and the binding
constraint. :func:`greedy_plan` is the baseline the optimizer is measured against.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, replace

from tierwise.bench.profiles import ProfileSet
from tierwise.errors import InfeasiblePlanError
from tierwise.plan.calibration import CascadeCurve, check_calibrations
from tierwise.plan.memory import Resident, add_stages, tier_memory
from tierwise.plan.milp import find_overload, solve_milp
from tierwise.plan.options import Option, WorkloadOptions, workload_options
from tierwise.plan.perf import ProfileCatalog
from tierwise.plan.problem import TierModel, day_periods, hours_per_month, tier_models
from tierwise.plan.result import PlanResult, evaluate
from tierwise.plan.settings import PlanSettings
from tierwise.spec import FleetSpec

__all__ = ["PlacementProblem", "build_problem", "greedy_plan", "plan_fleet", "solve_problem"]

_EPS = 1e-9


@dataclass(frozen=True)
class PlacementProblem:
    """Everything the optimizer works on: each workload's feasible placements, the tiers'
    costs and capacity, and the periods of the day."""

    spec: FleetSpec
    workloads: tuple[WorkloadOptions, ...]
    models: dict[str, TierModel]
    periods: tuple[float, ...]
    settings: PlanSettings

    def check_each_workload(self) -> None:
        """Raise InfeasiblePlanError for the first workload with no feasible placement."""
        for w in self.workloads:
            if not w.options:
                raise w.error()


def _catalog(spec: FleetSpec, profiles: Sequence[ProfileSet] | ProfileCatalog) -> ProfileCatalog:
    return profiles if isinstance(profiles, ProfileCatalog) else ProfileCatalog(spec, profiles)


def build_problem(
    spec: FleetSpec,
    profiles: Sequence[ProfileSet] | ProfileCatalog,
    *,
    calibrations: Sequence[CascadeCurve] = (),
    settings: PlanSettings | None = None,
) -> PlacementProblem:
    """Every workload's feasible placements (workloads without any are kept, empty).
    PlanError for a calibration no workload can use (:func:`check_calibrations`)."""
    check_calibrations(spec, calibrations)
    settings = settings or PlanSettings()
    catalog = _catalog(spec, profiles)
    models = tier_models(spec, settings)
    periods = day_periods(spec)
    workloads = tuple(
        workload_options(spec, w, catalog, models, periods, calibrations)
        for w in spec.workloads.values()
    )
    return PlacementProblem(spec, workloads, models, periods, settings)


def solve_problem(problem: PlacementProblem) -> PlanResult:
    """The cheapest plan for ``problem`` (InfeasiblePlanError when there is none)."""
    problem.check_each_workload()
    solution = solve_milp(problem.workloads, problem.models, problem.periods, problem.settings)
    if solution is None:
        over = find_overload(problem.workloads, problem.models, problem.periods, problem.settings)
        if over.resource == "memory":
            raise InfeasiblePlanError(
                over.workload,
                "model",
                f"tier {over.tier!r} would need {over.needed_replicas:.4g} MiB on each node"
                f" for the variants of the workloads that can only go there"
                f" ({over.resident}), and a node has {over.capacity_replicas:.4g} MiB;"
                f" expected smaller variants, more memory on {over.tier!r} or other tiers",
            )
        when = "" if len(problem.periods) == 1 else f" at {over.period:02d}:00"
        raise InfeasiblePlanError(
            over.workload,
            "traffic",
            f"tier {over.tier!r} would need {over.needed_replicas:.3g} busy replicas{when} with"
            f" the workloads that can only go there, and holds {over.capacity_replicas:.3g}"
            " (nodes x max_replicas_per_node x max_utilization); expected more capacity on"
            f" {over.tier!r} or less traffic",
        )
    result = evaluate(
        problem.workloads, solution.choice, problem.models, problem.periods, problem.settings
    )
    return replace(
        result,
        status=solution.status,
        mip_gap=solution.mip_gap,
        solve_s=solution.solve_s,
        size={
            "workloads": len(problem.workloads),
            "placements": sum(len(w.options) for w in problem.workloads),
            "variables": solution.variables,
            "constraints": solution.constraints,
            "nonzeros": solution.nonzeros,
        },
    )


def plan_fleet(
    spec: FleetSpec,
    profiles: Sequence[ProfileSet] | ProfileCatalog,
    *,
    calibrations: Sequence[CascadeCurve] = (),
    settings: PlanSettings | None = None,
) -> PlanResult:
    """Place every workload of ``spec`` at least total cost per month.

    ``profiles`` are measured profile sets (or a catalog built from them);
    ``calibrations`` add cascades as placements. Raises InfeasiblePlanError naming the
    workload and the binding constraint when no plan exists, ProfileError for profiles
    that do not fit the spec.
    """
    return solve_problem(
        build_problem(spec, profiles, calibrations=calibrations, settings=settings)
    )


def greedy_plan(problem: PlacementProblem) -> PlanResult | None:
    """The baseline: workloads in spec order each take the placement that adds least to
    the bill given what earlier ones took (opening a tier, adding cloud instances), among
    those that still fit (busy replicas and memory); None when one no longer fits
    anywhere."""
    problem.check_each_workload()
    models, periods = problem.models, problem.periods
    load = {t: [0.0] * len(periods) for t in models}
    opened: set[str] = set()
    choice: list[int] = []
    resident: dict[str, Resident] = {}
    for w in problem.workloads:
        best: tuple[float, int] | None = None
        for j, option in enumerate(w.options):
            if not _memory_fits(option, resident, models):
                continue
            extra = _added_usd(option.usage, load, opened, models, periods)
            if extra is not None and (
                best is None or extra + option.variable_usd_per_month < best[0]
            ):
                best = (extra + option.variable_usd_per_month, j)
        if best is None:
            return None
        choice.append(best[1])
        add_stages(resident, w.options[best[1]])
        for t, usage in w.options[best[1]].usage.items():
            opened.add(t)
            load[t] = [a + b for a, b in zip(load[t], usage, strict=True)]
    return evaluate(problem.workloads, choice, models, periods, problem.settings)


def _memory_fits(
    option: Option, resident: dict[str, Resident], models: dict[str, TierModel]
) -> bool:
    """Whether the variants ``option`` loads still fit each tier's nodes with ``resident``."""
    after = {stage.tier: dict(resident.get(stage.tier, {})) for stage in option.stages}
    add_stages(after, option)
    return all(tier_memory(t, held, models).fits for t, held in after.items())


def _instances(load: Sequence[float], model: TierModel) -> list[int]:
    return [math.ceil(u / model.capacity_replicas - _EPS) if u > _EPS else 0 for u in load]


def _added_usd(
    usage: dict[str, tuple[float, ...]],
    load: dict[str, list[float]],
    opened: set[str],
    models: dict[str, TierModel],
    periods: tuple[float, ...],
) -> float | None:
    extra = 0.0
    for t, add in usage.items():
        model = models[t]
        after = [a + b for a, b in zip(load[t], add, strict=True)]
        if model.cloud:
            before_n, after_n = _instances(load[t], model), _instances(after, model)
            if max(after_n, default=0) > model.max_instances:
                return None
            extra += sum(
                (n1 - n0) * model.instance_usd_per_hour * hours_per_month(h)
                for n0, n1, h in zip(before_n, after_n, periods, strict=True)
            )
        else:
            if max(after, default=0.0) > model.capacity_replicas + _EPS:
                return None
            if t not in opened:
                extra += model.fixed_usd_per_month
    return extra
