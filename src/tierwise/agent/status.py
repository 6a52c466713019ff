"""What ``GET /v2/agent/status`` answers: the node, and each bundle it syncs.

``bundles`` has an entry per bundle: the version serving, its digest and model
repository generation, the versions kept for rollback, the held ones, the desired
reference, each served model's readiness and the bundle's last sync. The top-level
``bundle``, ``version``, ``digest``, ``generation``, ``previous``, ``held`` and
``desired`` describe the node's bundle when it syncs one (the one-bundle form of
earlier releases), and are null with several: read ``bundles`` then. ``labels`` are the
node's own (agent.yaml and ``--label``); ``control`` says how the node's exchanges with its
control plane went: the last desired-state fetch and the last heartbeat.
"""

from __future__ import annotations

import contextlib
from pathlib import Path
from typing import TYPE_CHECKING, Any

from tierwise.agent.desired import DesiredState
from tierwise.agent.result import SyncResult
from tierwise.errors import ConfigError, TierwiseError

if TYPE_CHECKING:
    from tierwise.agent.activate import Activator
    from tierwise.agent.node import EdgeAgent

__all__ = ["node_status", "queue_depth", "serving_text"]


def _last_sync(agent: EdgeAgent, bundle: str) -> SyncResult | None:
    last = agent.last_sync
    if last is None:
        return None
    # a sync that failed before any bundle (an unreadable desired state) failed for each
    return last.bundles.get(bundle, last if not last.bundles else None)


def _bundle(agent: EdgeAgent, activator: Activator, desired: DesiredState | None) -> dict[str, Any]:
    state = activator.state
    active = state.active
    manager = agent.server.manager
    last = _last_sync(agent, activator.bundle)
    return {
        "version": active.version if active else None,
        "digest": active.digest if active else None,
        "generation": active.generation if active else None,
        "activated_s": active.activated_s if active else None,
        "previous": [a.version for a in state.previous],
        "held": sorted(state.held),
        "desired": desired.reference(activator.bundle) if desired else None,
        "ready": activator.serving(),
        "models": {m: manager.is_ready(m) for m in activator.installer.models},
        "last_sync": last.to_dict() if last else None,
    }


def queue_depth(agent: EdgeAgent) -> int:
    """Requests queued on the node's served models now."""
    manager = agent.server.manager
    depth = 0
    for model in agent.settings.models:
        with contextlib.suppress(TierwiseError):
            depth += manager.resolve(model).batcher.depth
    return depth


def serving_text(agent: EdgeAgent) -> str:
    """``bundle:version, ...`` of what the node serves, for its log lines."""
    serving = [
        f"{name}:{a.state.active.version}"
        for name, a in agent.activators.items()
        if a.state.active is not None
    ]
    return ", ".join(serving) or "nothing"


def _control(agent: EdgeAgent) -> dict[str, Any] | None:
    control, heartbeat = agent.control, agent.heartbeat
    if control is None:
        return None
    return {
        "url": control.url,
        "last_fetch_s": control.last_fetch_s,
        "error": control.last_error,
        "heartbeat_url": heartbeat.url if heartbeat else None,
        "heartbeat_s": heartbeat.interval_s if heartbeat else None,
        "last_heartbeat_s": heartbeat.last_heartbeat_s if heartbeat else None,
        "heartbeat_error": heartbeat.last_error if heartbeat else None,
    }


def node_status(agent: EdgeAgent) -> dict[str, Any]:
    """The node's status document."""
    desired: DesiredState | None = None
    unreadable: str | None = None
    try:
        desired = agent.desired_state()
    except ConfigError as exc:
        unreadable = f"unreadable: {exc}"
    bundles = {name: _bundle(agent, a, desired) for name, a in agent.activators.items()}
    one = next(iter(bundles.values())) if len(bundles) == 1 else None
    manager = agent.server.manager
    return {
        "node": agent.settings.node,
        "labels": dict(agent.settings.labels),
        "bundle": next(iter(bundles)) if one is not None else None,
        "version": one["version"] if one else None,
        "digest": one["digest"] if one else None,
        "generation": one["generation"] if one else None,
        "previous": one["previous"] if one else None,
        "held": one["held"] if one else None,
        "desired": unreadable or (one["desired"] if one else None),
        "bundles": bundles,
        "health": {"live": True, "ready": agent.serving()},
        "models": {m: manager.is_ready(m) for m in agent.settings.models},
        "temperature_c": agent.thermal.last_celsius,
        "thermal_throttled": agent.thermal.throttled,
        "queue_depth": agent.queue_depth(),
        "in_flight": agent.server.dataplane.in_flight,
        "last_sync": agent.last_sync.to_dict() if agent.last_sync else None,
        "control": _control(agent),
        "state_dir": str(Path(agent.settings.state_dir)),
    }
