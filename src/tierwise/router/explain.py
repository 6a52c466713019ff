"""``tierwise route explain``: a route and the reason for every tier, as lines of text.

:func:`explain` renders any :class:`~tierwise.router.types.Route`; :func:`route_explain`
loads a plan, routes one hypothetical request (every tier healthy unless told otherwise)
and returns the route with its explanation, for the CLI to print. :func:`stage_outputs`
says which output each stage of the workload's cascade reads its scores from, and as
what: checked against a local tier's model file when it is there (a problem is shown, as
the gateway would refuse it at start); a remote tier's is checked when the gateway starts.
"""

from __future__ import annotations

import os
import time
from collections.abc import Mapping
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from tierwise.errors import TierwiseError
from tierwise.planfile.load import load_plan
from tierwise.planfile.schema import CascadeStage, Plan
from tierwise.router.policy import Policy
from tierwise.router.score_outputs import resolve_score_output
from tierwise.router.types import RequestMeta, Route, TierState
from tierwise.spec.workloads import Privacy, Residency, Urgency

__all__ = ["StageOutput", "explain", "route_explain", "stage_outputs"]


@dataclass(frozen=True)
class StageOutput:
    """One cascade stage's scores: the rule and threshold, the ``output`` the plan names
    (None: picked from the model), what it holds (``scores``), the output it ``reads``
    when known, how that is known (``source``) and what is wrong (``problem``)."""

    tier: str
    rule: str | None
    threshold: float | None
    output: str | None
    scores: str
    reads: str | None
    source: str
    problem: str | None = None

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    def line(self) -> str:
        if self.rule is None and self.output is None:
            return "reads no scores (the last stage answers)"
        head = (
            "no rule" if self.rule is None else f"{self.rule} < {self.threshold or 0.0:g} escalates"
        )
        if self.problem is not None:
            return f"{head}; PROBLEM: {self.problem}"
        if self.reads is not None:
            what = f"reads {self.reads!r} as {self.scores}"
        elif self.output is not None:
            what = f"reads {self.output!r} as {self.scores}"
        else:
            what = f"reads 'probabilities' or the model's only score output, as {self.scores}"
        return f"{head}; {what} ({self.source})"


def _stage_output(plan: Plan, where: str, stage: CascadeStage) -> StageOutput:
    detector = stage.rule == "detector"
    declared = stage.output or ("scores" if detector else None)
    tier = plan.tiers[stage.tier]
    fields: dict[str, Any] = {
        "tier": stage.tier, "rule": stage.rule, "threshold": stage.threshold,
        "output": stage.output, "scores": stage.score_kind, "reads": None,
    }  # fmt: skip
    if stage.rule is None and stage.output is None:
        return StageOutput(**fields, source="not read")
    if tier.local is None:
        url = f"{tier.url}/v2/models/{tier.model}"
        return StageOutput(**fields, source=f"checked against GET {url} when the gateway starts")
    path = Path(tier.local.model)
    if not path.is_file():
        return StageOutput(**fields, source=f"no model file at {path} yet; checked at start")
    from tierwise.runtime import read_signature

    try:
        signature = read_signature(path)
    except TierwiseError as exc:
        return StageOutput(**fields, source=str(path), problem=f"cannot read {path}: {exc}")
    name, expected = resolve_score_output(
        declared, signature.outputs, min_columns=1 if detector else 2
    )
    if name is None:
        problem = f"{where} (tier {stage.tier!r}, model {str(path)!r}): expected {expected}"
        return StageOutput(**fields, source=str(path), problem=problem)
    return StageOutput(**{**fields, "reads": name}, source=f"checked against {path.name}")


def stage_outputs(plan: Plan, workload: str) -> list[StageOutput]:
    """What each stage of ``workload``'s cascade reads its scores from (module docs)."""
    return [
        _stage_output(plan, f"workloads.{workload}.cascade[{i}]", stage)
        for i, stage in enumerate(plan.workload(workload).cascade)
    ]


def _utc(seconds: float) -> str:
    return datetime.fromtimestamp(seconds, tz=UTC).strftime("%Y-%m-%d %H:%M UTC")


def explain(route: Route) -> str:
    """The route, one line per tier of the cascade with why it was kept or skipped, and
    any deferral or degradation; no trailing newline."""
    order = " -> ".join(route.tiers) if route.tiers else "no tier"
    lines = [f"route for workload {route.workload!r}: {order}"]
    width = max((len(d.tier) for d in route.decisions), default=0)
    lines.extend(f"  {d.tier:<{width}}  {d.reason}" for d in route.decisions)
    if route.defer_until_s is not None:
        lines.append(f"deferred until {_utc(route.defer_until_s)}: {route.defer_reason}")
    if route.degraded is not None:
        lines.append(f"degraded: {route.degraded}")
    return "\n".join(lines)


def route_explain(
    plan_path: str | os.PathLike[str],
    workload: str,
    *,
    privacy: Privacy | None = None,
    residency: Residency | None = None,
    deadline_ms: float | None = None,
    urgency: Urgency | None = None,
    now_s: float | None = None,
    tiers: Mapping[str, TierState] | None = None,
    spent_usd: Mapping[str, float] | None = None,
) -> tuple[Route, str]:
    """Route one request of ``workload`` under the plan at ``plan_path`` and explain it.

    The request arrives at ``now_s`` (UTC seconds; default: now). Tiers absent from
    ``tiers`` are healthy with no observed latency; ``spent_usd`` defaults to nothing spent.
    Local model files need not exist; where they do, each stage's score output is checked
    against them (:func:`stage_outputs`). Raises SpecError for a bad plan, RouteError for
    request values the policy cannot honour.
    """
    plan = load_plan(plan_path, check_files=False)
    policy = Policy(plan)
    at_s = time.time() if now_s is None else now_s
    meta = RequestMeta(
        workload=workload,
        privacy=privacy,
        residency=residency,
        deadline_ms=deadline_ms,
        urgency=urgency,
        received_s=at_s,
    )
    effective = policy.effective(meta)
    route = policy.route(meta, now_s=at_s, tiers=tiers or {}, spent_usd=spent_usd or {})
    config = plan.workloads[workload]

    def given(name: str, asked: object, value: object, default: object) -> str:
        if asked is None:
            return f"{name} {value!r} (workload default)"
        if value != asked:
            return f"{name} {value!r} (asked {asked!r}; the workload's {default!r} holds)"
        return f"{name} {value!r}"

    stages = stage_outputs(plan, workload)
    width = max(len(s.tier) for s in stages)
    scores = "\n".join(["stages:", *(f"  {s.tier:<{width}}  {s.line()}" for s in stages)])
    deadline = "none" if effective.deadline_ms is None else f"{effective.deadline_ms:g} ms"
    header = (
        f"request at {_utc(at_s)}: "
        + ", ".join(
            [
                given("privacy", privacy, effective.privacy, config.privacy),
                given("residency", residency, effective.residency, config.residency),
                given("urgency", urgency, effective.urgency, config.urgency),
            ]
        )
        + f", deadline {deadline}"
    )
    return route, header + "\n" + explain(route) + "\n" + scores
