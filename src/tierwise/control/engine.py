"""Rollouts, stepped: each stage's cohort is told the new version, the stage waits until
every reachable cohort node serves it, then is analysed once per interval against the
baseline over the interval just past; a passing analysis moves to the next stage, a gate
that fails ``threshold`` analyses in a row (or a cohort that never converges) rolls the
cohort back to the versions it ran, by digest, from the nodes' own stores.

Every decision is one store transaction: the rollout's new state, the desired versions
it sets and its audit entry with the evidence (gate numbers, nodes, versions) commit
together, so a control plane killed at any moment restarts where it was. Only the
replica holding the store's lease steps rollouts; operators may act through any replica.
"""

from __future__ import annotations

import logging
import threading
import time
from collections import Counter
from collections.abc import Callable, Sequence
from typing import Any

from tierwise.control.desired import DesiredBook
from tierwise.control.fleet import Fleet, NodeView
from tierwise.control.gates import analyse
from tierwise.control.resolve import Resolver
from tierwise.control.rollout import Rollout, new_rollout_id, stage_members
from tierwise.control.selector import parse_selector
from tierwise.control.sources import GateSource, cohorts
from tierwise.control.spec import CANARY, RolloutRequest
from tierwise.control.store import AuditEntry, Change, ControlStore, RolloutRow
from tierwise.control.window import CohortStats
from tierwise.errors import RolloutError, TierwiseError

__all__ = ["AUTOMATIC", "RolloutEngine"]

log = logging.getLogger("tierwise.control")

#: The actor named in the audit log for the control plane's own decisions.
AUTOMATIC = "control"


