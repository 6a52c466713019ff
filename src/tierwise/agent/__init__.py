"""The edge agent: one node's tier server, router front, outbox and registry sync, kept
on a verified version with instant rollback and a thermal guard."""

from tierwise.agent.control import ControlPlane
from tierwise.agent.http import AgentApp, AgentCollector
from tierwise.agent.install import Installer
from tierwise.agent.node import EdgeAgent, SyncResult
from tierwise.agent.run import build_agent_app, run_agent
from tierwise.agent.settings import (
    AgentSettings,
    ControlSettings,
    GatewayPart,
    RegistryPart,
    ServePart,
    ThermalSettings,
    load_agent_settings,
)
from tierwise.agent.state import Activation, AgentState
from tierwise.agent.thermal import ThermalGuard, ThermalReading, read_celsius
from tierwise.agent.tier import ServedTier

__all__ = [
    "Activation",
    "AgentApp",
    "AgentCollector",
    "AgentSettings",
    "AgentState",
    "ControlPlane",
    "ControlSettings",
    "EdgeAgent",
    "GatewayPart",
    "Installer",
    "RegistryPart",
    "ServePart",
    "ServedTier",
    "SyncResult",
    "ThermalGuard",
    "ThermalReading",
    "ThermalSettings",
    "build_agent_app",
    "load_agent_settings",
    "read_celsius",
    "run_agent",
]
