"""Planning: where each workload should run, and what it costs there.

- cost model (:mod:`tierwise.plan.cost`): cost per inference on cloud, edge and device
  tiers, with a breakdown by component;
- estimates (:mod:`tierwise.plan.perf`): what a variant does on a tier, from measured
  profiles (scaled by a tier's ``speed_factor`` when not measured there);
- decision matrix (:func:`decision_matrix`): every workload scored on every tier across the
  playbook's six drivers, with reasons and a ranked recommendation.
"""

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
from tierwise.plan.perf import BatchEstimate, Estimate, ProfileCatalog, network_ms, speed_factor
from tierwise.plan.settings import PlanSettings

__all__ = [
    "DRIVERS",
    "BatchEstimate",
    "Cell",
    "CostBreakdown",
    "DecisionMatrix",
    "Estimate",
    "PlanSettings",
    "ProfileCatalog",
    "TierScore",
    "WorkloadScores",
    "blended_usd_per_hour",
    "cloud_cost",
    "cloud_tier_cost",
    "decision_matrix",
    "device_cost",
    "device_tier_cost",
    "driver_weights",
    "edge_cost",
    "edge_tier_cost",
    "network_ms",
    "speed_factor",
    "tier_cost",
]
