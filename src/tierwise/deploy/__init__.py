"""Put a plan onto the engines a fleet already runs: Kubernetes and systemd.

:func:`render_k8s` renders a Kustomize tree (cloud tiers as KServe ``InferenceService``s
or under Flagger / Argo Rollouts with the rollout gates as PromQL, edge tiers as
``DaemonSet``s of ``tierwise agent`` for KubeEdge, OpenYurt or k3s, the gateway,
ConfigMaps, monitoring); :func:`render_systemd` a hardened unit and the node's files for
an edge box without Kubernetes. Both are pure: the same plan and settings give the same
bytes, and what they cannot express is refused with a PlanError or ConfigError naming it.
"""

from tierwise.deploy.agent_config import agent_document
from tierwise.deploy.k8s import render_k8s, write_tree
from tierwise.deploy.progressive import gate_query
from tierwise.deploy.settings import DEFAULT_IMAGE, SECRET_KEYS, DeploySettings
from tierwise.deploy.systemd import render_systemd

__all__ = [
    "DEFAULT_IMAGE",
    "SECRET_KEYS",
    "DeploySettings",
    "agent_document",
    "gate_query",
    "render_k8s",
    "render_systemd",
    "write_tree",
]
