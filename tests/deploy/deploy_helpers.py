"""Plans built from the example fleets, and offline validation of rendered manifests:
core kinds with kubernetes-validate, custom resources with the vendored CRD schemas."""

from __future__ import annotations

import json
from functools import cache
from pathlib import Path
from typing import Any

import jsonschema
import kubernetes_validate
import yaml

from tierwise.planfile.load import parse_plan
from tierwise.planfile.schema import Plan
from tierwise.spec import FleetSpec, load_spec

__all__ = [
    "EXAMPLE_FLEETS",
    "KUBERNETES_VERSION",
    "ROOT",
    "example_plans",
    "fleet_plan_yaml",
    "plan_from_fleet",
    "validate_manifest",
]

ROOT = Path(__file__).resolve().parents[2]
SCHEMAS = Path(__file__).resolve().parent / "schemas"
#: The Kubernetes version core kinds are validated against (kubernetes-validate's schemas).
KUBERNETES_VERSION = "1.37.0"
EXAMPLE_FLEETS = ("retail-shelf", "browser-assistant", "batch-summarization")
_CRDS = {
    ("serving.kserve.io/v1beta1", "InferenceService"): "kserve-inferenceservice-v1beta1.json",
    ("flagger.app/v1beta1", "Canary"): "flagger-canary-v1beta1.json",
    ("flagger.app/v1beta1", "MetricTemplate"): "flagger-metrictemplate-v1beta1.json",
    ("argoproj.io/v1alpha1", "Rollout"): "argo-rollout-v1alpha1.json",
    ("argoproj.io/v1alpha1", "AnalysisTemplate"): "argo-analysistemplate-v1alpha1.json",
    ("monitoring.coreos.com/v1", "ServiceMonitor"): "monitoring-servicemonitor-v1.json",
    ("monitoring.coreos.com/v1", "PodMonitor"): "monitoring-podmonitor-v1.json",
    ("monitoring.coreos.com/v1", "PrometheusRule"): "monitoring-prometheusrule-v1.json",
}


def plan_from_fleet(spec_path: Path) -> tuple[Plan, FleetSpec]:
    """A plan serving every workload of the fleet at ``spec_path`` on its tiers, in the
    spec's order: one plan tier per (spec tier, variant), remote tiers on distinct
    ports, and the spec's privacy, residency and SLOs."""
    text, spec = fleet_plan_yaml(spec_path)
    return parse_plan(text, str(spec_path), base_dir=spec_path.parent, check_files=False), spec


def fleet_plan_yaml(spec_path: Path) -> tuple[str, FleetSpec]:
    """The YAML of :func:`plan_from_fleet`'s plan, and the spec."""
    spec = load_spec(spec_path)
    used: dict[str, list[str]] = {}
    for w in spec.workloads.values():
        for t in w.tiers:
            variant = w.variants[t]
            if variant not in used.setdefault(t, []):
                used[t].append(variant)
    names = {(t, v): t if len(vs) == 1 else f"{t}-{v}" for t, vs in used.items() for v in vs}
    tiers: dict[str, Any] = {}
    for index, ((t, v), name) in enumerate(sorted(names.items())):
        st = spec.tiers[t]
        entry: dict[str, Any] = {
            "kind": st.kind, "spec_tier": t, "variant": v,
            "rtt_p50_ms": 10, "rtt_p99_ms": 50, "cost_usd_per_inference": 1e-6,
        }  # fmt: skip
        if st.kind == "device":
            entry["local"] = {"model": f"models/{v}.onnx"}
        else:
            entry.update(url=f"http://{name}.example:{9001 + index}", model=v)
        site = getattr(st, "site", None)
        region = getattr(st, "region", None)
        if site is not None:
            entry["site"] = site
            region = region or spec.sites[site].region
        if region is not None:
            entry["region"] = region
        tiers[name] = entry
    workloads: dict[str, Any] = {}
    for wname, w in spec.workloads.items():
        stages: list[dict[str, Any]] = [
            {"tier": names[(t, w.variants[t])], "rule": "max_prob", "threshold": 0.9}
            for t in w.tiers
        ]
        stages[-1] = {"tier": stages[-1]["tier"]}
        first = tiers[stages[0]["tier"]]
        workloads[wname] = {
            "privacy": w.privacy, "residency": w.residency, "urgency": w.urgency,
            "slo_p99_ms": w.slo.p99_ms, "cascade": stages,
            "origin_region": first.get("region"),
        }  # fmt: skip
        if "site" in first:
            workloads[wname]["origin_site"] = first["site"]
    return yaml.safe_dump({"version": 1, "tiers": tiers, "workloads": workloads}), spec


def example_plans() -> dict[str, tuple[Plan, FleetSpec | None]]:
    """The three example fleets' plans (with their specs) and the demo plan."""
    out: dict[str, tuple[Plan, FleetSpec | None]] = {
        name: plan_from_fleet(ROOT / "examples" / f"{name}.yaml") for name in EXAMPLE_FLEETS
    }
    digits = ROOT / "examples" / "plans" / "digits.yaml"
    out["digits"] = (
        parse_plan(digits.read_text(), str(digits), base_dir=digits.parent, check_files=False),
        None,
    )
    return out


def _strict(node: Any) -> Any:
    """The schema with unknown fields refused wherever the CRD lists an object's fields
    (the API server's strict field validation), so a misspelt field fails here."""
    if isinstance(node, list):
        return [_strict(n) for n in node]
    if not isinstance(node, dict):
        return node
    out = {k: _strict(v) for k, v in node.items()}
    if (
        "properties" in out
        and "additionalProperties" not in out
        and not out.get("x-kubernetes-preserve-unknown-fields")
    ):
        out["additionalProperties"] = False
    return out


@cache
def _crd_validator(file: str) -> jsonschema.Draft7Validator:
    data = json.loads((SCHEMAS / file).read_text())
    schema = _strict(data["openAPIV3Schema"])
    # metadata is the API server's to check (ObjectMeta), not the CRD's
    schema["properties"]["metadata"] = {"type": "object"}
    return jsonschema.Draft7Validator(schema)


def validate_manifest(doc: dict[str, Any]) -> str:
    """Raise for a manifest its schema refuses; the schema's source otherwise."""
    key = (doc.get("apiVersion"), doc.get("kind"))
    if key in _CRDS:
        errors = sorted(_crd_validator(_CRDS[key]).iter_errors(doc), key=str)
        if errors:
            where = "/".join(str(p) for p in errors[0].absolute_path)
            raise AssertionError(
                f"{key[1]} {doc['metadata']['name']}: {where}: {errors[0].message}"
            )
        return _CRDS[key]
    if key[0] == "kustomize.config.k8s.io/v1beta1":
        return "kustomize"
    kubernetes_validate.validate(doc, KUBERNETES_VERSION, strict=True)
    return f"kubernetes {KUBERNETES_VERSION}"
