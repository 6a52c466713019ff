"""What a node counted for each bundle since its process started, and the heartbeat
document that carries it (:mod:`tierwise.agent.heartbeat`).

A control plane compares nodes (a canary against the stable ones) by the differences of
these cumulative counters between two heartbeats; ``started_s`` changes when the agent
restarts, which tells it that the counters started again from 0. Per bundle:

- ``requests``, ``errors``: requests the node's tier server answered for the bundle's
  served models, every version; an error is any outcome but ``success``;
- ``latency_bounds_s``, ``latency_counts``: the server's request-duration histogram of
  those models, summed over models and versions; the counts are cumulative, one per
  bound and a last one for every observation;
- ``energy_j``, ``inferences``: the energy the server charged to those models (measured
  and estimated) and the rows they computed; both 0 without energy accounting;
- ``agree``, ``disagree``: the router front's re-evaluations of the answers of the tiers
  these models answer for (:mod:`tierwise.router.shadow`);
- ``routed``, ``fallbacks``: requests through the router front of the workloads whose
  cascade asks one of those tiers, and the fallbacks counted for them
  (:mod:`tierwise.router.metrics`); all four are 0 without a router front.

Everything is read from the in-process counters (a few dictionaries), on the event
loop's thread where they are kept.
"""

from __future__ import annotations

import ipaddress
import socket
import time
from collections.abc import Collection, Mapping
from typing import TYPE_CHECKING, Any

from tierwise.agent.tier import ServedTier
from tierwise.telemetry.families import LATENCY_BUCKETS_S

if TYPE_CHECKING:
    from tierwise.agent.activate import Activator
    from tierwise.agent.node import EdgeAgent
    from tierwise.router.router import Router
    from tierwise.server.metrics import ServerMetrics, VersionMetrics

__all__ = ["advertised_address", "bundle_counters", "heartbeat_document", "node_counters"]


def advertised_address(host: str, port: int, *, tls: bool) -> str:
    """``scheme://host:port`` a control plane can reach a server bound to ``host`` at: this
    machine's name for a wildcard address, brackets around an IPv6 one."""
    scheme = "https" if tls else "http"
    try:
        address = ipaddress.ip_address(host.strip("[]"))
    except ValueError:
        return f"{scheme}://{host}:{port}"
    if address.is_unspecified:
        return f"{scheme}://{socket.gethostname()}:{port}"
    shown = f"[{address}]" if address.version == 6 else str(address)
    return f"{scheme}://{shown}:{port}"


def _version_series(metrics: ServerMetrics) -> Mapping[tuple[str, str], VersionMetrics]:
    """Every (model, version) series the server counted, swapped-out versions included."""
    return metrics._versions


def _router_counts(router: Router | None, models: Collection[str]) -> dict[str, int]:
    counts = {"agree": 0, "disagree": 0, "routed": 0, "fallbacks": 0}
    if router is None:
        return counts
    tiers = {
        name
        for name, tier in router.tiers.items()
        if isinstance(tier, ServedTier) and tier.model in models
    }
    if not tiers:
        return counts
    for workload, stages in router.stages.items():
        series = router.metrics.workloads.get(workload)
        if series is None or tiers.isdisjoint(stages):
            continue
        counts["routed"] += int(sum(t.value for t in series.requests.values()))
        counts["fallbacks"] += int(sum(t.value for t in series.fallbacks.values()))
    if router.shadow is not None:
        for (_, tier, _, result), count in router.shadow.checks.items():
            if tier in tiers and result in ("agree", "disagree"):
                counts[result] += count
    return counts


def bundle_counters(
    agent: EdgeAgent,
    activator: Activator,
    series: Mapping[tuple[str, str], VersionMetrics] | None = None,
) -> dict[str, Any]:
    """The counters of one bundle (see the module docstring); ``series`` is the server's
    per-version series (read from the agent's server when None)."""
    metrics = agent.server.metrics
    if series is None:
        series = _version_series(metrics)
    models = set(activator.part.models)
    requests = errors = 0
    rows = 0.0
    counts = [0] * (len(LATENCY_BUCKETS_S) + 1)
    for (model, _), version in series.items():
        if model not in models:
            continue
        for outcome, tally in version.requests.items():
            requests += int(tally.value)
            if outcome != "success":
                errors += int(tally.value)
        for i, count in enumerate(version.request_s.counts):
            counts[i] += count
        rows += version.batch_size.total
    running, cumulative = 0, []
    for count in counts:
        running += count
        cumulative.append(running)
    energy_j, inferences = 0.0, 0
    meter = metrics.energy
    if meter is not None and meter.source is not None:
        entries = [meter.models[m] for m in models if m in meter.models]
        energy_j = sum(e.measured_j + e.estimated_j for e in entries)
        inferences = int(rows)
    active = activator.state.active
    return {
        "started_s": agent.started_s,
        "digest": active.digest if active is not None else None,
        "requests": requests,
        "errors": errors,
        "latency_bounds_s": list(LATENCY_BUCKETS_S),
        "latency_counts": cumulative,
        "energy_j": energy_j,
        "inferences": inferences,
        **_router_counts(agent.router, models),
    }


def node_counters(agent: EdgeAgent) -> dict[str, dict[str, Any]]:
    """The counters of every bundle the node syncs, by bundle name."""
    metrics = agent.server.metrics
    if metrics.energy is not None:
        metrics.energy.settle()  # charge the estimate's open window, as a scrape does
    series = _version_series(metrics)
    return {name: bundle_counters(agent, a, series) for name, a in agent.activators.items()}


def heartbeat_document(agent: EdgeAgent) -> dict[str, Any]:
    """What one heartbeat says: the node, its labels, where it serves, its status and
    its counters."""
    return {
        "node": agent.settings.node,
        "labels": dict(agent.settings.labels),
        "sent_s": time.time(),
        "address": agent.address,
        "gateway_address": agent.gateway_address,
        "status": agent.status(),
        "counters": node_counters(agent),
    }
