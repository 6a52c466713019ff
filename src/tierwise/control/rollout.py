"""One rollout's state, as stored (every field JSON) so a restarted control plane goes on
where it was, and which nodes each stage moves.

A rollout moves its *cohort* stage by stage: the canary pool first (the selected nodes
the canary selector picks), then each percentage of the selected nodes (the cohort so
far, then further nodes by name, so a stage only ever adds nodes). ``baseline`` keeps, for
every node the rollout may move, the version it served when the rollout started: a
rollback sends each cohort node back to exactly that version, by digest, which the node
still keeps and activates from its own store.
"""

from __future__ import annotations

import math
import secrets
import time
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from typing import Any

from tierwise.control.fleet import NodeView
from tierwise.control.selector import Selector
from tierwise.control.spec import CANARY, RolloutRequest, Stage

__all__ = ["ACTIVE", "FINAL", "Rollout", "new_rollout_id", "stage_members"]

ACTIVE = frozenset({"running", "paused"})
FINAL = frozenset({"succeeded", "failed", "aborted"})


def new_rollout_id(bundle: str, now_s: float) -> str:
    stamp = time.strftime("%Y%m%d%H%M%S", time.gmtime(now_s))
    return f"{bundle}-{stamp}-{secrets.token_hex(3)}"


def stage_members(
    stage: Stage, selected: Sequence[NodeView], cohort: Sequence[str], canary: Selector
) -> list[str]:
    """The cohort once ``stage`` is reached: the canary pool, or the first ``stage``
    percent of ``selected`` (rounded up), the current cohort counted first."""
    if stage == CANARY:
        return sorted({*cohort, *(n.name for n in selected if canary.matches(n.labels))})
    wanted = math.ceil(len(selected) * int(stage) / 100)
    members = list(dict.fromkeys(cohort))
    for node in selected:
        if len(members) >= wanted:
            break
        if node.name not in members:
            members.append(node.name)
    return sorted(members)


@dataclass
class Rollout:
    """A rollout and where it stands."""

    id: str
    request: RolloutRequest
    version: str
    digest: str
    created_s: float
    created_by: str
    state: str = "running"
    stage: int = 0
    stage_started_s: float = 0.0
    serving_since_s: float | None = None
    next_analysis_s: float | None = None
    cohort: list[str] = field(default_factory=list)
    baseline: dict[str, dict[str, str | None]] = field(default_factory=dict)
    passes: int = 0
    failures: dict[str, int] = field(default_factory=dict)
    analyses: int = 0
    inconclusive: int = 0
    paused_s: float | None = None
    last_analysis: dict[str, Any] | None = None
    baseline_stats: dict[str, Any] | None = None
    reason: str | None = None
    finished_s: float | None = None
    updated_s: float = 0.0

    @property
    def bundle(self) -> str:
        return self.request.bundle

    @property
    def stages(self) -> list[Stage]:
        return self.request.stages

    @property
    def interval_s(self) -> float:
        return self.request.interval_of(self.stage)

    @property
    def converge_timeout_s(self) -> float:
        configured = self.request.converge_timeout_s
        return configured if configured is not None else max(60.0, 3 * self.interval_s)

    @property
    def active(self) -> bool:
        return self.state in ACTIVE

    def stage_name(self, index: int | None = None) -> str:
        stage = self.stages[self.stage if index is None else index]
        return CANARY if stage == CANARY else f"{stage}%"

    def to_doc(self) -> dict[str, Any]:
        doc = asdict(self)
        doc["request"] = self.request.model_dump(mode="json")
        doc["bundle"] = self.bundle
        doc["stage_name"] = self.stage_name()
        return doc

    @classmethod
    def from_doc(cls, doc: dict[str, Any]) -> Rollout:
        fields = {k: v for k, v in doc.items() if k in cls.__dataclass_fields__}
        fields["request"] = RolloutRequest.model_validate(doc["request"])
        return cls(**fields)
