"""Progressive delivery of cloud tiers through Flagger or Argo Rollouts, with the gates of
``tierwise rollout`` (:mod:`tierwise.control.gates`) as PromQL.

Both engines own the workload they shift traffic for, so with them a cloud tier is a
``Deployment`` (Flagger: a ``Canary`` targets it) or an Argo ``Rollout`` running the same
server container as its ``InferenceService`` would, behind a ``Service``, the bundle
fetched by KServe's storage initializer as an init container. Each gate is one
query giving one number, canary against baseline over the analysis interval, read from
the series the control plane reads (:mod:`tierwise.control.prom_source`), the two cohorts
told apart by the ``pod`` label the Prometheus Operator puts on every scraped series:
Flagger's canary pods are ``<tier>-<hash>`` and its baseline ``<tier>-primary-<hash>``;
Argo's carry the pod template hash the analysis gets as arguments. The number must stay
within the gate's limit (Flagger ``thresholdRange``, Argo ``successCondition``); after
``failure_limit`` failed analyses the engine sends all traffic back to the stable version.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from tierwise.control.gates import Gate, gates_from
from tierwise.control.prom_source import CHECKS, DURATION, ENERGY, FALLBACKS, REQUESTS, ROUTED
from tierwise.deploy.common import metadata, selector_for
from tierwise.deploy.kserve import server_container, spec_tier_of, storage_uri
from tierwise.deploy.pods import pod_security, scratch_volume, tokens_volume
from tierwise.deploy.settings import SERVER_PORT, DeploySettings
from tierwise.observe.promql import prom_duration
from tierwise.planfile.schema import TierConfig
from tierwise.spec.fleet import FleetSpec

__all__ = ["FLAGGER_COHORTS", "cloud_progressive", "gate_query"]

#: Flagger's pods: the canary keeps the target's name, the baseline is ``-primary``.
FLAGGER_COHORTS = (
    "{{ target }}-[0-9a-z]+-[0-9a-z]+",
    "{{ target }}-primary-[0-9a-z]+-[0-9a-z]+",
)
_ARGO_COHORTS = (
    "{{args.name}}-{{args.canary-hash}}-[0-9a-z]+",
    "{{args.name}}-{{args.stable-hash}}-[0-9a-z]+",
)
_MODEL_DIR = "/var/lib/tierwise/models"


def _sum(metric: str, pod: str, window: str, extra: str = "", by: str = "") -> str:
    grouping = f" by ({by})" if by else ""
    return f'sum{grouping} (increase({metric}{{pod=~"{pod}"{extra}}}[{window}]))'


def _share(part: str, whole: str) -> str:
    return f"({part} / {whole})"


def gate_query(gate: Gate, canary: str, baseline: str, window: str) -> str:
    """One number comparing the cohorts whose pods match ``canary`` and ``baseline``
    (regular expressions) for ``gate``, over ``window`` (a PromQL duration). Without
    series on either side it is the neutral value (a ratio of 1, a difference of 0), so
    a gate with no data passes, as with ``tierwise rollout``."""

    def figure(pod: str) -> str:
        stat = gate.spec.statistic
        if stat == "p99_s":
            return f"histogram_quantile(0.99, {_sum(DURATION + '_bucket', pod, window, by='le')})"
        if stat == "error_rate":
            failed = _sum(REQUESTS, pod, window, ', outcome!="success"')
            return _share(f"({failed} or vector(0))", _sum(REQUESTS, pod, window))
        if stat == "agreement":
            return _share(_sum(CHECKS, pod, window, ', result="agree"'), _sum(CHECKS, pod, window))
        if stat == "energy_j_per_inference":
            served = _sum(REQUESTS, pod, window, ', outcome="success"')
            return _share(_sum(ENERGY, pod, window), served)
        failed = f"({_sum(FALLBACKS, pod, window)} or vector(0))"
        return _share(failed, _sum(ROUTED, pod, window))

    op, neutral = ("/", 1) if gate.spec.compare == "ratio" else ("-", 0)
    return f"({figure(canary)} {op} {figure(baseline)}) or vector({neutral})"


def _template_name(tier: TierConfig, gate: Gate) -> str:
    return f"{tier.name}-{gate.name.replace('_', '-')}"


def _range(gate: Gate) -> dict[str, float]:
    return {"max": gate.limit} if gate.spec.op == "<=" else {"min": gate.limit}


def _flagger(tier: TierConfig, gates: Sequence[Gate], s: DeploySettings) -> list[dict[str, Any]]:
    interval = prom_duration(s.interval_s)
    templates = [
        {
            "apiVersion": "flagger.app/v1beta1",
            "kind": "MetricTemplate",
            "metadata": metadata(_template_name(tier, g), "rollout-gate", tier.name),
            "spec": {
                "provider": {"type": "prometheus", "address": "http://prometheus-operated:9090"},
                "query": gate_query(g, *FLAGGER_COHORTS, "{{ interval }}"),
            },
        }
        for g in gates
    ]  # fmt: skip
    canary = {
        "apiVersion": "flagger.app/v1beta1",
        "kind": "Canary",
        "metadata": metadata(tier.name, "rollout", tier.name),
        "spec": {
            "targetRef": {"apiVersion": "apps/v1", "kind": "Deployment", "name": tier.name},
            "service": {"port": SERVER_PORT, "targetPort": SERVER_PORT},
            "analysis": {
                "interval": interval,
                "threshold": s.failure_limit,
                "stepWeight": s.canary_step_percent,
                "maxWeight": s.canary_max_percent,
                "metrics": [
                    {
                        "name": g.name.replace("_", "-"),
                        "interval": interval,
                        "thresholdRange": _range(g),
                        "templateRef": {"name": _template_name(tier, g)},
                    }
                    for g in gates
                ],
            },
        },
    }
    return [*templates, canary]


def _argo_analysis(tier: TierConfig, gates: Sequence[Gate], s: DeploySettings) -> dict[str, Any]:
    window = prom_duration(s.interval_s)

    def condition(g: Gate) -> str:
        return f"isNaN(result[0]) || result[0] {g.spec.op} {g.limit!r}"

    return {
        "apiVersion": "argoproj.io/v1alpha1",
        "kind": "AnalysisTemplate",
        "metadata": metadata(f"{tier.name}-gates", "rollout-gate", tier.name),
        "spec": {
            "args": [{"name": "name"}, {"name": "canary-hash"}, {"name": "stable-hash"}],
            "metrics": [
                {
                    "name": g.name.replace("_", "-"),
                    "interval": window,
                    "failureLimit": s.failure_limit,
                    "successCondition": condition(g),
                    "provider": {"prometheus": {
                        "address": "http://prometheus-operated:9090",
                        "query": gate_query(g, *_ARGO_COHORTS, window),
                    }},
                }
                for g in gates
            ],
        },
    }  # fmt: skip


def _pod_template(tier: TierConfig, s: DeploySettings, spec: FleetSpec | None) -> dict[str, Any]:
    container = server_container(tier, s, spec_tier_of(tier, spec), model_dir=_MODEL_DIR)
    container["name"] = "server"
    tmp, _ = scratch_volume()
    tokens, _ = tokens_volume(s)
    models = {"name": "models", "emptyDir": {}}
    container["volumeMounts"].append({"name": "models", "mountPath": _MODEL_DIR})
    fetch = {
        "name": "fetch-model",
        "image": s.storage_initializer_image,
        "args": [storage_uri(tier, s), _MODEL_DIR],
        "securityContext": container["securityContext"],
        "volumeMounts": [{"name": "models", "mountPath": _MODEL_DIR}],
    }  # fmt: skip
    return {
        "metadata": {"labels": metadata(tier.name, "cloud-tier")["labels"]},
        "spec": {
            "automountServiceAccountToken": False,
            "initContainers": [fetch],
            "containers": [container],
            "securityContext": pod_security(),
            "volumes": [tmp, tokens, models],
        },
    }


def cloud_progressive(
    tier: TierConfig, settings: DeploySettings, spec: FleetSpec | None
) -> list[dict[str, Any]]:
    """A cloud tier under Flagger or Argo Rollouts: its workload, Service and gates."""
    gates = gates_from(settings.gates)
    hw = spec_tier_of(tier, spec)
    replicas = hw.capacity.node_count if hw is not None else 1
    labels = selector_for(tier.name)
    service = {
        "apiVersion": "v1",
        "kind": "Service",
        "metadata": metadata(tier.name, "cloud-tier"),
        "spec": {
            "selector": labels,
            "ports": [{"name": "http", "port": SERVER_PORT, "targetPort": SERVER_PORT}],
        },
    }
    workload: dict[str, Any] = {
        "metadata": metadata(tier.name, "cloud-tier"),
        "spec": {
            "replicas": replicas,
            "selector": {"matchLabels": labels},
            "template": _pod_template(tier, settings, spec),
        },
    }
    if settings.progressive == "flagger":
        workload = {"apiVersion": "apps/v1", "kind": "Deployment", **workload}
        return [workload, *_flagger(tier, gates, settings)]
    steps: list[dict[str, Any]] = []
    weight = settings.canary_step_percent
    while weight < settings.canary_max_percent:
        steps += [
            {"setWeight": weight},
            {"pause": {"duration": prom_duration(settings.interval_s)}},
        ]
        weight += settings.canary_step_percent
    steps.append({"setWeight": settings.canary_max_percent})
    workload["spec"]["strategy"] = {
        "canary": {
            "steps": steps,
            "analysis": {
                "templates": [{"templateName": f"{tier.name}-gates"}],
                "args": [
                    {"name": "name", "value": tier.name},
                    {"name": "canary-hash", "valueFrom": {"podTemplateHashValue": "Latest"}},
                    {"name": "stable-hash", "valueFrom": {"podTemplateHashValue": "Stable"}},
                ],
            },
        }
    }
    workload = {"apiVersion": "argoproj.io/v1alpha1", "kind": "Rollout", **workload}
    return [workload, service, _argo_analysis(tier, gates, settings)]
