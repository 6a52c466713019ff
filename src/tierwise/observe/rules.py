"""The fleet's Prometheus alerting rules, built from the queries of
:mod:`tierwise.observe.queries` with the plan's SLOs and the settings' thresholds.

Each alert is a measured query, a comparison and a threshold (:class:`AlertRule`), so a
test can ask Prometheus for the measured side alone and check that it has series:

- ``TierwiseSloBurn`` (one per workload with a p99 target): the workload's p99 over the
  rate window above its target;
- ``TierwiseFallbackSpike``: the share of a workload's requests that fell back past a tier;
- ``TierwiseDrift``: a tier server's model at drift level "alert" (``source="server"``),
  or a device class's PSI over its bound (``source="device"``);
- ``TierwiseEnergySpike``: energy per inference over ``energy_spike_factor`` times its
  baseline over a longer window;
- ``TierwiseNodeHot``: a node above ``hot_celsius``;
- ``TierwiseOutboxBacklog``: the oldest outbox item older than ``backlog_age_s``;
- ``TierwiseBreakerOpen``: a remote tier's circuit breaker open.

Every alert has ``severity`` (``critical`` or ``warning``) and ``summary`` and
``description`` annotations; ``for:`` comes from the settings (:data:`DEFAULT_FOR_S`).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from tierwise.errors import ConfigError
from tierwise.observe import queries as q
from tierwise.observe.promql import Gauge, Match, Ratio, prom_duration
from tierwise.observe.settings import ObserveSettings
from tierwise.observe.slo import WorkloadSlo

__all__ = ["ALERT_NAMES", "DEFAULT_FOR_S", "GROUP_NAME", "AlertRule", "alert_rules", "rules_file"]

#: The rule group every alert lives in.
GROUP_NAME = "tierwise"

#: How long each alert's condition must hold before it fires, unless the settings say.
DEFAULT_FOR_S: dict[str, float] = {
    "TierwiseSloBurn": 300.0,
    "TierwiseFallbackSpike": 120.0,
    "TierwiseDrift": 600.0,
    "TierwiseEnergySpike": 900.0,
    "TierwiseNodeHot": 300.0,
    "TierwiseOutboxBacklog": 300.0,
    "TierwiseBreakerOpen": 60.0,
}
#: Every alert's name.
ALERT_NAMES = tuple(DEFAULT_FOR_S)


@dataclass(frozen=True)
class AlertRule:
    """One alerting rule: ``query`` (the measured side) ``op`` ``threshold``, held ``for_s``
    seconds; ``by`` are the labels each firing series carries."""

    alert: str
    query: str
    op: str
    threshold: float
    for_s: float
    severity: str
    summary: str
    description: str
    by: tuple[str, ...]
    labels: Mapping[str, str]

    @property
    def expr(self) -> str:
        return f"{self.query} {self.op} {self.threshold:g}"

    def to_yaml(self) -> dict[str, Any]:
        """The rule as Prometheus' rule file holds it."""
        return {
            "alert": self.alert,
            "expr": self.expr,
            "for": prom_duration(self.for_s),
            "labels": {"severity": self.severity, **self.labels},
            "annotations": {"summary": self.summary, "description": self.description},
        }


def _for_s(alert: str, settings: ObserveSettings) -> float:
    if alert in settings.for_by_alert_s:
        return settings.for_by_alert_s[alert]
    if settings.alert_for_s is not None:
        return settings.alert_for_s
    return DEFAULT_FOR_S[alert]


def _check_for_names(settings: ObserveSettings) -> None:
    for name, seconds in settings.for_by_alert_s.items():
        if name not in DEFAULT_FOR_S:
            raise ConfigError("for_by_alert_s", f"one of {', '.join(ALERT_NAMES)}", name)
        if seconds < 0 or seconds > 86_400:
            raise ConfigError(f"for_by_alert_s.{name}", "seconds in [0, 86400]", seconds)


