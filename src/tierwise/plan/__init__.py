"""Planning: where each workload should run, and what it costs there.

- cost model (:mod:`tierwise.plan.cost`): cost per inference on cloud, edge and device
  tiers, with a breakdown by component;
- estimates (:mod:`tierwise.plan.perf`): what a variant does on a tier, from measured
  profiles (scaled by a tier's ``speed_factor`` when not measured there);
- decision matrix (:func:`decision_matrix`): every workload scored on every tier across the
  playbook's six drivers, with reasons and a ranked recommendation;
- placement optimizer (:func:`plan_fleet`): every workload's traffic placed on tiers,
  variants and cascades at least total cost, as a mixed-integer program
  (:mod:`tierwise.plan.milp`), written as the router's plan.yaml by :func:`write_plan`;
- cost views (:func:`cost_views`): a plan's cost per 1M under each cloud purchase mix, with
  and without the energy fee.
"""

from tierwise.plan.calibration import (
    CascadeCurve,
    CurvePoint,
    ScoreOutput,
    check_calibrations,
    curves_from_result,
    load_calibration,
)
from tierwise.plan.cost import (
    CostBreakdown,
    blended_usd_per_hour,
    cloud_cost,
    cloud_tier_cost,
    device_cost,
    device_tier_cost,
    edge_cost,
    edge_tier_cost,
    tier_cost,
)
from tierwise.plan.matrix import (
    DecisionMatrix,
    TierScore,
    WorkloadScores,
    decision_matrix,
    driver_weights,
)
from tierwise.plan.matrix_rules import DRIVERS, Cell
from tierwise.plan.optimize import (
    PlacementProblem,
    build_problem,
    greedy_plan,
    plan_fleet,
    solve_problem,
)
from tierwise.plan.options import Option, Rejection, Stage, WorkloadOptions
from tierwise.plan.perf import BatchEstimate, Estimate, ProfileCatalog, network_ms, speed_factor
from tierwise.plan.problem import MIXES, TierModel
from tierwise.plan.result import Placement, PlanResult, TierUse, evaluate
from tierwise.plan.settings import PlanSettings
from tierwise.plan.views import CostScenario, CostViews, cost_views
from tierwise.plan.write import Endpoint, plan_document, plan_model, write_plan

__all__ = [
    "DRIVERS",
    "MIXES",
    "BatchEstimate",
    "CascadeCurve",
    "Cell",
    "CostBreakdown",
    "CostScenario",
    "CostViews",
    "CurvePoint",
    "DecisionMatrix",
    "Endpoint",
    "Estimate",
    "Option",
    "PlacementProblem",
    "Placement",
    "PlanResult",
    "PlanSettings",
    "ProfileCatalog",
    "ScoreOutput",
    "Rejection",
    "Stage",
    "TierModel",
    "TierScore",
    "TierUse",
    "WorkloadOptions",
    "WorkloadScores",
    "blended_usd_per_hour",
    "build_problem",
    "check_calibrations",
    "cloud_cost",
    "cloud_tier_cost",
    "cost_views",
    "curves_from_result",
    "decision_matrix",
    "device_cost",
    "device_tier_cost",
    "driver_weights",
    "edge_cost",
    "edge_tier_cost",
    "evaluate",
    "greedy_plan",
    "load_calibration",
    "network_ms",
    "plan_document",
    "plan_model",
    "plan_fleet",
    "solve_problem",
    "speed_factor",
    "tier_cost",
    "write_plan",
]
