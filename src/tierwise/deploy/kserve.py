"""Cloud tiers as KServe ``InferenceService``s (``serving.kserve.io/v1beta1``).

With ``runtime: triton`` the predictor is KServe's model form (``modelFormat: onnx``,
``runtime: kserve-tritonserver``, ``storageUri``); with ``runtime: tierwise`` it is
tierwise's own server as a custom container, the bundle fetched by KServe's storage
initializer from ``STORAGE_URI`` into ``/mnt/models`` (a model repository,
``<model>/<version>/model.onnx``). Replicas come from the spec tier's capacity
(``node_count`` up to ``max_node_count``; without a spec 1 to
:data:`~tierwise.deploy.settings.DEFAULT_MAX_REPLICAS`), scaling on concurrency at
:data:`~tierwise.deploy.settings.DEFAULT_SCALE_TARGET` requests per replica per slot.
"""

from __future__ import annotations

from typing import Any

from tierwise.deploy.common import dns_name, metadata
from tierwise.deploy.pods import (
    TOKENS_FILE,
    health_probes,
    pod_security,
    resources_of,
    scratch_volume,
    security_context,
    tokens_volume,
)
from tierwise.deploy.settings import (
    ALL_INTERFACES,
    DEFAULT_MAX_REPLICAS,
    DEFAULT_SCALE_TARGET,
    SERVER_PORT,
    DeploySettings,
)
from tierwise.errors import PlanError
from tierwise.planfile.schema import Plan, TierConfig
from tierwise.spec.fleet import FleetSpec
from tierwise.spec.tiers import AnyTier

__all__ = [
    "cloud_tiers",
    "inference_service",
    "server_container",
    "spec_tier_of",
    "storage_uri",
]


def cloud_tiers(plan: Plan) -> list[TierConfig]:
    """The plan's cloud tiers, by name; PlanError for one that is not a remote tier or
    whose name cannot name Kubernetes objects."""
    out = []
    for name in sorted(plan.tiers):
        tier = plan.tiers[name]
        if tier.kind != "cloud":
            continue
        dns_name(f"tiers.{name}", name)
        if tier.model is None:
            raise PlanError(
                f"tiers.{name}", "a remote cloud tier (url and model) to run as a service", "local"
            )
        out.append(tier)
    return out


def spec_tier_of(tier: TierConfig, spec: FleetSpec | None) -> AnyTier | None:
    """The spec's tier a plan tier runs on (``spec_tier``, else the same name)."""
    if spec is None:
        return None
    return spec.tiers.get(tier.spec_tier or tier.name)


def storage_uri(tier: TierConfig, settings: DeploySettings) -> str:
    """Where ``tier``'s bundle is: the settings' ``storage_uri`` filled in."""
    return settings.storage_uri.replace("{tier}", tier.name).replace("{model}", tier.model or "")


def server_container(
    tier: TierConfig, settings: DeploySettings, hw: AnyTier | None, *, model_dir: str
) -> dict[str, Any]:
    """``tierwise serve`` of ``tier``'s models from ``model_dir``."""
    _, tmp_mount = scratch_volume()
    _, tokens_mount = tokens_volume(settings)
    return {
        "name": "kserve-container",
        "image": settings.image,
        "args": [
            "serve",
            "--model-repo",
            model_dir,
            "--host",
            ALL_INTERFACES,
            "--port",
            str(SERVER_PORT),
            "--tier",
            tier.name,
            "--tokens-file",
            TOKENS_FILE,
            "--log-json",
        ],
        "ports": [{"containerPort": SERVER_PORT, "name": "http", "protocol": "TCP"}],
        "resources": resources_of(hw),
        "securityContext": security_context(),
        "volumeMounts": [tmp_mount, tokens_mount],
        **health_probes(SERVER_PORT),
    }


def _scaling(hw: AnyTier | None) -> dict[str, Any]:
    if hw is None:
        low, high, per_node = 1, DEFAULT_MAX_REPLICAS, 1
    else:
        cap = hw.capacity
        low, per_node = cap.node_count, cap.max_replicas_per_node
        high = cap.max_node_count or max(low, DEFAULT_MAX_REPLICAS)
    return {
        "minReplicas": low,
        "maxReplicas": high,
        "scaleMetric": "concurrency",
        "scaleTarget": DEFAULT_SCALE_TARGET * per_node,
    }


def inference_service(
    tier: TierConfig, settings: DeploySettings, spec: FleetSpec | None
) -> dict[str, Any]:
    """The ``InferenceService`` of one cloud tier."""
    hw = spec_tier_of(tier, spec)
    predictor: dict[str, Any] = _scaling(hw)
    if settings.canary_traffic_percent is not None:
        predictor["canaryTrafficPercent"] = settings.canary_traffic_percent
    tmp, _ = scratch_volume()
    tokens, _ = tokens_volume(settings)
    if settings.runtime == "triton":
        predictor["model"] = {
            "modelFormat": {"name": "onnx"},
            "runtime": "kserve-tritonserver",
            "storageUri": storage_uri(tier, settings),
            "resources": resources_of(hw),
        }
    else:
        container = server_container(tier, settings, hw, model_dir="/mnt/models")
        container["env"] = [{"name": "STORAGE_URI", "value": storage_uri(tier, settings)}]
        predictor["containers"] = [container]
        predictor["securityContext"] = pod_security()
        predictor["volumes"] = [tmp, tokens]
    meta = metadata(tier.name, "cloud-tier")
    return {
        "apiVersion": "serving.kserve.io/v1beta1",
        "kind": "InferenceService",
        "metadata": meta,
        "spec": {"predictor": predictor},
    }