def alert_rules(
    slos: Mapping[str, WorkloadSlo], settings: ObserveSettings | None = None
) -> list[AlertRule]:
    """Every alert for a plan's workloads (their SLOs from
    :func:`~tierwise.observe.slo.workload_slos`); ConfigError for ``for_by_alert_s``
    naming an alert that does not exist."""
    settings = settings or ObserveSettings()
    _check_for_names(settings)
    window = prom_duration(settings.rate_window_s)
    span = f"over {window}"

    def rule(
        alert: str, query: str, op: str, threshold: float, severity: str,
        summary: str, description: str, by: tuple[str, ...], **labels: str,
    ) -> AlertRule:  # fmt: skip
        return AlertRule(
            alert, query, op, threshold, _for_s(alert, settings), severity,
            summary, description, by, labels,
        )  # fmt: skip

    out: list[AlertRule] = []
    for name, slo in slos.items():
        if slo.p99_s is None or slo.p99_ms is None:
            continue
        out.append(rule(
            "TierwiseSloBurn", q.workload_p99(name).promql(window), ">", slo.p99_s, "critical",
            f"{name}: p99 latency above its {slo.p99_ms:g} ms SLO",
            f"p99 of {name} {span} is {{{{ $value | humanizeDuration }}}}, over its "
            f"target of {slo.p99_ms:g} ms (from the {slo.source}).",
            ("workload",), workload=name,
        ))  # fmt: skip
    out.append(rule(
        "TierwiseFallbackSpike", q.FALLBACK_RATE.promql(window), ">", settings.fallback_rate,
        "warning", "{{ $labels.workload }}: requests falling back past {{ $labels.tier }}",
        f"{{{{ $value | humanizePercentage }}}} of {{{{ $labels.workload }}}}'s requests "
        f"{span} found tier {{{{ $labels.tier }}}} skipped or failed (bound: "
        f"{settings.fallback_rate:.0%}).",
        ("workload", "tier"),
    ))  # fmt: skip
    out.append(rule(
        "TierwiseDrift", q.DRIFT_LEVEL.promql(window), ">=", settings.drift_alert_level,
        "warning", "{{ $labels.model }} v{{ $labels.version }} on {{ $labels.tier }} drifts",
        "The inputs or answers of model {{ $labels.model }} on tier {{ $labels.tier }} "
        "moved away from its reference (drift level {{ $value }}: 1 warn, 2 alert).",
        ("tier", "model", "version"), source="server",
    ))  # fmt: skip
    device = Gauge(q.DEVICE_DRIFT.metric, q.DEVICE_DRIFT.by, (Match("test", "psi"),))
    out.append(rule(
        "TierwiseDrift", device.promql(window), ">", settings.device_drift_psi, "warning",
        "{{ $labels.workload }} drifts on {{ $labels.device_class }} devices",
        "PSI of {{ $labels.signal }} reported by {{ $labels.device_class }} devices for "
        f"{{{{ $labels.workload }}}} is {{{{ $value }}}} (bound {settings.device_drift_psi:g}).",
        device.by, source="device",
    ))  # fmt: skip
    baseline = prom_duration(settings.energy_baseline_window_s)
    spike = Ratio(q.ENERGY_PER_INFERENCE, q.energy_baseline(settings.energy_baseline_window_s),
                  guard="positive")  # fmt: skip
    out.append(rule(
        "TierwiseEnergySpike", spike.promql(window), ">", settings.energy_spike_factor,
        "warning", "{{ $labels.tier }}: energy per inference up",
        f"Energy per inference on {{{{ $labels.tier }}}} {span} is {{{{ $value }}}} times "
        f"its {baseline} baseline (bound: {settings.energy_spike_factor:g}x).",
        ("tier",),
    ))  # fmt: skip
    out.append(rule(
        "TierwiseNodeHot", q.TEMPERATURE.promql(window), ">", settings.hot_celsius, "warning",
        "{{ $labels.instance }} is hot",
        f"{{{{ $labels.instance }}}} is at {{{{ $value }}}} C, over {settings.hot_celsius:g} C.",
        ("instance",),
    ))  # fmt: skip
    out.append(rule(
        "TierwiseOutboxBacklog", q.OUTBOX_AGE.promql(window), ">", settings.backlog_age_s,
        "warning", "outbox {{ $labels.queue }} is not draining",
        "The oldest item of outbox queue {{ $labels.queue }} has waited "
        f"{{{{ $value | humanizeDuration }}}} (bound: {settings.backlog_age_s:g} s).",
        ("queue",),
    ))  # fmt: skip
    out.append(rule(
        "TierwiseBreakerOpen", q.BREAKER_OPEN.promql(window), ">", 0, "critical",
        "circuit breaker of {{ $labels.tier }} open",
        "The router stopped sending to tier {{ $labels.tier }} after repeated failures; "
        "requests fall back to the other tiers of their cascades.",
        ("tier",),
    ))  # fmt: skip
    return out


def rules_file(rules: list[AlertRule], settings: ObserveSettings | None = None) -> dict[str, Any]:
    """Prometheus' rule file (``groups:``) holding ``rules``."""
    settings = settings or ObserveSettings()
    return {
        "groups": [
            {
                "name": GROUP_NAME,
                "interval": prom_duration(settings.evaluation_interval_s),
                "rules": [r.to_yaml() for r in rules],
            }
        ]
    }
