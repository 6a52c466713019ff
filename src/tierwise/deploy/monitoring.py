"""The Prometheus Operator's objects: what to scrape, and the fleet's alerting rules.

A ``ServiceMonitor`` scrapes the gateway's ``Service``, a ``PodMonitor`` every tier server
and edge agent pod (their ``http`` port, and an agent's ``gateway`` port), both with the
token in the settings' ``Secret`` (a reference, never the token). The ``PrometheusRule``
holds the alert rules of :func:`tierwise.observe.rules.alert_rules` for the plan's SLOs,
the same rules ``tierwise observe`` writes for a plain Prometheus.
"""

from __future__ import annotations

from typing import Any

from tierwise.deploy.common import PART_OF, metadata
from tierwise.deploy.settings import SECRET_KEYS, DeploySettings
from tierwise.observe.promql import prom_duration
from tierwise.observe.rules import alert_rules, rules_file
from tierwise.observe.settings import ObserveSettings
from tierwise.observe.slo import workload_slos
from tierwise.planfile.schema import Plan

__all__ = ["monitoring_objects"]


def _endpoint(settings: DeploySettings, port: str, interval: str) -> dict[str, Any]:
    return {
        "port": port,
        "path": "/metrics",
        "interval": interval,
        "authorization": {
            "type": "Bearer",
            "credentials": {"name": settings.secret_name, "key": SECRET_KEYS["metrics_token"]},
        },
    }


def monitoring_objects(
    plan: Plan, settings: DeploySettings, observe: ObserveSettings | None = None
) -> list[dict[str, Any]]:
    """ServiceMonitor, PodMonitor and PrometheusRule of the plan's fleet."""
    observe = observe or ObserveSettings()
    interval = prom_duration(observe.scrape_interval_s)
    service = {
        "apiVersion": "monitoring.coreos.com/v1",
        "kind": "ServiceMonitor",
        "metadata": metadata("tierwise-gateway", "monitoring", "tierwise"),
        "spec": {
            "selector": {"matchLabels": {
                "app.kubernetes.io/component": "gateway", "app.kubernetes.io/part-of": PART_OF,
            }},
            "endpoints": [_endpoint(settings, "http", interval)],
        },
    }  # fmt: skip
    pods = {
        "apiVersion": "monitoring.coreos.com/v1",
        "kind": "PodMonitor",
        "metadata": metadata("tierwise-nodes", "monitoring", "tierwise"),
        "spec": {
            "selector": {
                "matchLabels": {"app.kubernetes.io/part-of": PART_OF},
                "matchExpressions": [{
                    "key": "app.kubernetes.io/component", "operator": "In",
                    "values": ["cloud-tier", "edge-agent"],
                }],
            },
            "podMetricsEndpoints": [
                _endpoint(settings, "http", interval), _endpoint(settings, "gateway", interval),
            ],
        },
    }  # fmt: skip
    rules = {
        "apiVersion": "monitoring.coreos.com/v1",
        "kind": "PrometheusRule",
        "metadata": metadata("tierwise-alerts", "monitoring", "tierwise"),
        "spec": rules_file(alert_rules(workload_slos(plan), observe), observe),
    }
    return [service, pods, rules]