class RolloutEngine:
    """Starts, steps and steers rollouts (thread-safe: one lock around every decision)."""

    def __init__(
        self,
        store: ControlStore,
        *,
        resolver: Resolver,
        source: GateSource,
        desired: DesiredBook,
        stale_s: float,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.store = store
        self.resolver = resolver
        self.source = source
        self.desired = desired
        self.stale_s = stale_s
        self.clock = clock
        self._lock = threading.RLock()

    # -- reading ---------------------------------------------------------------------

    def fleet(self, now_s: float | None = None) -> Fleet:
        now = self.clock() if now_s is None else now_s
        return Fleet(self.store.list_nodes(), now_s=now, stale_s=self.stale_s)

    def get(self, rollout_id: str) -> Rollout:
        row = self.store.get_rollout(rollout_id)
        if row is None:
            raise RolloutError(f"no rollout {rollout_id!r}")
        return Rollout.from_doc(row.doc)

    def active(self) -> list[Rollout]:
        return [Rollout.from_doc(r.doc) for r in self.store.list_rollouts(active_only=True)]

    # -- writing ---------------------------------------------------------------------

    def _entry(self, rollout: Rollout, actor: str, action: str, **detail: Any) -> AuditEntry:
        detail = {"bundle": rollout.bundle, "version": rollout.version, **detail}
        return AuditEntry(self.clock(), actor, action, rollout.id, detail)

    def _commit(
        self,
        rollout: Rollout,
        audit: Sequence[AuditEntry] = (),
        desired: Sequence[tuple[str, str, str]] = (),
        cleared: Sequence[tuple[str, str]] = (),
    ) -> None:
        rollout.updated_s = self.clock()
        row = RolloutRow(
            rollout.id, rollout.bundle, rollout.state, rollout.to_doc(), rollout.updated_s
        )
        self.store.apply(Change(rollout=row, desired=desired, cleared=cleared, audit=audit))
        self.desired.apply(desired, cleared)
        for entry in audit:
            log.info("%s %s %s", entry.action, rollout.id, _brief(entry.detail))

    # -- operator actions ------------------------------------------------------------

    def start(self, request: RolloutRequest, actor: str) -> Rollout:
        """Resolve and check the version, pick the first stage's nodes and move them; a
        RolloutError (or the registry's error) before any node moves otherwise."""
        resolved = self.resolver.resolve(request.bundle, request.ref)
        with self._lock:
            now = self.clock()
            fleet = self.fleet(now)
            selector = parse_selector(request.selector)
            selected = fleet.selected(selector, request.bundle)
            if not selected:
                raise RolloutError(
                    f"selector {request.selector or '(all nodes)'!r} matches no node that runs "
                    f"bundle {request.bundle} ({len(fleet.nodes)} node(s) known)"
                )
            self._refuse_overlap(request, fleet, {n.name for n in selected})
            canary = parse_selector(request.canary_selector)
            if request.stages[0] == CANARY and not any(canary.matches(n.labels) for n in selected):
                raise RolloutError(
                    f"the canary stage needs canary nodes: none of the {len(selected)} selected "
                    f"node(s) matches {request.canary_selector!r}"
                )
            rollout = Rollout(
                new_rollout_id(request.bundle, now),
                request,
                resolved.version,
                resolved.digest,
                created_s=now,
                created_by=actor,
                stage_started_s=now,
            )
            self._baselines(rollout, selected)
            rollout.cohort = stage_members(request.stages[0], selected, [], canary)
            self._commit(
                rollout,
                [
                    self._entry(
                        rollout,
                        actor,
                        "rollout.start",
                        digest=resolved.digest,
                        key_id=resolved.key_id,
                        selector=request.selector,
                        stages=[str(s) for s in request.stages],
                        gates=[f"{g.name}={g.limit}" for g in request.gates],
                        threshold=request.threshold,
                        selected=len(selected),
                        reason=request.reason,
                    ),
                    self._entry(
                        rollout,
                        actor,
                        "rollout.stage",
                        stage=rollout.stage_name(),
                        added=rollout.cohort,
                    ),
                ],
                desired=[(n, request.bundle, resolved.digest) for n in rollout.cohort],
            )
            return rollout

    def _baselines(self, rollout: Rollout, nodes: Sequence[NodeView]) -> None:
        """Record what each of ``nodes`` goes back to on a rollback: the version the
        control plane last told it to run (its heartbeat may still show the one before);
        without one, the version it serves; for a node that has said neither, the one
        most of the selected nodes serve."""
        versions: dict[str, str | None] = {}
        tally: Counter[str] = Counter()
        for node in nodes:
            serving = node.serving(rollout.bundle)
            if serving.digest is not None and serving.digest != rollout.digest:
                versions[serving.digest] = serving.version
                tally[serving.digest] += 1
        common = tally.most_common(1)[0][0] if tally else None
        for node in nodes:
            if node.name in rollout.baseline:
                continue
            serving = node.serving(rollout.bundle)
            told = self.desired.of(node.name).get(rollout.bundle)
            if told is not None and told != rollout.digest:
                digest: str | None = told
            elif serving.digest is not None and serving.digest != rollout.digest:
                digest = serving.digest
            else:
                digest = common
            version = versions.get(digest) if digest is not None else None
            if version is None and digest is not None:
                version = self._version_of(rollout.bundle, digest)
            rollout.baseline[node.name] = {"version": version, "digest": digest}

    def _version_of(self, bundle: str, digest: str) -> str | None:
        """The version a digest names in the registry (None when it cannot say)."""
        try:
            return self.resolver.resolve(bundle, digest).version
        except TierwiseError:
            return None

    def _refuse_overlap(self, request: RolloutRequest, fleet: Fleet, nodes: set[str]) -> None:
        for other in self.active():
            if other.bundle != request.bundle:
                continue
            theirs = {
                n.name for n in fleet.selected(parse_selector(other.request.selector), other.bundle)
            }
            shared = sorted(nodes & (theirs | set(other.cohort)))
            if shared or other.request.selector == request.selector:
                raise RolloutError(
                    f"rollout {other.id} of {other.bundle} ({other.version}, {other.state}) "
                    f"already covers {', '.join(shared[:5]) or 'the same selector'}"
                    f"{' ...' if len(shared) > 5 else ''}; abort it or wait for it to finish"
                )

    def pause(self, rollout_id: str, actor: str) -> Rollout:
        with self._lock:
            rollout = self._active(rollout_id, "pause")
            if rollout.state == "paused":
                return rollout
            rollout.state = "paused"
            self._commit(
                rollout, [self._entry(rollout, actor, "rollout.pause", stage=rollout.stage_name())]
            )
            return rollout

    def resume(self, rollout_id: str, actor: str) -> Rollout:
        with self._lock:
            rollout = self._active(rollout_id, "resume")
            if rollout.state == "running":
                return rollout
            rollout.state = "running"
            if rollout.serving_since_s is not None:
                rollout.next_analysis_s = self.clock() + rollout.interval_s
            self._commit(
                rollout, [self._entry(rollout, actor, "rollout.resume", stage=rollout.stage_name())]
            )
            return rollout

    def promote(self, rollout_id: str, actor: str) -> Rollout:
        """Move every selected node to the new version now, skipping what analysis is left."""
        with self._lock:
            rollout = self._active(rollout_id, "promote")
            fleet = self.fleet()
            selected = fleet.selected(parse_selector(rollout.request.selector), rollout.bundle)
            added = sorted({n.name for n in selected} - set(rollout.cohort))
            rollout.cohort = sorted({*rollout.cohort, *added})
            self._finish(rollout, "succeeded", None)
            self._commit(
                rollout,
                [
                    self._entry(
                        rollout, actor, "rollout.promote", stage=rollout.stage_name(), added=added
                    )
                ],
                desired=[(n, rollout.bundle, rollout.digest) for n in added],
            )
            return rollout

    def abort(self, rollout_id: str, actor: str, reason: str | None = None) -> Rollout:
        """Send every cohort node back to the version it ran, at once."""
        with self._lock:
            rollout = self._active(rollout_id, "abort")
            self._roll_back(rollout, actor, "aborted", reason or f"aborted by {actor}", evidence={})
            return rollout

    def _active(self, rollout_id: str, action: str) -> Rollout:
        rollout = self.get(rollout_id)
        if not rollout.active:
            raise RolloutError(
                f"cannot {action} rollout {rollout_id}: it has {rollout.state}"
                + (f" ({rollout.reason})" if rollout.reason else "")
            )
        return rollout

    def _finish(self, rollout: Rollout, state: str, reason: str | None) -> None:
        rollout.state = state
        rollout.reason = reason
        rollout.finished_s = self.clock()

    def _roll_back(
        self, rollout: Rollout, actor: str, state: str, reason: str, evidence: dict[str, Any]
    ) -> None:
        back: list[tuple[str, str, str]] = []
        cleared: list[tuple[str, str]] = []
        targets: dict[str, str | None] = {}
        for node in rollout.cohort:
            before = rollout.baseline.get(node, {})
            digest = before.get("digest")
            targets[node] = before.get("version")
            if digest:
                back.append((node, rollout.bundle, digest))
            else:
                cleared.append((node, rollout.bundle))
        self._finish(rollout, state, reason)
        entry = self._entry(
            rollout,
            actor,
            "rollout.rollback",
            stage=rollout.stage_name(),
            reason=reason,
            nodes=targets,
            **evidence,
        )
        self._commit(rollout, [entry], desired=back, cleared=cleared)
        log.warning(
            "rollout %s of %s:%s rolled back: %s",
            rollout.id,
            rollout.bundle,
            rollout.version,
            reason,
        )

    # -- stepping --------------------------------------------------------------------

    def tick(self) -> None:
        """One step of every running rollout (call every ``tick_s`` on the lease holder)."""
        with self._lock:
            running = [r for r in self.active() if r.state == "running"]
            if not running:
                return
            now = self.clock()
            fleet = self.fleet(now)
            for rollout in running:
                try:
                    self._step(rollout, fleet, now)
                except Exception:  # one rollout's failure never stops the others
                    log.exception("stepping rollout %s failed; trying again", rollout.id)

    def _step(self, rollout: Rollout, fleet: Fleet, now: float) -> None:
        if rollout.serving_since_s is None:
            self._await_cohort(rollout, fleet, now)
            return
        if rollout.next_analysis_s is not None and now < rollout.next_analysis_s:
            return
        self._analyse(rollout, fleet, now)

    def _await_cohort(self, rollout: Rollout, fleet: Fleet, now: float) -> None:
        reachable = [fleet.get(n) for n in rollout.cohort]
        alive = [n for n in reachable if n is not None and n.alive]
        pending = [n for n in alive if n.serving(rollout.bundle).digest != rollout.digest]
        if alive and not pending:
            rollout.serving_since_s = now
            rollout.next_analysis_s = now + rollout.interval_s
            self._commit(rollout)
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
        self._roll_back(rollout, AUTOMATIC, "failed", reason, {"not_converged": why})

    def _analyse(self, rollout: Rollout, fleet: Fleet, now: float) -> None:
        assert rollout.serving_since_s is not None  # _step checked; internal invariant
        since = max(now - rollout.interval_s, rollout.serving_since_s)
        cohort, baseline = cohorts(rollout, fleet)
        canary_stats = self.source.stats(rollout, cohort, since, now)
        baseline_stats = self.source.stats(rollout, baseline, since, now)
        request = rollout.request
        if baseline_stats.requests < request.min_requests and rollout.baseline_stats:
            baseline_stats = CohortStats(**rollout.baseline_stats)  # the last baseline seen
            compared_with = "the last baseline"
        else:
            compared_with = "the baseline"
        analysis = analyse(
            canary_stats,
            baseline_stats,
            request.gates,
            min_requests=request.min_requests,
            p99_slack_s=request.p99_slack_s,
        )
        rollout.analyses += 1
        rollout.next_analysis_s = now + rollout.interval_s
        summary = analysis.to_dict() | {
            "at_s": now,
            "stage": rollout.stage_name(),
            "window_s": round(now - since, 3),
            "cohort_nodes": [n.name for n in cohort],
            "baseline_nodes": len(baseline),
            "compared_with": compared_with,
        }
        rollout.last_analysis = summary
        no_baseline = baseline_stats.requests == 0 and not rollout.baseline_stats
        if analysis.conclusive and compared_with == "the baseline":
            rollout.baseline_stats = baseline_stats.to_dict()
        if not analysis.conclusive and not (no_baseline and canary_stats.requests > 0):
            self._commit(
                rollout,
                [
                    self._entry(
                        rollout,
                        AUTOMATIC,
                        "rollout.analysis",
                        verdict="inconclusive",
                        analysis=summary,
                    )
                ],
            )
            return
        failed = [] if no_baseline else list(analysis.failed)
        for gate in request.gates:
            rollout.failures[gate.name] = (
                rollout.failures.get(gate.name, 0) + 1 if gate.name in failed else 0
            )
        tripped = [g for g in failed if rollout.failures[g] >= request.threshold]
        verdict = "fail" if failed else "pass"
        entry = self._entry(
            rollout, AUTOMATIC, "rollout.analysis", verdict=verdict, analysis=summary
        )
        if tripped:
            texts = [r.text() for r in analysis.results if r.gate in tripped]
            reason = (
                f"gate {', '.join(tripped)} failed {request.threshold} analyses in a row at "
                f"stage {rollout.stage_name()}: {'; '.join(texts)}"
            )
            self._commit(rollout, [entry])
            self._roll_back(
                rollout, AUTOMATIC, "failed", reason, {"gates": tripped, "analysis": summary}
            )
            return
        if failed:
            rollout.passes = 0
            self._commit(rollout, [entry])
            return
        rollout.passes += 1
        self._advance(rollout, fleet, now, entry)

    def _advance(self, rollout: Rollout, fleet: Fleet, now: float, entry: AuditEntry) -> None:
        if rollout.stage + 1 >= len(rollout.stages):
            self._finish(rollout, "succeeded", None)
            done = self._entry(rollout, AUTOMATIC, "rollout.succeeded", nodes=len(rollout.cohort))
            self._commit(rollout, [entry, done])
            return
        request = rollout.request
        selected = fleet.selected(parse_selector(request.selector), rollout.bundle)
        self._baselines(rollout, selected)  # nodes that joined since the start too
        rollout.stage += 1
        members = stage_members(
            rollout.stages[rollout.stage],
            selected,
            rollout.cohort,
            parse_selector(request.canary_selector),
        )
        added = sorted(set(members) - set(rollout.cohort))
        rollout.cohort = members
        rollout.stage_started_s = now
        rollout.serving_since_s = None
        rollout.next_analysis_s = None
        rollout.passes = 0
        rollout.failures = {}
        stage = self._entry(
            rollout, AUTOMATIC, "rollout.stage", stage=rollout.stage_name(), added=added
        )
        self._commit(
            rollout, [entry, stage], desired=[(n, rollout.bundle, rollout.digest) for n in added]
        )


def _brief(detail: Any) -> str:
    if not isinstance(detail, dict):
        return ""
    keys = ("stage", "reason", "verdict", "added")
    return " ".join(f"{k}={detail[k]}" for k in keys if detail.get(k) not in (None, [], ""))
