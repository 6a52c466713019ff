"""``tierwise observe render``: the dashboard, the alert rules and the scrape
configuration of a plan, as four files in one folder.

- ``dashboard.json``: the Grafana dashboard (:mod:`tierwise.observe.dashboard`);
- ``alerts.yml``: the alerting rules (:mod:`tierwise.observe.rules`);
- ``prometheus.yml``: intervals, ``rule_files: [alerts.yml]`` and file service discovery
  of ``targets.json`` (:mod:`tierwise.observe.scrape`);
- ``targets.json``: the plan's tiers and the gateways and agents given.

Each file is written to a temporary name beside it and renamed, so Prometheus reloading
its configuration never reads half a file.
"""

from __future__ import annotations

import json
import os
import tempfile
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import yaml

from tierwise.errors import ConfigError
from tierwise.observe.dashboard import render_dashboard
from tierwise.observe.rules import AlertRule, alert_rules, rules_file
from tierwise.observe.scrape import (
    RULES_FILE,
    TARGETS_FILE,
    Target,
    plan_targets,
    prometheus_config,
    targets_file,
)
from tierwise.observe.settings import ObserveSettings
from tierwise.observe.slo import WorkloadSlo, workload_slos
from tierwise.planfile.schema import Plan

__all__ = ["DASHBOARD_FILE", "PROMETHEUS_FILE", "Rendered", "render_plan", "write_rendered"]

DASHBOARD_FILE = "dashboard.json"
PROMETHEUS_FILE = "prometheus.yml"


@dataclass(frozen=True)
class Rendered:
    """The four files' text by name, and what they were made from."""

    files: dict[str, str]
    slos: dict[str, WorkloadSlo]
    rules: list[AlertRule]
    targets: list[Target]
    written: list[Path] = field(default_factory=list)


def _yaml(data: object) -> str:
    return yaml.safe_dump(data, sort_keys=False, default_flow_style=False, width=100)


def render_plan(
    plan: Plan,
    settings: ObserveSettings | None = None,
    *,
    gateways: Sequence[str] = (),
    agents: Sequence[str] = (),
) -> Rendered:
    """The files for ``plan`` (nothing written); ConfigError for a bad URL or setting."""
    settings = settings or ObserveSettings()
    slos = workload_slos(plan)
    rules = alert_rules(slos, settings)
    targets = plan_targets(plan, gateways, agents)
    files = {
        DASHBOARD_FILE: json.dumps(render_dashboard(slos, settings), indent=2) + "\n",
        RULES_FILE: _yaml(rules_file(rules, settings)),
        PROMETHEUS_FILE: _yaml(prometheus_config(targets, settings)),
        TARGETS_FILE: json.dumps(targets_file(targets), indent=2) + "\n",
    }
    return Rendered(files, slos, rules, targets)


def write_rendered(rendered: Rendered, out_dir: Path) -> list[Path]:
    """Write the files into ``out_dir`` (made when missing), each atomically; ConfigError
    when ``out_dir`` is a file. Returns the paths written."""
    if out_dir.exists() and not out_dir.is_dir():
        raise ConfigError("-o/--out", "a folder to write the files into", f"{out_dir} is a file")
    out_dir.mkdir(parents=True, exist_ok=True)
    written = []
    for name, text in rendered.files.items():
        path = out_dir / name
        fd, tmp = tempfile.mkstemp(prefix=f".{name}.", dir=out_dir)
        try:
            with os.fdopen(fd, "w", encoding="utf-8") as handle:
                handle.write(text)
            os.chmod(tmp, 0o644)
            os.replace(tmp, path)
        except BaseException:
            Path(tmp).unlink(missing_ok=True)
            raise
        written.append(path)
    rendered.written[:] = written
    return written
