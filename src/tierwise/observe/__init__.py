"""Watching the fleet: the queries over the series tierwise exports, and what is built
from them — the Grafana dashboard, Prometheus' alerting rules and scrape configuration
(``tierwise observe render``), and the terminal view of the fleet's state
(``tierwise observe status``).

- :mod:`~tierwise.observe.promql`: queries that print as PromQL and evaluate on a scrape;
- :mod:`~tierwise.observe.queries`: every query of the fleet, once;
- :mod:`~tierwise.observe.dashboard`, :mod:`~tierwise.observe.rules`,
  :mod:`~tierwise.observe.scrape`, :mod:`~tierwise.observe.render`: the rendered files;
- :mod:`~tierwise.observe.status`, :mod:`~tierwise.observe.view`: the status view.
"""

from __future__ import annotations

from tierwise.observe.dashboard import render_dashboard
from tierwise.observe.render import Rendered, render_plan, write_rendered
from tierwise.observe.rules import ALERT_NAMES, AlertRule, alert_rules, rules_file
from tierwise.observe.scrape import Target, plan_targets, prometheus_config, targets_file
from tierwise.observe.settings import ObserveSettings, load_observe_settings
from tierwise.observe.slo import WorkloadSlo, workload_slos
from tierwise.observe.status import (
    FleetStatus,
    PrometheusSource,
    SnapshotSource,
    gather_status,
)
from tierwise.observe.view import status_view

__all__ = [
    "ALERT_NAMES",
    "AlertRule",
    "FleetStatus",
    "ObserveSettings",
    "PrometheusSource",
    "Rendered",
    "SnapshotSource",
    "Target",
    "WorkloadSlo",
    "alert_rules",
    "gather_status",
    "load_observe_settings",
    "plan_targets",
    "prometheus_config",
    "render_dashboard",
    "render_plan",
    "rules_file",
    "status_view",
    "targets_file",
    "workload_slos",
    "write_rendered",
]
