"""Edge tiers as ``DaemonSet``s of ``tierwise agent``, one pod per edge node.

Nodes are picked per flavour: KubeEdge's edge nodes carry ``node-role.kubernetes.io/edge``
(and their taint is tolerated), OpenYurt's pool of the tier's site is
``apps.openyurt.io/nodepool: <site>``, plain k3s nodes carry :data:`SITE_LABEL` and
:data:`TIER_LABEL` put on them by whoever joins them. Each pod keeps the node's state in a
``hostPath`` (it survives restarts and upgrades), reads the node's thermal zone from the
host, and is probed on the agent's health endpoints; the plan's in-process models are
fetched as for the gateway (:func:`~tierwise.deploy.pods.model_fetchers`). The agent
settings are one ``ConfigMap`` per tier whose ``node:`` an init container replaces with
the Kubernetes node's name, so each node reports under its own name.
"""

from __future__ import annotations

from typing import Any

from tierwise.deploy.agent_config import CONFIG_DIR, ENV, agent_document, edge_ports, edge_tier
from tierwise.deploy.common import dns_name, dump_yaml, metadata, secret_env, selector_for
from tierwise.deploy.pods import (
    MODELS_DIR,
    health_probes,
    model_fetchers,
    plan_volume,
    pod_security,
    scratch_volume,
    security_context,
    tier_auth_env,
)
from tierwise.deploy.settings import DeploySettings
from tierwise.planfile.schema import Plan

__all__ = [
    "EDGE_ROLE",
    "KEYS_CONFIGMAP",
    "NODE_PLACEHOLDER",
    "SITE_LABEL",
    "TIER_LABEL",
    "edge_objects",
    "edge_tier_names",
]

SITE_LABEL = "tierwise.io/site"
TIER_LABEL = "tierwise.io/tier"
#: The ConfigMap holding ``bundle.pub``, the key bundles are verified with (yours to create).
KEYS_CONFIGMAP = "tierwise-keys"
NODE_PLACEHOLDER = "__NODE_NAME__"
#: KubeEdge's label (and taint) of its edge nodes.
EDGE_ROLE = "node-role.kubernetes.io/edge"
_RUN_DIR = "/run/tierwise"


def edge_tier_names(plan: Plan) -> list[str]:
    """The plan's edge tiers, sorted; PlanError for one a node cannot serve."""
    names = sorted(n for n, t in plan.tiers.items() if t.kind == "edge")
    for name in names:
        dns_name(f"tiers.{name}", name)
        edge_tier(plan, name)
    return names


def _placement(settings: DeploySettings, tier: str, site: str) -> dict[str, Any]:
    unreachable = [
        {"key": f"node.kubernetes.io/{t}", "operator": "Exists", "effect": "NoExecute"}
        for t in ("not-ready", "unreachable")
    ]
    if settings.edge == "kubeedge":
        return {
            "nodeSelector": {EDGE_ROLE: "", SITE_LABEL: site},
            "tolerations": [
                {"key": EDGE_ROLE, "operator": "Exists", "effect": "NoSchedule"},
                *unreachable,
            ],
        }  # fmt: skip
    if settings.edge == "openyurt":
        return {"nodeSelector": {"apps.openyurt.io/nodepool": site}, "tolerations": unreachable}
    return {"nodeSelector": {SITE_LABEL: site, TIER_LABEL: tier}, "tolerations": unreachable}


def _daemonset(plan: Plan, name: str, settings: DeploySettings) -> dict[str, Any]:
    port, gateway_port = edge_ports(plan)[name]
    site = dns_name(f"tiers.{name}.site", plan.tiers[name].site or "")
    config = f"{name}-agent"
    tmp, tmp_mount = scratch_volume()
    plan_vol, plan_mount = plan_volume()
    volumes = [
        tmp, plan_vol,
        {"name": "agent", "configMap": {"name": config}},
        {"name": "run", "emptyDir": {}},
        {"name": "keys", "configMap": {"name": KEYS_CONFIGMAP}},
        {"name": "state", "hostPath": {"path": settings.state_dir, "type": "DirectoryOrCreate"}},
        {"name": "thermal", "hostPath": {"path": settings.thermal_zone, "type": "Directory"}},
        {"name": "models", "emptyDir": {}},
    ]  # fmt: skip
    run_mount = {"name": "run", "mountPath": _RUN_DIR}
    init = {
        "name": "node-name",
        "image": settings.image,
        "command": ["/bin/sh", "-c"],
        "args": [
            f'sed "s/{NODE_PLACEHOLDER}/$NODE_NAME/" {CONFIG_DIR}/agent/agent.yaml'
            f" > {_RUN_DIR}/agent.yaml"
        ],
        "env": [{"name": "NODE_NAME", "valueFrom": {"fieldRef": {"fieldPath": "spec.nodeName"}}}],
        "securityContext": security_context(),
        "volumeMounts": [run_mount, {"name": "agent", "mountPath": f"{CONFIG_DIR}/agent"}],
    }
    agent = {
        "name": "agent",
        "image": settings.image,
        "args": ["agent", "--config", f"{_RUN_DIR}/agent.yaml", "--log-json"],
        "env": [
            secret_env(settings, ENV["control_token"], "control_token"),
            secret_env(settings, ENV["registry_password"], "registry_password", optional=True),
            *tier_auth_env(plan, settings),
        ],
        "ports": [
            {
                "containerPort": port,
                "hostPort": port,
                "name": "http",
                "protocol": "TCP",
            },
            {
                "containerPort": gateway_port,
                "hostPort": gateway_port,
                "name": "gateway",
                "protocol": "TCP",
            },
        ],
        "resources": {"requests": {"cpu": "250m", "memory": "256Mi"}},
        "securityContext": security_context(),
        "volumeMounts": [
            tmp_mount,
            plan_mount,
            run_mount,
            {"name": "keys", "mountPath": f"{CONFIG_DIR}/keys", "readOnly": True},
            {"name": "state", "mountPath": settings.state_dir},
            {"name": "thermal", "mountPath": settings.thermal_zone, "readOnly": True},
            {"name": "models", "mountPath": MODELS_DIR},
        ],
        **health_probes(port),
    }
    labels = selector_for(name)
    return {
        "apiVersion": "apps/v1",
        "kind": "DaemonSet",
        "metadata": metadata(name, "edge-agent"),
        "spec": {
            "selector": {"matchLabels": labels},
            "updateStrategy": {"type": "RollingUpdate", "rollingUpdate": {"maxUnavailable": 1}},
            "template": {
                "metadata": {"labels": metadata(name, "edge-agent")["labels"]},
                "spec": {
                    **_placement(settings, name, site),
                    "automountServiceAccountToken": False,
                    "initContainers": [init, *model_fetchers(plan, settings)],
                    "containers": [agent],
                    "securityContext": pod_security(),
                    "volumes": volumes,
                },
            },
        },
    }


def edge_objects(plan: Plan, settings: DeploySettings) -> list[dict[str, Any]]:
    """Per edge tier: its agent settings' ConfigMap and its DaemonSet."""
    out: list[dict[str, Any]] = []
    for name in edge_tier_names(plan):
        doc = agent_document(plan, name, NODE_PLACEHOLDER, settings)
        out.append({
            "apiVersion": "v1",
            "kind": "ConfigMap",
            "metadata": metadata(f"{name}-agent", "edge-agent", name),
            "data": {"agent.yaml": dump_yaml(doc)},
        })  # fmt: skip
        out.append(_daemonset(plan, name, settings))
    return out
