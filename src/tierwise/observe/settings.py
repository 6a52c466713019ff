"""What ``tierwise observe`` renders with: scrape and evaluation intervals, the rate
window, and the thresholds of the alerts (``--settings FILE``, YAML; every field has a
default)::

    scrape_interval_s: 15          # how often Prometheus scrapes each target
    evaluation_interval_s: 15      # how often it evaluates the rules
    rate_window_s: 300             # the window of every rate in rules and status (5m)
    alert_for_s: null              # one `for:` for every alert (null: each alert's own)
    for_by_alert_s: {TierwiseBreakerOpen: 60}     # `for:` of named alerts
    fallback_rate: 0.05            # share of a workload's requests that fell back past a tier
    energy_spike_factor: 2.0       # energy per inference over this many times its baseline
    energy_baseline_window_s: 3600 # the baseline's window (1h)
    hot_celsius: 80                # a node above this temperature is hot
    backlog_age_s: 600             # an outbox item older than this is a stuck backlog
    drift_alert_level: 2           # 2: alert on drift level "alert"; 1: on "warn" too
    device_drift_psi: 0.2          # a device class's PSI above this is drift
    dashboard_title: tierwise fleet
    dashboard_refresh_s: 30
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from pydantic import Field, ValidationError

from tierwise.settings_errors import SettingsModel, settings_error
from tierwise.yaml_limits import load_settings_file

__all__ = ["ObserveSettings", "load_observe_settings"]


class ObserveSettings(SettingsModel):
    """The intervals, windows and alert thresholds of the rendered files and of the
    status view (see the module docstring for each field)."""

    scrape_interval_s: float = Field(default=15.0, gt=0, le=3600)
    evaluation_interval_s: float = Field(default=15.0, gt=0, le=3600)
    rate_window_s: float = Field(default=300.0, gt=0, le=86_400)
    alert_for_s: float | None = Field(default=None, ge=0, le=86_400)
    for_by_alert_s: dict[str, float] = Field(default_factory=dict)
    fallback_rate: float = Field(default=0.05, ge=0, le=1)
    energy_spike_factor: float = Field(default=2.0, ge=0)
    energy_baseline_window_s: float = Field(default=3600.0, gt=0, le=7 * 86_400)
    hot_celsius: float = Field(default=80.0, ge=-50, le=150)
    backlog_age_s: float = Field(default=600.0, ge=0)
    drift_alert_level: int = Field(default=2, ge=1, le=2)
    device_drift_psi: float = Field(default=0.2, gt=0)
    dashboard_title: str = Field(default="tierwise fleet", min_length=1, max_length=200)
    dashboard_refresh_s: float = Field(default=30.0, gt=0, le=86_400)

    @property
    def scrape_timeout_s(self) -> float:
        """Prometheus' per-scrape limit: 10 s, or the interval when that is shorter."""
        return min(10.0, self.scrape_interval_s)


def load_observe_settings(path: Path | None, **overrides: Any) -> ObserveSettings:
    """The settings in the YAML file at ``path`` (defaults without one), with
    ``overrides`` that are not None on top. ConfigError names the file and the field."""
    data: dict[str, Any] = {}
    source = "observe settings"
    if path is not None:
        source = str(path)
        data = load_settings_file(path)
    data.update({k: v for k, v in overrides.items() if v is not None})
    try:
        return ObserveSettings.model_validate(data)
    except ValidationError as exc:
        raise settings_error(source, exc, ObserveSettings) from exc
