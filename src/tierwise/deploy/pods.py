"""Containers and pod specs every tierwise workload shares.

Each container runs the one image (``Containerfile``) as a non-root user on a read-only
root filesystem: ``/tmp`` (also ``HOME`` and the caches) is an ``emptyDir``, tokens come
from the settings' ``Secret`` as a mounted file (:data:`TOKENS_FILE`), the plan from its
``ConfigMap``. Resources come from the fleet spec's hardware of the tier when one is
given: its cores and memory as requests, and one ``nvidia.com/gpu`` when its accelerator
is an NVIDIA one. The plan the pods read is :func:`cluster_plan`, its in-process models
fetched by :func:`model_fetchers`.
"""

from __future__ import annotations

from pathlib import PurePosixPath
from typing import Any

from tierwise.deploy.common import secret_env
from tierwise.deploy.settings import SCRATCH_DIR, SECRET_KEYS, DeploySettings
from tierwise.errors import PlanError
from tierwise.planfile.schema import Plan
from tierwise.spec.tiers import AnyTier

__all__ = [
    "MODELS_DIR",
    "PLAN_CONFIGMAP",
    "TOKENS_FILE",
    "cluster_plan",
    "health_probes",
    "model_fetchers",
    "plan_volume",
    "pod_security",
    "resources_of",
    "scratch_volume",
    "security_context",
    "tier_auth_env",
    "tokens_volume",
]

PLAN_CONFIGMAP = "tierwise-plan"
TOKENS_DIR = "/etc/tierwise/tokens"
#: The token hash lines (``tierwise keys token``) servers and gateways accept.
TOKENS_FILE = f"{TOKENS_DIR}/{SECRET_KEYS['tokens']}"
_MEBI = 1024
MODELS_DIR = "/var/lib/tierwise/models"


def _model_path(tier: str, model: str) -> str:
    return str(PurePosixPath(MODELS_DIR, tier, PurePosixPath(model).name))


def cluster_plan(plan: Plan) -> dict[str, Any]:
    """The plan as pods and edge boxes read it: the fleet spec's facts already merged in
    (``spec:`` and ``made_from`` dropped), each in-process model at
    ``MODELS_DIR/<tier>/<file>`` (see :func:`model_fetchers`). PlanError for a tier
    with ``tls`` files, which are paths on this machine."""
    doc = plan.model_dump(
        mode="json", exclude_none=True, exclude={"spec", "made_from"},
    )  # fmt: skip
    for name, tier in doc["tiers"].items():
        tier.pop("name", None)
        if "local" in tier:
            tier["local"]["model"] = _model_path(name, tier["local"]["model"])
        if "tls" in tier:
            raise PlanError(
                f"tiers.{name}.tls",
                "no tls files in a plan rendered for a cluster or a box (https tiers are "
                "checked against the system's trust store there; mount CA and client "
                "certificates yourself and add tls: to the rendered plan)",
                sorted(tier["tls"]),
            )
    for workload in doc["workloads"].values():
        workload.pop("name", None)
    return doc


def model_fetchers(plan: Plan, settings: DeploySettings) -> list[dict[str, Any]]:
    """One init container per in-process tier, fetching its model into ``MODELS_DIR``."""
    out = []
    for name in sorted(plan.tiers):
        local = plan.tiers[name].local
        if local is None:
            continue
        stem = PurePosixPath(local.model).stem
        uri = settings.storage_uri.replace("{tier}", name).replace("{model}", stem)
        out.append({
            "name": f"fetch-{name}"[:63],
            "image": settings.storage_initializer_image,
            "args": [uri, f"{MODELS_DIR}/{name}"],
            "securityContext": security_context(),
            "volumeMounts": [{"name": "models", "mountPath": MODELS_DIR}],
        })  # fmt: skip
    return out


def tier_auth_env(plan: Plan, settings: DeploySettings) -> list[dict[str, Any]]:
    """The ``auth_header_env`` variables of the plan's tiers, each from the key of its
    name in the settings' Secret (see :func:`~tierwise.deploy.common.secret_env`)."""
    names = sorted({t.auth_header_env for t in plan.tiers.values() if t.auth_header_env})
    return [secret_env(settings, name, name) for name in names]


def security_context() -> dict[str, Any]:
    """A container that cannot gain privileges nor write its root filesystem."""
    return {
        "allowPrivilegeEscalation": False,
        "capabilities": {"drop": ["ALL"]},
        "readOnlyRootFilesystem": True,
        "runAsNonRoot": True,
    }


def pod_security() -> dict[str, Any]:
    """The pod's context: the image's non-root user, the runtime's seccomp profile."""
    return {
        "fsGroup": 10001,
        "runAsGroup": 10001,
        "runAsNonRoot": True,
        "runAsUser": 10001,
        "seccompProfile": {"type": "RuntimeDefault"},
    }


def scratch_volume() -> tuple[dict[str, Any], dict[str, Any]]:
    """The writable ``/tmp`` (``HOME`` and caches): volume and mount."""
    return {"name": "tmp", "emptyDir": {}}, {"name": "tmp", "mountPath": SCRATCH_DIR}


def plan_volume() -> tuple[dict[str, Any], dict[str, Any]]:
    """The plan's ConfigMap at ``/etc/tierwise/plan.yaml``: volume and mount."""
    volume = {
        "name": "plan",
        "configMap": {"name": PLAN_CONFIGMAP, "items": [{"key": "plan.yaml", "path": "plan.yaml"}]},
    }
    return volume, {
        "name": "plan",
        "mountPath": "/etc/tierwise/plan.yaml",
        "subPath": "plan.yaml",
        "readOnly": True,
    }


def tokens_volume(settings: DeploySettings) -> tuple[dict[str, Any], dict[str, Any]]:
    """The token hashes from the settings' Secret (a reference to it, never its data)."""
    key = SECRET_KEYS["tokens"]
    volume = {
        "name": "tokens",
        "secret": {"secretName": settings.secret_name, "items": [{"key": key, "path": key}]},
    }
    return volume, {"name": "tokens", "mountPath": TOKENS_DIR, "readOnly": True}


def health_probes(port: int) -> dict[str, Any]:
    """Liveness and readiness on the Open Inference Protocol's health endpoints."""

    def probe(path: str, period_s: int, failures: int) -> dict[str, Any]:
        return {
            "httpGet": {"path": path, "port": port},
            "periodSeconds": period_s,
            "failureThreshold": failures,
            "timeoutSeconds": 2,
        }

    return {
        "livenessProbe": probe("/v2/health/live", 10, 3),
        "readinessProbe": probe("/v2/health/ready", 5, 2),
        "startupProbe": probe("/v2/health/live", 5, 60),
    }


def resources_of(tier: AnyTier | None) -> dict[str, Any]:
    """Requests (and the GPU limit) from the spec tier's hardware; small defaults without
    one (half a core, 512 MiB)."""
    if tier is None:
        return {"requests": {"cpu": "500m", "memory": "512Mi"}, "limits": {"memory": "1Gi"}}
    hw = tier.hardware
    memory = f"{round(hw.memory_gib * _MEBI)}Mi"
    out: dict[str, Any] = {
        "requests": {"cpu": str(hw.cpu_cores), "memory": memory},
        "limits": {"memory": memory},
    }
    if hw.accelerator is not None and hw.accelerator.lower().startswith("nvidia"):
        out["requests"]["nvidia.com/gpu"] = "1"
        out["limits"]["nvidia.com/gpu"] = "1"
    return out
