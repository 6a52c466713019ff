"""Rendered Kubernetes trees: every manifest of every example plan, for each edge flavour
and each progressive option, passes its schema (core kinds and vendored CRDs, unknown
fields refused); rendering is byte-for-byte repeatable; plans that cannot be expressed
are refused naming the tier or field; and no secret value reaches the output."""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any

import pytest
import yaml
from deploy_helpers import EXAMPLE_FLEETS, ROOT, example_plans, plan_from_fleet, validate_manifest

from tierwise.deploy import DeploySettings, render_k8s, write_tree
from tierwise.errors import PlanError
from tierwise.planfile.load import parse_plan
from tierwise.planfile.schema import Plan
from tierwise.spec import FleetSpec

PLANS = example_plans()
FLAVOURS = ("kubeedge", "openyurt", "k3s")
PROGRESSIVE = ("none", "flagger", "argo")


def _docs(files: dict[str, str]) -> dict[str, dict[str, Any]]:
    return {path: yaml.safe_load(text) for path, text in files.items()}


def _kind(docs: dict[str, dict[str, Any]], kind: str) -> list[dict[str, Any]]:
    return [d for d in docs.values() if d["kind"] == kind]


@pytest.mark.parametrize("progressive", PROGRESSIVE)
@pytest.mark.parametrize("edge", FLAVOURS)
@pytest.mark.parametrize("example", sorted(PLANS))
def test_every_manifest_validates(example: str, edge: str, progressive: str) -> None:
    plan, spec = PLANS[example]
    settings = DeploySettings(edge=edge, progressive=progressive)
    docs = _docs(render_k8s(plan, settings, spec))
    sources = {path: validate_manifest(doc) for path, doc in docs.items()}
    kinds = {doc["kind"] for doc in docs.values()}
    assert {"ConfigMap", "Deployment", "Service", "ServiceMonitor", "PodMonitor"} <= kinds
    assert "PrometheusRule" in kinds
    assert any(s.endswith(".json") for s in sources.values())
    cloud = [n for n, t in plan.tiers.items() if t.kind == "cloud"]
    edges = [n for n, t in plan.tiers.items() if t.kind == "edge"]
    assert len(_kind(docs, "DaemonSet")) == len(edges)
    expected = {"none": "InferenceService", "flagger": "Canary", "argo": "Rollout"}[progressive]
    assert len(_kind(docs, expected)) == len(cloud)
    # the base lists every file beside it, and the overlays build on it
    base = docs["base/kustomization.yaml"]["resources"]
    assert sorted(base) == sorted(p.removeprefix("base/") for p in docs if p.startswith("base/")
                                  and p != "base/kustomization.yaml")  # fmt: skip
    for overlay in ("staging", "production"):
        assert docs[f"overlays/{overlay}/kustomization.yaml"]["resources"] == ["../../base"]


def test_a_misspelt_field_is_refused_by_the_vendored_schema() -> None:
    plan, spec = PLANS["retail-shelf"]
    docs = _docs(render_k8s(plan, DeploySettings(), spec))
    isvc = docs["base/inferenceservice-reid-cloud.yaml"]
    bad = copy.deepcopy(isvc)
    bad["spec"]["predictor"]["minReplica"] = 1
    with pytest.raises(AssertionError, match="minReplica"):
        validate_manifest(bad)
    daemonset = copy.deepcopy(docs["base/daemonset-store-edge-small-int8.yaml"])
    daemonset["spec"]["template"]["spec"]["nodeSelecter"] = {}
    with pytest.raises(Exception, match="nodeSelecter"):
        validate_manifest(daemonset)


def test_cloud_tier_as_inference_service_from_the_spec() -> None:
    plan, spec = PLANS["retail-shelf"]
    docs = _docs(render_k8s(plan, DeploySettings(canary_traffic_percent=10), spec))
    isvc = docs["base/inferenceservice-reid-cloud.yaml"]
    assert isvc["apiVersion"] == "serving.kserve.io/v1beta1"
    predictor = isvc["spec"]["predictor"]
    # the spec's reid-cloud: 1 node, up to 4, one T4 of 16 GiB, 4 cores
    assert (predictor["minReplicas"], predictor["maxReplicas"]) == (1, 4)
    assert (predictor["scaleMetric"], predictor["canaryTrafficPercent"]) == ("concurrency", 10)
    container = predictor["containers"][0]
    assert container["resources"]["requests"] == {
        "cpu": "4", "memory": "16384Mi", "nvidia.com/gpu": "1",
    }  # fmt: skip
    uri = "oci://registry.example.com/tierwise/base-fp16:latest"
    assert {"name": "STORAGE_URI", "value": uri} in container["env"]
    assert container["args"][:3] == ["serve", "--model-repo", "/mnt/models"]
    assert container["livenessProbe"]["httpGet"]["path"] == "/v2/health/live"
    assert container["securityContext"]["readOnlyRootFilesystem"] is True
    triton = _docs(render_k8s(plan, DeploySettings(
        runtime="triton", storage_uri="s3://models/{tier}/{model}"), spec))  # fmt: skip
    model = triton["base/inferenceservice-reid-cloud.yaml"]["spec"]["predictor"]["model"]
    assert model["modelFormat"] == {"name": "onnx"}
    assert model["runtime"] == "kserve-tritonserver"
    assert model["storageUri"] == "s3://models/reid-cloud/base-fp16"


