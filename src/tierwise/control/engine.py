"""Rollouts: started, steered by operators, stepped by the lease holder.

Every decision is one store transaction: the rollout's new state, the desired versions
it sets and its audit entry with the evidence (gate numbers, nodes, versions) commit
together, so a control plane killed at any moment restarts where it was. Each decision
names the rollout state it was based on; one made meanwhile by another request or
replica is never overwritten (the late decision is refused, and an operator's is tried
again on the fresh state). Only the replica holding the store's lease steps rollouts
(:mod:`tierwise.control.steps`); operators may act through any replica.
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
from tierwise.control.resolve import Resolver
from tierwise.control.rollout import Rollout, new_rollout_id, stage_members
from tierwise.control.selector import parse_selector
from tierwise.control.sources import GateSource
from tierwise.control.spec import CANARY, RolloutRequest
from tierwise.control.steps import AUTOMATIC, step
from tierwise.control.store import AuditEntry, Change, ControlStore, RolloutRow
from tierwise.errors import RolloutError, TierwiseError

__all__ = ["AUTOMATIC", "RolloutEngine"]

log = logging.getLogger("tierwise.control")

#: Times an operator's action is tried again when a decision was made meanwhile.
_RETRIES = 5


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
            missing = RolloutError(f"no rollout {rollout_id!r}")
            missing.status_code = 404
            raise missing
        return Rollout.from_doc(row.doc)

    def active(self) -> list[Rollout]:
        return [Rollout.from_doc(r.doc) for r in self.store.list_rollouts(active_only=True)]

    # -- writing ---------------------------------------------------------------------

    def entry(self, rollout: Rollout, actor: str, action: str, **detail: Any) -> AuditEntry:
        detail = {"bundle": rollout.bundle, "version": rollout.version, **detail}
        return AuditEntry(self.clock(), actor, action, rollout.id, detail)

    def commit(
        self,
        rollout: Rollout,
        audit: Sequence[AuditEntry] = (),
        desired: Sequence[tuple[str, str, str]] = (),
        cleared: Sequence[tuple[str, str]] = (),
        *,
        lease: tuple[str, float] | None = None,
        active_seen: Sequence[str] | None = None,
    ) -> None:
        """Write ``rollout`` as decided, based on the state it was read in (a new one:
        checked against the active rollouts of its bundle, ``active_seen``)."""
        based_on = None if active_seen is not None else rollout.updated_s
        updated_s = max(self.clock(), rollout.updated_s + 1e-6)
        doc = rollout.to_doc() | {"updated_s": updated_s}
        row = RolloutRow(rollout.id, rollout.bundle, rollout.state, doc, updated_s)
        self.store.apply(Change(
            rollout=row, desired=desired, cleared=cleared, audit=audit, based_on=based_on,
            active_seen=active_seen, lease=lease,
        ))  # fmt: skip
        rollout.updated_s = updated_s
        self.desired.apply(desired, cleared)
        for entry in audit:
            log.info("%s %s %s", entry.action, rollout.id, _brief(entry.detail))

    def _retried(self, rollout_id: str, act: Callable[[Rollout], None]) -> Rollout:
        """Run an operator's action on the rollout's latest state, again when another
        decision was committed in between."""
        for attempt in range(_RETRIES):
            rollout = self.get(rollout_id)
            try:
                act(rollout)
            except RolloutError:
                if attempt + 1 == _RETRIES or self.get(rollout_id).updated_s == rollout.updated_s:
                    raise
                continue
            return rollout
        raise RolloutError(f"rollout {rollout_id} kept changing; try again")  # unreachable

    # -- operator actions ------------------------------------------------------------

    def start(self, request: RolloutRequest, actor: str) -> Rollout:
        """Resolve and check the version, pick the first stage's nodes and move them; a
        RolloutError (or the registry's error) before any node moves otherwise."""
        resolved = self.resolver.resolve(request.bundle, request.ref)
        with self._lock:
            now = self.clock()
            fleet = self.fleet(now)
            selected = fleet.selected(parse_selector(request.selector), request.bundle)
            if not selected:
                raise RolloutError(
                    f"selector {request.selector or '(all nodes)'!r} matches no node that runs "
                    f"bundle {request.bundle} ({len(fleet.nodes)} node(s) known)"
                )
            active_seen = self._refuse_overlap(request, fleet, {n.name for n in selected})
            canary = parse_selector(request.canary_selector)
            if request.stages[0] == CANARY and not any(canary.matches(n.labels) for n in selected):
                raise RolloutError(
                    f"the canary stage needs canary nodes: none of the {len(selected)} selected "
                    f"node(s) matches {request.canary_selector!r}"
                )
            if all(
                n.serving(request.bundle).digest == resolved.digest
                and self.desired.of(n.name).get(request.bundle) in (None, resolved.digest)
                for n in selected
            ):  # the cohort would be compared with itself
                raise RolloutError(
                    f"every one of the {len(selected)} selected node(s) already runs "
                    f"{request.bundle}:{resolved.version} ({resolved.digest[:19]}): nothing "
                    "to roll out"
                )
            rollout = Rollout(
                new_rollout_id(request.bundle, now), request, resolved.version, resolved.digest,
                created_s=now, created_by=actor, stage_started_s=now,
            )  # fmt: skip
            self.baselines(rollout, selected)
            rollout.cohort = stage_members(request.stages[0], selected, [], canary)
            begin = self.entry(
                rollout, actor, "rollout.start", digest=resolved.digest, key_id=resolved.key_id,
                selector=request.selector, stages=[str(s) for s in request.stages],
                gates=[f"{g.name}={g.limit}" for g in request.gates],
                threshold=request.threshold, selected=len(selected), reason=request.reason,
                not_rolled_back_to_anything=_no_baseline(rollout),
            )  # fmt: skip
            stage = self.entry(rollout, actor, "rollout.stage", stage=rollout.stage_name(),
                               added=rollout.cohort)  # fmt: skip
            moved = [(n, request.bundle, resolved.digest) for n in rollout.cohort]
            self.commit(rollout, [begin, stage], moved, active_seen=active_seen)
            return rollout

    def baselines(self, rollout: Rollout, nodes: Sequence[NodeView]) -> None:
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
            if digest is not None and digest not in versions:
                versions[digest] = self._version_of(rollout.bundle, digest)
            version = versions.get(digest) if digest is not None else None
            rollout.baseline[node.name] = {"version": version, "digest": digest}

    def _version_of(self, bundle: str, digest: str) -> str | None:
        """The version a digest names in the registry (None when it cannot say)."""
        try:
            return self.resolver.resolve(bundle, digest).version
        except TierwiseError:
            return None

    def _refuse_overlap(self, request: RolloutRequest, fleet: Fleet, nodes: set[str]) -> list[str]:
        """The ids of the bundle's active rollouts, none of which covers ``nodes``."""
        seen = []
        for other in self.active():
            if other.bundle != request.bundle:
                continue
            seen.append(other.id)
            selector = parse_selector(other.request.selector)
            theirs = {n.name for n in fleet.selected(selector, other.bundle)}
            shared = sorted(nodes & (theirs | set(other.cohort)))
            if shared or other.request.selector == request.selector:
                raise RolloutError(
                    f"rollout {other.id} of {other.bundle} ({other.version}, {other.state}) "
                    f"already covers {', '.join(shared[:5]) or 'the same selector'}"
                    f"{' ...' if len(shared) > 5 else ''}; abort it or wait for it to finish"
                )
        return seen

    def set_desired(self, bundle: str, ref: str, selector: str, actor: str) -> dict[str, Any]:
        """Set ``bundle`` at ``ref`` (resolved and its signature checked) on the nodes
        ``selector`` picks, at once, with no stages or gates (a new fleet's first
        version); RolloutError when it picks none or a rollout is moving any of them."""
        resolved = self.resolver.resolve(bundle, ref)
        with self._lock:
            chosen = parse_selector(selector)
            nodes = [n.name for n in self.fleet().selected(chosen, bundle)]
            if not nodes:
                raise RolloutError(f"selector {selector or '(all nodes)'!r} matches no node "
                                   f"that runs bundle {bundle}")  # fmt: skip
            for rollout in self.active():
                busy = sorted((set(rollout.baseline) | set(rollout.cohort)) & set(nodes))
                if rollout.bundle == bundle and busy:
                    raise RolloutError(f"rollout {rollout.id} is moving {', '.join(busy[:5])}; "
                                       "abort it or wait for it to finish")  # fmt: skip
            done = {"bundle": bundle, "version": resolved.version, "digest": resolved.digest,
                    "selector": selector, "nodes": nodes}  # fmt: skip
            entry = AuditEntry(self.clock(), actor, "desired.set", None, done)
            desired = [(n, bundle, resolved.digest) for n in nodes]
            self.store.apply(Change(desired=desired, audit=[entry]))
            self.desired.apply(desired)
            return done

    def pause(self, rollout_id: str, actor: str) -> Rollout:
        def act(rollout: Rollout) -> None:
            self._check_active(rollout, "pause")
            if rollout.state == "paused":
                return
            rollout.state = "paused"
            rollout.paused_s = self.clock()
            self.commit(rollout, [self.entry(rollout, actor, "rollout.pause",
                                             stage=rollout.stage_name())])  # fmt: skip

        with self._lock:
            return self._retried(rollout_id, act)

    def resume(self, rollout_id: str, actor: str) -> Rollout:
        def act(rollout: Rollout) -> None:
            self._check_active(rollout, "resume")
            if rollout.state == "running":
                return
            now = self.clock()
            if rollout.serving_since_s is None and rollout.paused_s is not None:
                rollout.stage_started_s += now - rollout.paused_s  # paused time is not waiting
            if rollout.serving_since_s is not None:
                rollout.next_analysis_s = now + rollout.interval_s
            rollout.state, rollout.paused_s, rollout.reason = "running", None, None
            rollout.inconclusive = 0
            self.commit(rollout, [self.entry(rollout, actor, "rollout.resume",
                                             stage=rollout.stage_name())])  # fmt: skip

        with self._lock:
            return self._retried(rollout_id, act)

    def promote(self, rollout_id: str, actor: str) -> Rollout:
        """Move every selected node to the new version now, skipping what analysis is left."""

        def act(rollout: Rollout) -> None:
            self._check_active(rollout, "promote")
            fleet = self.fleet()
            selected = fleet.selected(parse_selector(rollout.request.selector), rollout.bundle)
            added = sorted({n.name for n in selected} - set(rollout.cohort))
            rollout.cohort = sorted({*rollout.cohort, *added})
            self.finish(rollout, "succeeded", None)
            entry = self.entry(rollout, actor, "rollout.promote", stage=rollout.stage_name(),
                               added=added)  # fmt: skip
            self.commit(rollout, [entry],
                        desired=[(n, rollout.bundle, rollout.digest) for n in added])  # fmt: skip

        with self._lock:
            return self._retried(rollout_id, act)

    def abort(self, rollout_id: str, actor: str, reason: str | None = None) -> Rollout:
        """Send every cohort node back to the version it ran, at once."""

        def act(rollout: Rollout) -> None:
            self._check_active(rollout, "abort")
            self.roll_back(rollout, actor, "aborted", reason or f"aborted by {actor}", {})

        with self._lock:
            return self._retried(rollout_id, act)

    @staticmethod
    def _check_active(rollout: Rollout, action: str) -> None:
        if not rollout.active:
            raise RolloutError(
                f"cannot {action} rollout {rollout.id}: it has {rollout.state}"
                + (f" ({rollout.reason})" if rollout.reason else "")
            )

    def finish(self, rollout: Rollout, state: str, reason: str | None) -> None:
        rollout.state = state
        rollout.reason = reason
        rollout.finished_s = self.clock()

    def roll_back(
        self, rollout: Rollout, actor: str, state: str, reason: str, evidence: dict[str, Any],
        *, lease: tuple[str, float] | None = None, before: Sequence[AuditEntry] = (),
    ) -> None:  # fmt: skip
        """Send every cohort node back, by digest, to the version it ran (a node that ran
        none is named in the audit: it keeps what it has), and mark the rollout
        ``state`` with ``reason`` (audited as ``rollout.abort`` when ``state`` is
        ``aborted``, else ``rollout.rollback``); ``before`` are entries of the same
        decision."""
        back = []
        targets: dict[str, str | None] = {}
        for node in rollout.cohort:
            was = rollout.baseline.get(node, {})
            targets[node] = was.get("version")
            if was.get("digest"):
                back.append((node, rollout.bundle, str(was["digest"])))
        self.finish(rollout, state, reason)
        action = "rollout.abort" if state == "aborted" else "rollout.rollback"
        entry = self.entry(
            rollout, actor, action, stage=rollout.stage_name(), reason=reason,
            nodes=targets, not_rolled_back=_no_baseline(rollout, rollout.cohort), **evidence,
        )  # fmt: skip
        self.commit(rollout, [*before, entry], desired=back, lease=lease)
        log.warning("rollout %s of %s:%s rolled back: %s", rollout.id, rollout.bundle,
                    rollout.version, reason)  # fmt: skip

    # -- stepping --------------------------------------------------------------------

    def tick(self, lease: tuple[str, float] | None = None) -> None:
        """One step of every running rollout (:func:`tierwise.control.steps.step`); call
        it every ``tick_s`` on the replica holding the lease, ``(holder, now_s)``, which
        each decision checks again as it commits."""
        running = [r for r in self.active() if r.state == "running"]
        if not running:
            return
        now = self.clock()
        fleet = self.fleet(now)
        for rollout in running:
            try:
                step(self, rollout, fleet, now, lease)
            except RolloutError as exc:  # another replica or request decided first
                log.info("rollout %s: %s; stepping it again next time", rollout.id, exc)
            except Exception:  # one rollout's failure never stops the others
                log.exception("stepping rollout %s failed; trying again", rollout.id)


def _no_baseline(rollout: Rollout, nodes: Sequence[str] | None = None) -> list[str]:
    """The nodes (of ``nodes``, default all) with no version to go back to."""
    names = rollout.baseline if nodes is None else nodes
    return sorted(n for n in names if not rollout.baseline.get(n, {}).get("digest"))


def _brief(detail: Any) -> str:
    if not isinstance(detail, dict):
        return ""
    keys = ("stage", "reason", "verdict", "added")
    return " ".join(f"{k}={detail[k]}" for k in keys if detail.get(k) not in (None, [], ""))
