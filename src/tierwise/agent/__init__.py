"""The edge agent: one node's tier server, router front, outbox and registry sync, kept
on verified versions with instant rollback and a thermal guard.

A node serves several models by syncing several bundles (``bundles:`` in agent.yaml), one
per model: a bundle's variants share one signature, so a detector and a classifier are
two bundles. Each has its own desired reference, kept versions, rollback and sync result;
one that fails to verify, load or warm up leaves the others serving. A node carries
labels, and with ``control.heartbeat_url`` reports its status and per-bundle counters to
a control plane, whose answers set what it runs (:mod:`tierwise.agent.heartbeat`)."""

from tierwise.agent.control import ControlPlane
from tierwise.agent.counters import heartbeat_document, node_counters
from tierwise.agent.desired import DesiredState, parse_desired
from tierwise.agent.heartbeat import Heartbeat, HeartbeatAnswer
from tierwise.agent.http import AgentApp, AgentCollector
from tierwise.agent.install import Installer
from tierwise.agent.node import EdgeAgent
from tierwise.agent.result import SyncResult
from tierwise.agent.run import build_agent_app, run_agent
from tierwise.agent.settings import (
    AgentSettings,
    BundlePart,
    ControlSettings,
    GatewayPart,
    RegistryPart,
    ServePart,
    ThermalSettings,
    load_agent_settings,
)
from tierwise.agent.state import Activation, AgentState, BundleState
from tierwise.agent.thermal import ThermalGuard, ThermalReading, read_celsius
from tierwise.agent.tier import ServedTier
from tierwise.spec.labels import check_labels

__all__ = [
    "Activation",
    "AgentApp",
    "AgentCollector",
    "AgentSettings",
    "AgentState",
    "BundlePart",
    "BundleState",
    "ControlPlane",
    "ControlSettings",
    "DesiredState",
    "EdgeAgent",
    "GatewayPart",
    "Heartbeat",
    "HeartbeatAnswer",
    "Installer",
    "RegistryPart",
    "ServePart",
    "ServedTier",
    "SyncResult",
    "ThermalGuard",
    "ThermalReading",
    "ThermalSettings",
    "build_agent_app",
    "check_labels",
    "heartbeat_document",
    "load_agent_settings",
    "node_counters",
    "parse_desired",
    "read_celsius",
    "run_agent",
]