def test_without_a_spec_replicas_and_resources_take_the_defaults() -> None:
    plan, _ = PLANS["retail-shelf"]
    docs = _docs(render_k8s(plan, DeploySettings()))
    predictor = docs["base/inferenceservice-reid-cloud.yaml"]["spec"]["predictor"]
    assert (predictor["minReplicas"], predictor["maxReplicas"]) == (1, 3)
    assert "nvidia.com/gpu" not in predictor["containers"][0]["resources"]["requests"]


@pytest.mark.parametrize(
    ("edge", "selector"),
    [
        ("kubeedge", {"node-role.kubernetes.io/edge": "", "tierwise.io/site": "store"}),
        ("openyurt", {"apps.openyurt.io/nodepool": "store"}),
        ("k3s", {"tierwise.io/site": "store", "tierwise.io/tier": "store-edge-small-int8"}),
    ],
)
def test_edge_nodes_per_flavour(edge: str, selector: dict[str, str]) -> None:
    plan, spec = PLANS["retail-shelf"]
    docs = _docs(render_k8s(plan, DeploySettings(edge=edge), spec))
    ds = docs["base/daemonset-store-edge-small-int8.yaml"]
    pod = ds["spec"]["template"]["spec"]
    assert pod["nodeSelector"] == selector
    tolerated = {t["key"] for t in pod["tolerations"]}
    assert ("node-role.kubernetes.io/edge" in tolerated) == (edge == "kubeedge")
    volumes = {v["name"]: v for v in pod["volumes"]}
    assert volumes["state"]["hostPath"]["path"] == "/var/lib/tierwise"
    assert volumes["thermal"]["hostPath"]["path"] == "/sys/class/thermal/thermal_zone0"
    agent = pod["containers"][0]
    assert agent["args"][:3] == ["agent", "--config", "/run/tierwise/agent.yaml"]
    # the node listens where the plan's url says (port 9004), the gateway on 8080 and up
    assert agent["readinessProbe"]["httpGet"] == {"path": "/v2/health/ready", "port": 9004}
    assert [p["hostPort"] for p in agent["ports"]] == [9004, 8081]
    configmap = docs["base/configmap-store-edge-small-int8-agent.yaml"]
    config = yaml.safe_load(configmap["data"]["agent.yaml"])
    assert config["node"] == "__NODE_NAME__"
    assert (config["port"], config["gateway"]["port"]) == (9004, 8081)
    assert config["gateway"]["local_tier"] == "store-edge-small-int8"
    assert config["serve"] == [{"variant": "small-int8", "model": "small-int8"}]


def test_progressive_carries_the_rollout_gates() -> None:
    plan, spec = PLANS["batch-summarization"]
    flagger = _docs(render_k8s(plan, DeploySettings(
        progressive="flagger", gates=("p99_ratio=1.2", "energy_ratio=off")), spec))  # fmt: skip
    canary = flagger["base/canary-t4-batch.yaml"]["spec"]["analysis"]
    ranges = {m["name"]: m["thresholdRange"] for m in canary["metrics"]}
    assert ranges == {
        "p99-ratio": {"max": 1.2}, "error-rate-delta": {"max": 0.01},
        "agreement-delta": {"min": -0.05}, "fallback-delta": {"max": 0.05},
    }  # fmt: skip
    assert canary["threshold"] == 4
    template = flagger["base/metrictemplate-t4-batch-p99-ratio.yaml"]["spec"]["query"]
    assert "tierwise_request_duration_seconds_bucket" in template
    assert "{{ target }}-primary-" in template
    argo = _docs(render_k8s(plan, DeploySettings(progressive="argo"), spec))
    rollout = argo["base/rollout-t4-batch.yaml"]["spec"]["strategy"]["canary"]
    assert rollout["steps"][0] == {"setWeight": 10}
    assert rollout["steps"][-1] == {"setWeight": 50}
    analysis = argo["base/analysistemplate-t4-batch-gates.yaml"]["spec"]["metrics"]
    conditions = {m["name"]: m["successCondition"] for m in analysis}
    assert conditions["agreement-delta"] == "isNaN(result[0]) || result[0] >= -0.05"
    assert {m["failureLimit"] for m in analysis} == {4}


def test_rendering_is_deterministic(tmp_path: Path) -> None:
    for name, (plan, spec) in PLANS.items():
        for progressive in PROGRESSIVE:
            settings = DeploySettings(progressive=progressive)
            first = render_k8s(plan, settings, spec)
            again = render_k8s(plan_again(name), settings, spec)
            assert first == again, name
    written = write_tree(render_k8s(*PLANS["digits"][:1]), tmp_path / "a")
    rewritten = write_tree(render_k8s(*PLANS["digits"][:1]), tmp_path / "b")
    assert [p.read_bytes() for p in written] == [p.read_bytes() for p in rewritten]
    assert [p.relative_to(tmp_path / "a") for p in written] == [
        p.relative_to(tmp_path / "b") for p in rewritten
    ]


