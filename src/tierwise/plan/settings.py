"""Settings shared by the decision matrix and the placement optimizer."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field

__all__ = ["PlanSettings"]


class PlanSettings(BaseModel):
    """How the planner judges capacity and how long it may search.

    ``max_utilization`` is the headroom rule: a tier is planned to be busy at most this
    fraction of the time in its busiest hour (queues stay short, a node can fail). The
    optimizer stops at a proven optimum, or when the gap between its best plan and its
    lower bound is below ``mip_rel_gap``, or after ``time_limit_s`` (then it reports the
    gap it reached).
    """

    model_config = ConfigDict(extra="forbid", frozen=True)

    max_utilization: float = Field(default=0.7, gt=0, le=1)
    time_limit_s: float = Field(default=10.0, gt=0)
    mip_rel_gap: float = Field(default=1e-3, ge=0, lt=1)
