"""Planning: where each workload should run, and what it costs there.

So far this holds the cost model (:mod:`tierwise.plan.cost`): cost per inference on cloud,
edge and device tiers, with a breakdown by component.
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

__all__ = [
    "CostBreakdown",
    "blended_usd_per_hour",
    "cloud_cost",
    "cloud_tier_cost",
    "device_cost",
    "device_tier_cost",
    "edge_cost",
    "edge_tier_cost",
    "tier_cost",
]
