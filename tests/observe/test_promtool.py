"""The rendered Prometheus files pass Prometheus' own checker, and every alert fires on
series that should fire it and stays quiet on series that should not (``promtool test
rules``, with unit tests written here from the rendered rules)."""

from __future__ import annotations

import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml

from binaries import require_binary
from tierwise.observe import (
    ALERT_NAMES,
    ObserveSettings,
    alert_rules,
    render_plan,
    rules_file,
    workload_slos,
    write_rendered,
)
from tierwise.planfile.schema import Plan

#: short windows so the series below can be a few dozen one-minute samples
SETTINGS = ObserveSettings(
    evaluation_interval_s=60, rate_window_s=120, alert_for_s=60, energy_baseline_window_s=600
)

_REQ = 'tierwise_router_requests_total{workload="digits",tier="edge",outcome="answered"}'
_BUCKET = 'tierwise_router_request_duration_seconds_bucket{workload="digits",le="%s"}'
_SERVED = 'tierwise_requests_total{tier="edge",model="small",version="1",outcome="success"}'
_ENERGY = 'tierwise_energy_joules_total{tier="edge",model="small",source="estimated"}'
_FALLBACKS = 'tierwise_router_fallbacks_total{workload="digits",tier="cloud",cause="error"}'
_PSI = (
    'tierwise_device_drift_score{workload="digits",device_class="phone",'
    'signal="confidence",test="%s"}'
)

#: per alert: (series that fire it, series that do not, the labels it fires with)
CASES: dict[str, tuple[dict[str, str], dict[str, str], dict[str, str]]] = {
    "TierwiseSloBurn": (
        {_BUCKET % "0.1": "0x30", _BUCKET % "0.5": "0+10x30", _BUCKET % "+Inf": "0+10x30"},
        {_BUCKET % "0.1": "0+10x30", _BUCKET % "0.5": "0+10x30", _BUCKET % "+Inf": "0+10x30"},
        {"workload": "digits", "severity": "critical"},
    ),
    "TierwiseFallbackSpike": (
        {_REQ: "0+100x30", _FALLBACKS: "0+20x30"},  # 20% fall back
        {_REQ: "0+100x30", _FALLBACKS: "0+1x30"},  # 1%
        {"workload": "digits", "tier": "cloud", "severity": "warning"},
    ),
    "TierwiseEnergySpike": (
        {_SERVED: "0+60x30", _ENERGY: "0+60x17 1080+600x12"},  # 1 J, then 10 J, each
        {_SERVED: "0+60x30", _ENERGY: "0+60x30"},
        {"tier": "edge", "severity": "warning"},
    ),
    "TierwiseNodeHot": (
        {'tierwise_agent_temperature_celsius{instance="pi-1:9100"}': "90x30"},
        {'tierwise_agent_temperature_celsius{instance="pi-1:9100"}': "50x30"},
        {"instance": "pi-1:9100", "severity": "warning"},
    ),
    "TierwiseOutboxBacklog": (
        {'tierwise_outbox_oldest_age_seconds{queue="deferred"}': "0+60x30"},
        {'tierwise_outbox_oldest_age_seconds{queue="deferred"}': "5x30"},
        {"queue": "deferred", "severity": "warning"},
    ),
    "TierwiseBreakerOpen": (
        {'tierwise_router_breaker_open{tier="cloud"}': "1x30"},
        {'tierwise_router_breaker_open{tier="cloud"}': "0x30"},
        {"tier": "cloud", "severity": "critical"},
    ),
}
#: the drift alert has two rules: a tier server's level and a device class's PSI
DRIFT_CASES = [
    ({'tierwise_drift_level{tier="edge",model="small",version="1"}': "2x30"},
     {'tierwise_drift_level{tier="edge",model="small",version="1"}': "1x30"},
     {"tier": "edge", "model": "small", "version": "1", "severity": "warning",
      "source": "server"}),
    ({_PSI % "psi": "0.5x30", _PSI % "ks": "0.01x30"},
     {_PSI % "psi": "0.05x30", _PSI % "ks": "0.9x30"},
     {"workload": "digits", "device_class": "phone", "signal": "confidence", "test": "psi",
      "severity": "warning", "source": "device"}),
]  # fmt: skip


def _group(series: dict[str, str], alert: str, fired: list[dict[str, str]]) -> dict[str, Any]:
    return {
        "interval": "1m",
        "input_series": [{"series": s, "values": v} for s, v in series.items()],
        "alert_rule_test": [
            {"eval_time": "20m", "alertname": alert,
             "exp_alerts": [{"exp_labels": labels} for labels in fired]}
        ],
    }  # fmt: skip


def _promtool_test(tmp_path: Path, plan: Plan, groups: list[dict[str, Any]]) -> None:
    promtool = require_binary("promtool", "prometheus")
    rules = rules_file(alert_rules(workload_slos(plan), SETTINGS), SETTINGS)
    # the annotations are templates of the firing value: compared labels say enough here
    for rule in rules["groups"][0]["rules"]:
        rule.pop("annotations")
    (tmp_path / "alerts.yml").write_text(yaml.safe_dump(rules, sort_keys=False))
    tests = {"rule_files": ["alerts.yml"], "evaluation_interval": "1m", "tests": groups}
    (tmp_path / "tests.yml").write_text(yaml.safe_dump(tests, sort_keys=False))
    result = subprocess.run(
        [promtool, "test", "rules", "tests.yml"], cwd=tmp_path, capture_output=True,
        text=True, timeout=60, check=False,
    )  # fmt: skip
    assert result.returncode == 0, result.stdout + result.stderr


def test_every_alert_has_a_case() -> None:
    assert set(CASES) | {"TierwiseDrift"} == set(ALERT_NAMES)


@pytest.mark.parametrize("alert", sorted(CASES))
def test_alert_fires_and_stays_quiet(tmp_path: Path, plan: Plan, alert: str) -> None:
    fires, quiet, labels = CASES[alert]
    _promtool_test(tmp_path, plan, [
        _group(fires, alert, [labels]),
        _group(quiet, alert, []),
    ])  # fmt: skip


def test_drift_fires_for_servers_and_devices_and_stays_quiet(tmp_path: Path, plan: Plan) -> None:
    groups = []
    for fires, quiet, labels in DRIFT_CASES:
        groups += [_group(fires, "TierwiseDrift", [labels]), _group(quiet, "TierwiseDrift", [])]
    _promtool_test(tmp_path, plan, groups)


def test_a_quiet_case_that_fires_fails_the_unit_test(tmp_path: Path, plan: Plan) -> None:
    """The harness itself can fail: expecting silence where the breaker is open."""
    fires, _, _ = CASES["TierwiseBreakerOpen"]
    with pytest.raises(AssertionError, match="FAILED"):
        _promtool_test(tmp_path, plan, [_group(fires, "TierwiseBreakerOpen", [])])


def test_rendered_files_pass_promtool_check(tmp_path: Path, plan: Plan) -> None:
    promtool = require_binary("promtool", "prometheus")
    rendered = render_plan(plan, SETTINGS, gateways=["http://127.0.0.1:9000"])
    write_rendered(rendered, tmp_path / "out")
    for args in (["check", "rules", "alerts.yml"], ["check", "config", "prometheus.yml"]):
        result = subprocess.run(
            [promtool, *args], cwd=tmp_path / "out", capture_output=True, text=True,
            timeout=60, check=False,
        )  # fmt: skip
        assert result.returncode == 0, result.stdout + result.stderr
        assert "SUCCESS" in result.stdout + result.stderr
