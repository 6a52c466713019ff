"""Render a plan onto Kubernetes: a Kustomize base and two overlays.

``base/`` holds the plan (``ConfigMap`` ``tierwise-plan``), the gateway (``Deployment`` +
``Service``), each cloud tier (:mod:`tierwise.deploy.kserve`, or under Flagger / Argo
Rollouts :mod:`tierwise.deploy.progressive`), each edge tier
(:mod:`tierwise.deploy.edge`) and the monitoring objects
(:mod:`tierwise.deploy.monitoring`), one file per object, listed in its
``kustomization.yaml``. ``overlays/staging`` and ``overlays/production`` set the namespace
(``<namespace>-staging`` and ``<namespace>``) and pin the image. Secrets are never
rendered: pods name keys of the settings' ``Secret`` (see
:data:`~tierwise.deploy.settings.SECRET_KEYS`; a tier's ``auth_header_env`` is read from
the key of the variable's name in lowercase with ``-``).

The plan in the ConfigMap is the loaded plan with its fleet spec's facts merged in (the
``spec:`` link dropped) and each in-process model at
``/var/lib/tierwise/models/<tier>/<file>``, fetched by an init container from the
settings' ``storage_uri`` (``{tier}`` the tier, ``{model}`` the file's stem). The same
plan gives the same files, byte for byte.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from tierwise.deploy.common import dump_yaml, metadata, selector_for
from tierwise.deploy.edge import edge_objects
from tierwise.deploy.kserve import cloud_tiers, inference_service
from tierwise.deploy.monitoring import monitoring_objects
from tierwise.deploy.pods import (
    MODELS_DIR,
    PLAN_CONFIGMAP,
    TOKENS_FILE,
    cluster_plan,
    health_probes,
    model_fetchers,
    plan_volume,
    pod_security,
    scratch_volume,
    security_context,
    tier_auth_env,
    tokens_volume,
)
from tierwise.deploy.progressive import cloud_progressive
from tierwise.deploy.settings import ALL_INTERFACES, GATEWAY_PORT, SCRATCH_DIR, DeploySettings
from tierwise.planfile.schema import Plan
from tierwise.spec.fleet import FleetSpec

__all__ = ["OVERLAYS", "render_k8s", "write_tree"]

OVERLAYS = ("production", "staging")


def _gateway(plan: Plan, settings: DeploySettings) -> list[dict[str, Any]]:
    tmp, tmp_mount = scratch_volume()
    plan_vol, plan_mount = plan_volume()
    tokens, tokens_mount = tokens_volume(settings)
    env = tier_auth_env(plan, settings)
    container: dict[str, Any] = {
        "name": "gateway",
        "image": settings.image,
        "args": [
            "gateway",
            "--plan",
            "/etc/tierwise/plan.yaml",
            "--host",
            ALL_INTERFACES,
            "--port",
            str(GATEWAY_PORT),
            "--tokens-file",
            TOKENS_FILE,
            "--outbox",
            f"{SCRATCH_DIR}/outbox.sqlite",
            "--log-json",
        ],
        "ports": [{"containerPort": GATEWAY_PORT, "name": "http", "protocol": "TCP"}],
        "resources": {"requests": {"cpu": "500m", "memory": "512Mi"}, "limits": {"memory": "1Gi"}},
        "securityContext": security_context(),
        "volumeMounts": [
            tmp_mount,
            plan_mount,
            tokens_mount,
            {"name": "models", "mountPath": MODELS_DIR},
        ],
        **health_probes(GATEWAY_PORT),
    }
    if env:
        container["env"] = env
    labels = selector_for("tierwise-gateway")
    deployment = {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": metadata("tierwise-gateway", "gateway"),
        "spec": {
            "replicas": 2,
            "selector": {"matchLabels": labels},
            "template": {
                "metadata": {"labels": metadata("tierwise-gateway", "gateway")["labels"]},
                "spec": {
                    "automountServiceAccountToken": False,
                    "initContainers": model_fetchers(plan, settings),
                    "containers": [container],
                    "securityContext": pod_security(),
                    "volumes": [tmp, plan_vol, tokens, {"name": "models", "emptyDir": {}}],
                },
            },
        },
    }
    service = {
        "apiVersion": "v1",
        "kind": "Service",
        "metadata": metadata("tierwise-gateway", "gateway"),
        "spec": {
            "selector": labels,
            "ports": [{"name": "http", "port": GATEWAY_PORT, "targetPort": GATEWAY_PORT}],
        },
    }
    return [deployment, service]


def _file_name(obj: dict[str, Any]) -> str:
    return f"{obj['kind'].lower()}-{obj['metadata']['name']}.yaml"


def render_k8s(
    plan: Plan, settings: DeploySettings | None = None, spec: FleetSpec | None = None
) -> dict[str, str]:
    """Every file of the tree, by path relative to the output folder. PlanError (naming
    the tier or field) for a plan the manifests cannot express."""
    settings = settings or DeploySettings()
    objects: list[dict[str, Any]] = [{
        "apiVersion": "v1",
        "kind": "ConfigMap",
        "metadata": metadata(PLAN_CONFIGMAP, "plan", "tierwise"),
        "data": {"plan.yaml": dump_yaml(cluster_plan(plan))},
    }]  # fmt: skip
    objects += _gateway(plan, settings)
    for tier in cloud_tiers(plan):
        if settings.progressive == "none":
            objects.append(inference_service(tier, settings, spec))
        else:
            objects += cloud_progressive(tier, settings, spec)
    objects += edge_objects(plan, settings)
    objects += monitoring_objects(plan, settings)
    files = {f"base/{_file_name(o)}": dump_yaml(o) for o in objects}
    files["base/kustomization.yaml"] = dump_yaml({
        "apiVersion": "kustomize.config.k8s.io/v1beta1",
        "kind": "Kustomization",
        "resources": sorted(p.removeprefix("base/") for p in files),
    })  # fmt: skip
    name, _, tag = settings.image.rpartition(":")
    if "/" in tag or not name:
        name, tag = settings.image, "latest"
    for overlay in OVERLAYS:
        suffix = "" if overlay == "production" else f"-{overlay}"
        files[f"overlays/{overlay}/kustomization.yaml"] = dump_yaml({
            "apiVersion": "kustomize.config.k8s.io/v1beta1",
            "kind": "Kustomization",
            "namespace": f"{settings.namespace}{suffix}",
            "resources": ["../../base"],
            "labels": [{"pairs": {"tierwise.io/environment": overlay}}],
            "images": [{"name": name, "newName": name, "newTag": tag}],
        })  # fmt: skip
    return dict(sorted(files.items()))


def write_tree(files: dict[str, str], out_dir: str | os.PathLike[str]) -> list[Path]:
    """Write ``files`` under ``out_dir``; the paths written, sorted."""
    root = Path(out_dir)
    written = []
    for rel, text in sorted(files.items()):
        path = root / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text, encoding="utf-8")
        written.append(path)
    return written
