"""The plan file: the routing plan the planner writes and the router reads.

:mod:`~tierwise.planfile.schema` holds its typed models (:class:`Plan`, :class:`TierConfig`,
:class:`WorkloadConfig`, :class:`CascadeStage`), :mod:`~tierwise.planfile.load` reads and
checks a file (:func:`load_plan`), :mod:`~tierwise.planfile.checks` the cross-field checks
and where each tier is, and :mod:`~tierwise.planfile.schedule` the price schedule for
deferrable work. Where a request may go follows the spec's privacy and residency rules
(:mod:`tierwise.spec.placement`); nothing here imports the router or the planner, which
both build on it."""

from __future__ import annotations

from tierwise.planfile.load import (
    load_plan,
    parse_plan,
)
from tierwise.planfile.schedule import (
    PriceSchedule,
)
from tierwise.planfile.schema import (
    CascadeStage,
    LocalModel,
    Plan,
    PlanHeader,
    TierConfig,
    WorkloadConfig,
)

__all__ = [
    "CascadeStage",
    "LocalModel",
    "Plan",
    "PlanHeader",
    "PriceSchedule",
    "TierConfig",
    "WorkloadConfig",
    "load_plan",
    "parse_plan",
]
