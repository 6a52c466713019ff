"""Errors of planning: measured profiles, and plans that cannot be made."""

from __future__ import annotations

from tierwise.errors.base import TierwiseError

__all__ = ["InfeasiblePlanError", "PlanError", "ProfileError"]


class PlanError(TierwiseError):
    """The planner cannot work with its inputs. ``field`` names the input at fault (a spec
    field path such as ``tiers.cloud.endpoint``, or an option), ``expected`` what would do."""

    status_code = 400

    def __init__(self, field: str, expected: str, got: object = None) -> None:
        self.field = field
        self.expected = expected
        self.got = got
        suffix = "" if got is None else f", got {got}"
        super().__init__(f"{field}: expected {expected}{suffix}")


class InfeasiblePlanError(PlanError):
    """No placement of ``workload`` meets ``constraint`` (the binding one: an SLO, privacy
    and residency, capacity, memory, budget or accuracy); ``detail`` says by how much."""

    def __init__(self, workload: str, constraint: str, detail: str) -> None:
        self.workload = workload
        self.constraint = constraint
        self.detail = detail
        TierwiseError.__init__(
            self, f"workloads.{workload}.{constraint}: no feasible placement; {detail}"
        )
        self.field = f"workloads.{workload}.{constraint}"
        self.expected = detail
        self.got = None


class ProfileError(TierwiseError):
    """A profiles file cannot be read, breaks its schema, or does not fit the fleet spec.
    ``file`` and ``path`` (a field path such as ``profiles[2].variant``) say where."""

    status_code = 400

    def __init__(self, file: str, path: str, message: str) -> None:
        self.file = file
        self.path = path
        self.reason = message
        where = f"{file}: {path}" if path else file
        super().__init__(f"{where}: {message}")
