"""Where a rollout's gates read their numbers: the agents' own heartbeat counters (the
default), or a real Prometheus that scrapes the same agents.

Both answer one question: the statistics of the rollout's cohort (its nodes serving the
new version) and of its baseline (the selected nodes still on the version they ran)
over one window. Unreachable nodes are in neither.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Protocol

from tierwise.control.cohort import CohortStats, cohort_stats
from tierwise.control.fleet import Fleet, NodeView
from tierwise.control.prom_source import PrometheusSource
from tierwise.control.rollout import Rollout
from tierwise.control.window import History

__all__ = ["GateSource", "HistorySource", "PrometheusGateSource", "cohorts"]


def cohorts(rollout: Rollout, fleet: Fleet) -> tuple[list[NodeView], list[NodeView]]:
    """The reachable cohort nodes serving the new version, and the reachable selected
    nodes outside the cohort serving another version (the baseline)."""
    bundle = rollout.bundle
    cohort: list[NodeView] = []
    for name in rollout.cohort:
        node = fleet.get(name)
        if node is not None and node.alive and node.serving(bundle).digest == rollout.digest:
            cohort.append(node)
    members = set(rollout.cohort)
    baseline: list[NodeView] = []
    for name in rollout.baseline:
        node = fleet.get(name)
        if node is None or not node.alive or name in members:
            continue
        digest = node.serving(bundle).digest
        if digest is not None and digest != rollout.digest:
            baseline.append(node)
    return cohort, baseline


class GateSource(Protocol):
    #: where the numbers come from: ``heartbeats`` or ``prometheus``
    kind: str

    def stats(
        self, rollout: Rollout, cohort: Sequence[NodeView], since_s: float, until_s: float
    ) -> CohortStats:
        """The statistics of ``cohort``'s serving versions of the rollout's bundle."""
        ...


class HistorySource:
    """Reads the counters the agents sent with their heartbeats."""

    kind = "heartbeats"

    def __init__(self, history: History, *, min_checks: int = 20) -> None:
        self.history = history
        self.min_checks = min_checks

    def stats(
        self, rollout: Rollout, cohort: Sequence[NodeView], since_s: float, until_s: float
    ) -> CohortStats:
        deltas = []
        for node in cohort:
            delta = self.history.delta(
                node.name,
                rollout.bundle,
                since_s=since_s,
                until_s=until_s,
                digest=node.serving(rollout.bundle).digest,
            )
            if delta is not None:
                deltas.append(delta)
        return cohort_stats(deltas, min_checks=self.min_checks)


class PrometheusGateSource:
    """Reads a Prometheus that scrapes the agents' tier servers and router fronts."""

    kind = "prometheus"

    def __init__(self, prometheus: PrometheusSource, *, min_checks: int = 20) -> None:
        self.prometheus = prometheus
        self.min_checks = min_checks

    def stats(
        self, rollout: Rollout, cohort: Sequence[NodeView], since_s: float, until_s: float
    ) -> CohortStats:
        instances: list[str] = []
        models: set[str] = set()
        for node in cohort:
            instances.extend(node.addresses())
            found = node.bundles().get(rollout.bundle, {}).get("models")
            if isinstance(found, dict):
                models.update(str(m) for m in found)
        if not instances or not models:
            return cohort_stats([], min_checks=self.min_checks)
        return self.prometheus.cohort_stats(
            instances,
            sorted(models),
            max(until_s - since_s, 1.0),
            at_s=until_s,
            min_checks=self.min_checks,
        )
