"""One step of a running rollout: wait for the stage's cohort to serve the new version,
analyse it once per interval against the baseline, then move on, roll back, or hold.

- **Converging.** Every reachable cohort node must report the new digest; until then
  nothing is analysed. A cohort that does not converge within ``converge_timeout_s``
  (a node that fails to verify or load the version) is rolled back. A cohort node seen
  on another version after it converged (a local rollback, a held version) starts the
  wait again, so the same timeout applies.
- **Analysing.** Over the interval just past, the cohort's statistics against the
  baseline's (selected nodes still on the version they ran; when none has traffic, the
  last baseline seen). A gate failing ``threshold`` analyses in a row rolls the cohort
  back, in the same transaction as the analysis that tripped it. An analysis without
  enough requests decides nothing; ``max_inconclusive`` of them in a row pause the
  rollout, with the reason, for an operator to promote, resume or abort.
- **No baseline at all** (every selected node is in the cohort and no baseline was ever
  measured): a stage passes on the cohort's own traffic once it reaches
  ``min_requests``, and the audit says so.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from tierwise.control.cohort import CohortStats
from tierwise.control.gates import analyse
from tierwise.control.rollout import Rollout, stage_members
from tierwise.control.selector import parse_selector
from tierwise.control.sources import cohorts
from tierwise.control.store import AuditEntry

if TYPE_CHECKING:
    from tierwise.control.engine import RolloutEngine
    from tierwise.control.fleet import Fleet

__all__ = ["AUTOMATIC", "step"]

#: The actor named in the audit log for the control plane's own decisions.
AUTOMATIC = "control"
#: Most cohort nodes an analysis entry of the audit log names (it gives the count too).
_NAMED_NODES = 20

Lease = tuple[str, float] | None


def step(engine: RolloutEngine, rollout: Rollout, fleet: Fleet, now: float, lease: Lease) -> None:
    """Advance ``rollout`` as far as ``now`` allows (one decision at most)."""
    if rollout.serving_since_s is None:
        _await_cohort(engine, rollout, fleet, now, lease)
        return
    drifted = [
        name
        for name in rollout.cohort
        if (node := fleet.get(name)) is not None
        and node.alive
        and node.serving(rollout.bundle).digest != rollout.digest
    ]
    if drifted:
        rollout.serving_since_s = rollout.next_analysis_s = None
        rollout.stage_started_s = now
        entry = engine.entry(rollout, AUTOMATIC, "rollout.cohort", stage=rollout.stage_name(),
                             off_version=drifted)  # fmt: skip
        engine.commit(rollout, [entry], lease=lease)
        return
    if rollout.next_analysis_s is not None and now < rollout.next_analysis_s:
        return
    _analyse(engine, rollout, fleet, now, lease)


def _await_cohort(
    engine: RolloutEngine, rollout: Rollout, fleet: Fleet, now: float, lease: Lease
) -> None:
    reachable = [fleet.get(n) for n in rollout.cohort]
    alive = [n for n in reachable if n is not None and n.alive]
    pending = [n for n in alive if n.serving(rollout.bundle).digest != rollout.digest]
    if alive and not pending:
        rollout.serving_since_s = now
        rollout.next_analysis_s = now + rollout.interval_s
        engine.commit(rollout, lease=lease)
        return
    if now - rollout.stage_started_s <= rollout.converge_timeout_s:
        return
    why = {
        n.name: n.serving(rollout.bundle).sync_error
        or f"still serving {n.serving(rollout.bundle).version}"
        for n in pending
    }
    if not alive:
        why = {"*": "no cohort node reachable"}
    first = next(iter(why.items()))
    reason = (
        f"stage {rollout.stage_name()}: {len(why)} node(s) did not serve "
        f"{rollout.version} within {rollout.converge_timeout_s:g} s ({first[0]}: {first[1]})"
    )
    engine.roll_back(rollout, AUTOMATIC, "failed", reason, {"not_converged": why}, lease=lease)


def _summary(rollout: Rollout, now: float, since: float, cohort: list[str], baseline: int,
             compared_with: str) -> dict[str, Any]:  # fmt: skip
    return {
        "at_s": now, "stage": rollout.stage_name(), "window_s": round(now - since, 3),
        "cohort_nodes": cohort[:_NAMED_NODES], "cohort_count": len(cohort),
        "baseline_nodes": baseline, "compared_with": compared_with,
    }  # fmt: skip


def _analyse(
    engine: RolloutEngine, rollout: Rollout, fleet: Fleet, now: float, lease: Lease
) -> None:
    since = max(now - rollout.interval_s, rollout.serving_since_s or now)
    cohort, baseline = cohorts(rollout, fleet)
    canary_stats = engine.source.stats(rollout, cohort, since, now)
    baseline_stats = engine.source.stats(rollout, baseline, since, now)
    request = rollout.request
    compared_with = "the baseline"
    if baseline_stats.requests < request.min_requests and rollout.baseline_stats:
        baseline_stats = CohortStats(**rollout.baseline_stats)
        compared_with = "the last baseline"
    analysis = analyse(
        canary_stats, baseline_stats, request.gates,
        min_requests=request.min_requests, p99_slack_s=request.p99_slack_s,
    )  # fmt: skip
    rollout.analyses += 1
    rollout.next_analysis_s = now + rollout.interval_s
    summary = analysis.to_dict() | _summary(
        rollout, now, since, [n.name for n in cohort], len(baseline), compared_with
    )
    rollout.last_analysis = summary
    if analysis.conclusive and compared_with == "the baseline":
        rollout.baseline_stats = baseline_stats.to_dict()
    alone = not baseline and not rollout.baseline_stats
    if alone and canary_stats.requests >= request.min_requests:
        verdict, failed = "pass (no baseline)", []
    elif not analysis.conclusive:
        rollout.inconclusive += 1
        entry = engine.entry(rollout, AUTOMATIC, "rollout.analysis", verdict="inconclusive",
                             analysis=summary)  # fmt: skip
        if rollout.inconclusive >= request.max_inconclusive:
            rollout.state = "paused"
            rollout.reason = (
                f"{rollout.inconclusive} analyses in a row had too few requests (fewer than "
                f"{request.min_requests} per cohort); promote, resume or abort"
            )
            pause = engine.entry(rollout, AUTOMATIC, "rollout.pause", reason=rollout.reason)
            engine.commit(rollout, [entry, pause], lease=lease)
        else:
            engine.commit(rollout, [entry], lease=lease)
        return
    else:
        failed = list(analysis.failed)
        verdict = "fail" if failed else "pass"
    rollout.inconclusive = 0
    for gate in request.gates:
        count = rollout.failures.get(gate.name, 0)
        rollout.failures[gate.name] = count + 1 if gate.name in failed else 0
    tripped = [g for g in failed if rollout.failures[g] >= request.threshold]
    entry = engine.entry(rollout, AUTOMATIC, "rollout.analysis", verdict=verdict,
                         analysis=summary)  # fmt: skip
    if tripped:
        texts = [r.text() for r in analysis.results if r.gate in tripped]
        reason = (
            f"gate {', '.join(tripped)} failed {request.threshold} analyses in a row at "
            f"stage {rollout.stage_name()}: {'; '.join(texts)}"
        )
        evidence = {"gates": tripped, "analysis": summary}
        engine.roll_back(rollout, AUTOMATIC, "failed", reason, evidence, lease=lease,
                         before=[entry])  # fmt: skip
        return
    if failed:
        rollout.passes = 0
        engine.commit(rollout, [entry], lease=lease)
        return
    rollout.passes += 1
    _advance(engine, rollout, fleet, now, entry, lease)


def _advance(
    engine: RolloutEngine, rollout: Rollout, fleet: Fleet, now: float, entry: AuditEntry,
    lease: Lease,
) -> None:  # fmt: skip
    if rollout.stage + 1 >= len(rollout.stages):
        engine.finish(rollout, "succeeded", None)
        done = engine.entry(rollout, AUTOMATIC, "rollout.succeeded", nodes=len(rollout.cohort))
        engine.commit(rollout, [entry, done], lease=lease)
        return
    request = rollout.request
    selected = fleet.selected(parse_selector(request.selector), rollout.bundle)
    engine.baselines(rollout, selected)  # nodes that joined since the start too
    rollout.stage += 1
    members = stage_members(
        rollout.stages[rollout.stage], selected, rollout.cohort,
        parse_selector(request.canary_selector),
    )  # fmt: skip
    added = sorted(set(members) - set(rollout.cohort))
    rollout.cohort = members
    rollout.stage_started_s = now
    rollout.serving_since_s = rollout.next_analysis_s = None
    rollout.passes = 0
    rollout.failures = {}
    stage = engine.entry(rollout, AUTOMATIC, "rollout.stage", stage=rollout.stage_name(),
                         added=added)  # fmt: skip
    engine.commit(rollout, [entry, stage], lease=lease,
                  desired=[(n, rollout.bundle, rollout.digest) for n in added])  # fmt: skip
