"""An edge box without Kubernetes: a hardened systemd unit and the node's files.

``tierwise deploy systemd PLAN --node NAME -o DIR`` writes ``tierwise-agent-NAME.service``,
the node's ``agent.yaml`` (:func:`~tierwise.deploy.agent_config.agent_document`) and the
``plan.yaml`` it routes by, to install under ``/etc/systemd/system`` and
``/etc/tierwise``. The agent runs as a dynamic user that owns nothing but its state
(``StateDirectory``, which is ``ReadWritePaths``) and cache; the rest of the system is
read-only to it, it gets no capabilities, no new privileges, no devices and only the
system calls of ordinary services. Its tokens come from ``/etc/tierwise/agent.env``
(``EnvironmentFile``; the variables of :data:`~tierwise.deploy.agent_config.ENV`), which
is yours to write and is never rendered.
"""

from __future__ import annotations

import re

from tierwise.deploy.agent_config import CONFIG_DIR, agent_document
from tierwise.deploy.common import dump_yaml
from tierwise.deploy.pods import cluster_plan
from tierwise.deploy.settings import DeploySettings
from tierwise.errors import ConfigError, PlanError
from tierwise.planfile.schema import Plan

__all__ = ["DEFAULT_EXECUTABLE", "ENV_FILE", "render_systemd", "unit_name"]

DEFAULT_EXECUTABLE = "/usr/local/bin/tierwise"
ENV_FILE = f"{CONFIG_DIR}/agent.env"
_NODE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,62}$")

_HARDENING = """\
DynamicUser=yes
StateDirectory=tierwise
StateDirectoryMode=0750
CacheDirectory=tierwise
ReadWritePaths={state_dir}
NoNewPrivileges=yes
ProtectSystem=strict
ProtectHome=yes
PrivateTmp=yes
PrivateDevices=yes
ProtectKernelTunables=yes
ProtectKernelModules=yes
ProtectKernelLogs=yes
ProtectControlGroups=yes
ProtectClock=yes
ProtectHostname=yes
ProtectProc=invisible
RestrictAddressFamilies=AF_INET AF_INET6 AF_UNIX
RestrictNamespaces=yes
RestrictRealtime=yes
RestrictSUIDSGID=yes
LockPersonality=yes
SystemCallArchitectures=native
SystemCallFilter=@system-service
CapabilityBoundingSet=
AmbientCapabilities=
UMask=0027
"""


def unit_name(node: str) -> str:
    """The unit's file name for ``node``; ConfigError for a name a unit cannot carry."""
    if not isinstance(node, str) or not _NODE.match(node):
        raise ConfigError(
            "node", "a node name of letters, digits, '.', '_' and '-' (at most 63)", node
        )
    return f"tierwise-agent-{node}.service"


def _tier_for(plan: Plan, tier: str | None) -> str:
    if tier is not None:
        return tier
    edges = sorted(n for n, t in plan.tiers.items() if t.kind == "edge")
    if len(edges) != 1:
        raise PlanError("tier", f"one of the plan's edge tiers {edges} (--tier)", None)
    return edges[0]


def render_systemd(
    plan: Plan,
    node: str,
    settings: DeploySettings | None = None,
    *,
    tier: str | None = None,
    executable: str = DEFAULT_EXECUTABLE,
) -> dict[str, str]:
    """The unit, ``agent.yaml`` and ``plan.yaml`` of ``node`` serving edge tier ``tier``
    (default: the plan's only edge tier), by file name."""
    settings = settings or DeploySettings()
    unit = unit_name(node)
    if not executable.startswith("/") or any(c.isspace() for c in executable):
        raise ConfigError("executable", "an absolute path without spaces", executable)
    name = _tier_for(plan, tier)
    doc = agent_document(plan, name, node, settings)
    text = f"""\
[Unit]
Description=tierwise edge agent of node {node} (tier {name})
Documentation=https://github.com/tierwise/tierwise#running-on-kubernetes
Wants=network-online.target
After=network-online.target

[Service]
Type=exec
ExecStart={executable} agent --config {CONFIG_DIR}/agent.yaml --log-json
EnvironmentFile=-{ENV_FILE}
Environment=HOME={settings.state_dir} XDG_CACHE_HOME=/var/cache/tierwise
Restart=on-failure
RestartSec=5s
TimeoutStopSec=30s
{_HARDENING.format(state_dir=settings.state_dir)}
[Install]
WantedBy=multi-user.target
"""
    return {
        unit: text,
        "agent.yaml": dump_yaml(doc),
        "plan.yaml": dump_yaml(cluster_plan(plan)),
    }
