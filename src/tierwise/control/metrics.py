"""The control plane's own ``/metrics``: nodes by reachability, heartbeats taken, the
writer's queue, rollouts by state and whether this replica holds the rollout lease."""

from __future__ import annotations

from typing import TYPE_CHECKING

from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

if TYPE_CHECKING:
    from collections.abc import Iterator

    from tierwise.control.app import ControlApp

__all__ = ["exposition"]


class _Collector(Collector):
    def __init__(self, app: ControlApp) -> None:
        self.app = app

    def collect(self) -> Iterator[Metric]:
        app = self.app
        fleet = app.engine.fleet()
        nodes = GaugeMetricFamily(
            "tierwise_control_nodes", "Nodes known to the control plane.", labels=["state"]
        )
        alive = sum(1 for n in fleet.nodes.values() if n.alive)
        nodes.add_metric(["reachable"], alive)
        nodes.add_metric(["unreachable"], len(fleet.nodes) - alive)
        yield nodes
        beats = CounterMetricFamily(
            "tierwise_control_heartbeats", "Heartbeats stored by this replica."
        )
        beats.add_metric([], app.heartbeats)
        yield beats
        pending = GaugeMetricFamily(
            "tierwise_control_heartbeats_pending", "Heartbeats waiting to be written."
        )
        pending.add_metric([], app.writer.depth)
        yield pending
        rollouts = GaugeMetricFamily(
            "tierwise_control_rollouts", "Rollouts by state.", labels=["state"]
        )
        counts: dict[str, int] = {}
        for row in app.store.list_rollouts():
            counts[row.state] = counts.get(row.state, 0) + 1
        for state in ("running", "paused", "succeeded", "failed", "aborted"):
            rollouts.add_metric([state], counts.get(state, 0))
        yield rollouts
        leader = GaugeMetricFamily(
            "tierwise_control_leader", "1 while this replica steps the rollouts."
        )
        leader.add_metric([], 1 if app.leader else 0)
        yield leader


def exposition(app: ControlApp) -> bytes:
    """The metrics in Prometheus' text format."""
    registry = CollectorRegistry(auto_describe=False)
    registry.register(_Collector(app))
    return generate_latest(registry)
