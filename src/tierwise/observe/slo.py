"""Each workload's p99 target, as the dashboard and the alerts fill it in.

The target comes from the first of: the fleet spec's ``slo.p99_ms`` for the workload of
that name (when the plan links a spec), the plan's own ``slo_p99_ms``, the workload's
``deadline_ms``, and the planner's ``expected.p99_ms``. A workload none of them sets has
no target: its latency is still drawn, and no SLO alert is rendered for it.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from tierwise.planfile.schema import Plan

__all__ = ["SloSource", "WorkloadSlo", "workload_slos"]

#: Where a workload's target was read from.
SloSource = Literal["spec", "plan", "deadline", "expected", "none"]


@dataclass(frozen=True)
class WorkloadSlo:
    """A workload's p99 target in seconds (None: none set) and where it came from."""

    workload: str
    p99_s: float | None
    source: SloSource

    @property
    def p99_ms(self) -> float | None:
        return None if self.p99_s is None else self.p99_s * 1000.0


def workload_slos(plan: Plan) -> dict[str, WorkloadSlo]:
    """The p99 target of every workload of ``plan``, by name (the plan's order).

    Reads the linked fleet spec (SpecError when it no longer loads)."""
    spec_ms: dict[str, float] = {}
    if plan.spec is not None:
        from tierwise.spec import load_spec

        spec = load_spec(plan.spec)
        spec_ms = {name: w.slo.p99_ms for name, w in spec.workloads.items()}
    out: dict[str, WorkloadSlo] = {}
    for name, workload in plan.workloads.items():
        expected = workload.expected.p99_ms if workload.expected is not None else None
        candidates: tuple[tuple[SloSource, float | None], ...] = (
            ("spec", spec_ms.get(name)),
            ("plan", getattr(workload, "slo_p99_ms", None)),
            ("deadline", workload.deadline_ms),
            ("expected", expected),
        )
        slo = WorkloadSlo(name, None, "none")
        for source, ms in candidates:
            if ms is not None and ms > 0:
                slo = WorkloadSlo(name, ms / 1000.0, source)
                break
        out[name] = slo
    return out
