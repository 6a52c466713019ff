"""The fleet's Grafana dashboard (JSON, Grafana's export format).

Rows: traffic by tier; p99 latency of each workload of the plan against its SLO (a
threshold line at the plan's target); the cascade (fallback, escalation, degraded and
hedge rates, breakers); cost per 1M inferences and per hour; energy per inference, power
and busy share by tier; drift scores and levels (tier servers and devices); the outbox
backlog and the nodes' thermal state. Every panel reads Prometheus through the
``${DS_PROMETHEUS}`` input Grafana asks for on import; rates use Grafana's
``$__rate_interval``, and the ``workload`` variable narrows the router's series.

Panels whose series exist only when something happened (fallbacks, degraded answers,
hedges: a healthy fleet has none) say "No data" rather than a made-up zero.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from tierwise.observe import queries as q
from tierwise.observe.promql import Expr, Gauge, Match, prom_duration, with_match
from tierwise.observe.settings import ObserveSettings
from tierwise.observe.slo import WorkloadSlo

__all__ = ["DASHBOARD_UID", "DATASOURCE", "RATE_INTERVAL", "PanelSpec", "render_dashboard"]

#: The dashboard's uid (a re-import replaces the same dashboard).
DASHBOARD_UID = "tierwise-fleet"
#: The datasource input every panel and target names.
DATASOURCE = {"type": "prometheus", "uid": "${DS_PROMETHEUS}"}
#: The rate window of every panel: Grafana's, at least four scrape intervals.
RATE_INTERVAL = "$__rate_interval"

_WORKLOAD_VAR = Match("workload", "$workload", "=~")
#: series with a ``workload`` label, narrowed by the dashboard's variable
_WORKLOAD_METRICS = {
    q.ROUTER_REQUESTS, q.ROUTER_DURATION, q.FALLBACKS, q.ESCALATIONS,
    "tierwise_router_degraded_total", "tierwise_router_hedges_total",
    "tierwise_router_cost_usd_total", "tierwise_workload_slo_seconds",
    "tierwise_shadow_agreement_ratio", "tierwise_device_drift_score",
}  # fmt: skip


@dataclass(frozen=True)
class PanelSpec:
    """One panel: its title, kind (``timeseries`` or ``stat``), Grafana unit, and its
    queries with their legends; ``threshold`` draws a red line (or colour) at a value."""

    title: str
    unit: str
    targets: tuple[tuple[Expr, str], ...]
    description: str = ""
    kind: str = "timeseries"
    threshold: float | None = None


def _panels(
    slos: Mapping[str, WorkloadSlo], settings: ObserveSettings
) -> list[tuple[str, list[PanelSpec]]]:
    latency = []
    for name, slo in slos.items():
        p99: tuple[tuple[Expr, str], ...] = ((q.workload_p99(name), "p99"),)
        if slo.p99_ms is None:
            title, about = f"p99 latency: {name} (no SLO set)", "no target set"
        else:
            title, about = f"p99 latency: {name} (SLO {slo.p99_ms:g} ms)", f"from the {slo.source}"
            slo_line = Gauge(q.SLO_SECONDS.metric, ("workload",), (Match("workload", name),))
            p99 += ((slo_line, "SLO"),)
        latency.append(
            PanelSpec(
                title,
                "s",
                p99,
                f"p99 of {name}'s routed requests against its target ({about}).",
                threshold=slo.p99_s,
            )
        )
    return [
        ("Traffic", [
            PanelSpec("Requests by answering tier", "reqps", ((q.REQUESTS_BY_TIER, "{{tier}}"),),
                      "Routed requests per second by the tier that answered (-: none)."),
            PanelSpec("Requests by outcome", "reqps", ((q.REQUESTS_BY_OUTCOME, "{{outcome}}"),)),
            PanelSpec("Tier servers: answered", "reqps",
                      ((q.SERVED_BY_TIER, "{{tier}} {{model}}"),)),
        ]),
        ("Latency against SLO", latency),
        ("Cascade", [
            PanelSpec("Fallback rate", "percentunit",
                      ((q.FALLBACK_RATE_BY_CAUSE, "{{workload}} past {{tier}}: {{cause}}"),),
                      "Share of requests that found a cascade stage skipped or failed."),
            PanelSpec("Escalation rate", "percentunit",
                      ((q.ESCALATION_RATE, "{{workload}} from {{stage}}"),),
                      "Share of requests escalated past each stage."),
            PanelSpec("Degraded answers", "reqps",
                      ((q.DEGRADED, "{{workload}} by {{tier}}: {{cause}}"),)),
            PanelSpec("Hedged requests", "reqps", ((q.HEDGES, "{{workload}} to {{tier}}"),)),
            PanelSpec("Circuit breakers open", "none", ((q.BREAKER_OPEN, "{{tier}}"),),
                      kind="stat", threshold=1),
            PanelSpec("Estimated accuracy (agreement with the reference tier)", "percentunit",
                      ((q.SHADOW_AGREEMENT, "{{workload}} {{tier}} vs {{reference}}"),)),
        ]),
        ("Cost", [
            PanelSpec("Cost per 1M inferences", "currencyUSD",
                      ((q.COST_PER_MILLION, "{{workload}}"),)),
            PanelSpec("Spend per hour", "currencyUSD",
                      ((q.COST_PER_HOUR, "{{workload}} on {{tier}}"),)),
        ]),
        ("Energy", [
            PanelSpec("Energy per inference", "joule",
                      ((q.ENERGY_PER_INFERENCE, "{{tier}}"),),
                      "Joules per answered inference (measured where the node can, else "
                      "its power model x busy time)."),
            PanelSpec("Power", "watt", ((q.POWER, "{{tier}} ({{source}})"),)),
            PanelSpec("Busy share", "percentunit", ((q.BUSY_SHARE, "{{tier}}"),)),
        ]),
        ("Drift", [
            PanelSpec("Drift scores", "none",
                      ((q.DRIFT_SCORE, "{{tier}} {{model}} {{signal}} {{test}}"),),
                      "PSI warns at 0.1 and alerts at 0.2."),
            PanelSpec("Drift level", "none", ((q.DRIFT_LEVEL, "{{tier}} {{model}} v{{version}}"),),
                      "0 ok, 1 warn, 2 alert.", kind="stat", threshold=2),
            PanelSpec("Device drift scores", "none",
                      ((q.DEVICE_DRIFT, "{{workload}} {{device_class}} {{signal}} {{test}}"),)),
        ]),
        ("Outbox and thermal", [
            PanelSpec("Outbox backlog", "none", ((q.OUTBOX_ITEMS, "{{queue}}"),)),
            PanelSpec("Oldest outbox item", "s", ((q.OUTBOX_AGE, "{{queue}}"),),
                      threshold=settings.backlog_age_s),
            PanelSpec("Node temperature", "celsius", ((q.TEMPERATURE, "{{instance}}"),),
                      threshold=settings.hot_celsius),
            PanelSpec("Thermal throttling and offload", "none",
                      ((q.THROTTLED, "throttled {{instance}}"),
                       (q.THERMAL_OFFLOAD, "offloading {{tier}}"))),
        ]),
    ]  # fmt: skip


def _thresholds(value: float | None) -> dict[str, Any]:
    steps: list[dict[str, Any]] = [{"color": "green", "value": None}]
    if value is not None:
        steps.append({"color": "red", "value": value})
    return {"mode": "absolute", "steps": steps}


def _panel(spec: PanelSpec, panel_id: int, x: int, y: int) -> dict[str, Any]:
    custom: dict[str, Any] = {}
    if spec.kind == "timeseries":
        custom = {"thresholdsStyle": {"mode": "off" if spec.threshold is None else "line"}}
    targets = []
    for ref, (expr, legend) in enumerate(spec.targets):
        narrowed = with_match(expr, _WORKLOAD_VAR, _WORKLOAD_METRICS)
        targets.append({
            "refId": chr(ord("A") + ref),
            "datasource": DATASOURCE,
            "expr": narrowed.promql(RATE_INTERVAL),
            "legendFormat": legend,
            "range": True,
            "instant": False,
        })  # fmt: skip
    return {
        "id": panel_id,
        "type": spec.kind,
        "title": spec.title,
        "description": spec.description,
        "datasource": DATASOURCE,
        "gridPos": {"h": 8, "w": 8, "x": x, "y": y},
        "fieldConfig": {
            "defaults": {
                "unit": spec.unit,
                "thresholds": _thresholds(spec.threshold),
                "custom": custom,
            },
            "overrides": [],
        },
        "options": {
            "legend": {"displayMode": "list", "placement": "bottom", "showLegend": True},
            "tooltip": {"mode": "multi", "sort": "desc"},
        }
        if spec.kind == "timeseries"
        else {
            "reduceOptions": {"calcs": ["lastNotNull"], "fields": "", "values": False},
            "colorMode": "background",
            "graphMode": "none",
        },
        "targets": targets,
    }


def _variable() -> dict[str, Any]:
    query = "label_values(tierwise_router_requests_total, workload)"
    return {
        "name": "workload", "label": "workload", "type": "query", "datasource": DATASOURCE,
        "definition": query, "query": {"query": query, "refId": "workload"},
        "includeAll": True, "multi": True, "allValue": ".*", "refresh": 2, "sort": 1,
        "current": {"selected": True, "text": ["All"], "value": ["$__all"]},
    }  # fmt: skip


def render_dashboard(
    slos: Mapping[str, WorkloadSlo], settings: ObserveSettings | None = None
) -> dict[str, Any]:
    """The dashboard for a plan's workloads (their SLOs from
    :func:`~tierwise.observe.slo.workload_slos`), as Grafana's JSON model."""
    settings = settings or ObserveSettings()
    panels: list[dict[str, Any]] = []
    y = 0
    for row_title, specs in _panels(slos, settings):
        panels.append({
            "id": len(panels) + 1, "type": "row", "title": row_title, "collapsed": False,
            "gridPos": {"h": 1, "w": 24, "x": 0, "y": y}, "panels": [],
        })  # fmt: skip
        y += 1
        for i, spec in enumerate(specs):
            panels.append(_panel(spec, len(panels) + 1, (i % 3) * 8, y + (i // 3) * 8))
        y += ((len(specs) + 2) // 3) * 8
    kinds = sorted({p["type"] for p in panels if p["type"] != "row"})
    return {
        "__inputs": [{
            "name": "DS_PROMETHEUS", "label": "Prometheus", "description": "",
            "type": "datasource", "pluginId": "prometheus", "pluginName": "Prometheus",
        }],
        "__requires": [
            {"type": "grafana", "id": "grafana", "name": "Grafana", "version": "10.0.0"},
            {"type": "datasource", "id": "prometheus", "name": "Prometheus", "version": "1.0.0"},
            *({"type": "panel", "id": k, "name": k, "version": ""} for k in kinds),
        ],
        "uid": DASHBOARD_UID,
        "title": settings.dashboard_title,
        "description": "Traffic, latency against SLO, cascade, cost, energy, drift, backlog "
        "and thermal state of a tierwise fleet.",
        "tags": ["tierwise"],
        "timezone": "",
        "editable": True,
        "graphTooltip": 1,
        "schemaVersion": 39,
        "version": 1,
        "refresh": prom_duration(settings.dashboard_refresh_s),
        "time": {"from": "now-1h", "to": "now"},
        "annotations": {"list": []},
        "templating": {"list": [_variable()]},
        "panels": panels,
    }  # fmt: skip
