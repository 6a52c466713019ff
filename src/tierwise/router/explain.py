"""``tierwise route explain``: a route and the reason for every tier, as lines of text.

:func:`explain` renders any :class:`~tierwise.router.types.Route`; :func:`route_explain`
loads a plan, routes one hypothetical request (every tier healthy unless told otherwise)
and returns the route with its explanation, for the CLI to print.
"""

from __future__ import annotations

import os
import time
from collections.abc import Mapping
from datetime import UTC, datetime

from tierwise.router.plan_load import load_plan
from tierwise.router.policy import Policy
from tierwise.router.types import Privacy, RequestMeta, Residency, Route, TierState, Urgency

__all__ = ["explain", "route_explain"]


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
    Local model files need not exist. Raises SpecError for a bad plan, RouteError for
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
    return route, header + "\n" + explain(route)