def plan_again(name: str) -> Plan:
    if name == "digits":
        path = ROOT / "examples" / "plans" / "digits.yaml"
        return parse_plan(path.read_text(), str(path), base_dir=path.parent, check_files=False)
    return plan_from_fleet(ROOT / "examples" / f"{name}.yaml")[0]


SECRET = "tw_s3cr3t-value-never-rendered"


def test_no_secret_value_in_the_output(monkeypatch: pytest.MonkeyPatch) -> None:
    for env in ("TIERWISE_CLOUD_AUTH", "TIERWISE_CONTROL_TOKEN", "TIERWISE_REGISTRY_PASSWORD"):
        monkeypatch.setenv(env, SECRET)
    plan, _ = PLANS["digits"]
    for progressive in PROGRESSIVE:
        files = render_k8s(plan, DeploySettings(progressive=progressive))
        assert not any(SECRET in text for text in files.values())
        docs = _docs(files)
        assert not _kind(docs, "Secret")
        gateway = docs["base/deployment-tierwise-gateway.yaml"]["spec"]["template"]["spec"]
        gateway_env = {e["name"]: e for e in gateway["containers"][0]["env"]}
        # the plan names the variable; the pod reads it from the Secret, by reference
        assert gateway_env["TIERWISE_CLOUD_AUTH"] == {"name": "TIERWISE_CLOUD_AUTH", "valueFrom": {
            "secretKeyRef": {"name": "tierwise", "key": "tierwise-cloud-auth", "optional": False},
        }}  # fmt: skip
        for doc in docs.values():
            # literal values only for what is no secret: where the bundle is
            assert _env_values(doc) <= {"STORAGE_URI"}, doc["metadata"]["name"]


def _env_values(node: Any) -> set[str]:
    """Names of the containers' environment variables given as literal values."""
    found: set[str] = set()
    if isinstance(node, dict):
        for key, value in node.items():
            if key == "env":
                found |= {e["name"] for e in value if "value" in e}
            else:
                found |= _env_values(value)
    elif isinstance(node, list):
        for value in node:
            found |= _env_values(value)
    return found


def _plan(tiers: dict[str, Any], cascade: list[str]) -> Plan:
    stages: list[dict[str, Any]] = [
        {"tier": t, "rule": "max_prob", "threshold": 0.9} for t in cascade
    ]
    stages[-1] = {"tier": cascade[-1]}
    doc = {"version": 1, "tiers": tiers,
           "workloads": {"w": {"privacy": "public", "cascade": stages}}}  # fmt: skip
    return parse_plan(yaml.safe_dump(doc), check_files=False)


def _remote(kind: str, url: str, **more: Any) -> dict[str, Any]:
    where = {"site": "s1", "region": "r1"} if kind == "edge" else {"region": "r1"}
    return {"kind": kind, "url": url, "model": "m", "rtt_p50_ms": 1, "rtt_p99_ms": 2,
            "cost_usd_per_inference": 0, **where, **more}  # fmt: skip


@pytest.mark.parametrize(
    ("tiers", "message"),
    [
        ({"Cloud_A": _remote("cloud", "http://c:9000")},
         "tiers.Cloud_A: expected a DNS-1123 label"),
        ({"e1": _remote("edge", "http://e:80"), "c": _remote("cloud", "http://c:1")},
         "tiers.e1.url: expected an explicit port of 1024 or above"),
        ({"e1": _remote("edge", "http://e"), "c": _remote("cloud", "http://c:1")},
         "tiers.e1.url: expected an explicit port"),
        ({"e1": _remote("edge", "http://a:9000"), "e2": _remote("edge", "http://b:9000"),
          "c": _remote("cloud", "http://c:1")},
         "tiers.e2.url: expected a port other than 9000, which edge tier 'e1' of site 's1'"),
        ({"c": _remote("cloud", "https://c:1", tls={"insecure_skip_verify": True})},
         "tiers.c.tls: expected no tls files"),
        ({"e1": _remote("edge", "http://a:9000", model="Big Model"),
          "c": _remote("cloud", "http://c:1")},
         "tiers.e1.model: expected a model name that is also a bundle name"),
    ],
)  # fmt: skip
def test_refuses_what_it_cannot_express(tiers: dict[str, Any], message: str) -> None:
    plan = _plan(tiers, list(tiers))
    with pytest.raises(PlanError) as caught:
        render_k8s(plan, DeploySettings())
    assert str(caught.value).startswith(message), str(caught.value)


def test_settings_are_checked() -> None:
    with pytest.raises(ValueError, match="oci:// or s3://"):
        DeploySettings(storage_uri="http://x/{model}")
    with pytest.raises(ValueError, match="kubeedge"):
        DeploySettings(edge="microk8s")


def test_the_examples_are_all_rendered() -> None:
    assert set(PLANS) == {*EXAMPLE_FLEETS, "digits"}
    specs: list[FleetSpec | None] = [s for _, s in PLANS.values()]
    assert sum(s is not None for s in specs) == 3
