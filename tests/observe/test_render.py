"""The dashboard, the alert rules, the scrape config and ``tierwise observe render``."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import yaml
from observe_plans import write_plan
from typer.testing import CliRunner

from tierwise.cli.app import app
from tierwise.errors import ConfigError
from tierwise.observe import (
    ALERT_NAMES,
    ObserveSettings,
    alert_rules,
    load_observe_settings,
    plan_targets,
    prometheus_config,
    render_dashboard,
    render_plan,
    targets_file,
    workload_slos,
    write_rendered,
)
from tierwise.planfile.load import load_plan
from tierwise.planfile.schema import Plan

runner = CliRunner()


def _panels(dashboard: dict[str, object]) -> list[dict[str, object]]:
    return [p for p in dashboard["panels"] if p["type"] != "row"]  # type: ignore[attr-defined,index]


def test_every_panel_reads_prometheus(plan: Plan) -> None:
    dashboard = render_dashboard(workload_slos(plan))
    panels = _panels(dashboard)
    assert len(panels) >= 20
    for panel in panels:
        assert panel["targets"], panel["title"]
        for target in panel["targets"]:  # type: ignore[attr-defined]
            assert target["expr"].count("(") == target["expr"].count(")"), target["expr"]
            assert target["datasource"] == {"type": "prometheus", "uid": "${DS_PROMETHEUS}"}
            if "rate(" in target["expr"]:
                assert "[$__rate_interval]" in target["expr"] or "[1h]" in target["expr"]
    ids = [p["id"] for p in dashboard["panels"]]
    assert len(ids) == len(set(ids))
    assert dashboard["__inputs"][0]["name"] == "DS_PROMETHEUS"


def test_the_plans_slo_is_filled_in(tmp_path: Path) -> None:
    plan = load_plan(write_plan(tmp_path / "plan.yaml", slo_ms=85))
    panels = {p["title"]: p for p in _panels(render_dashboard(workload_slos(plan)))}
    digits = panels["p99 latency: digits (SLO 85 ms)"]
    steps = digits["fieldConfig"]["defaults"]["thresholds"]["steps"]  # type: ignore[index]
    assert steps[-1] == {"color": "red", "value": 0.085}
    assert [t["legendFormat"] for t in digits["targets"]] == ["p99", "SLO"]  # type: ignore[attr-defined]
    batch = panels["p99 latency: batch (no SLO set)"]
    assert len(batch["targets"]) == 1  # type: ignore[arg-type]
    assert batch["fieldConfig"]["defaults"]["thresholds"]["steps"] == [  # type: ignore[index]
        {"color": "green", "value": None}
    ]


def test_alerts_cover_the_issue_and_carry_the_slo(plan: Plan) -> None:
    rules = alert_rules(workload_slos(plan))
    assert {r.alert for r in rules} == set(ALERT_NAMES)
    (slo,) = [r for r in rules if r.alert == "TierwiseSloBurn"]  # batch has no SLO: no rule
    assert slo.labels == {"workload": "digits"}
    assert slo.expr.endswith("> 0.12")
    assert "120 ms" in slo.summary
    drift = sorted(r.labels["source"] for r in rules if r.alert == "TierwiseDrift")
    assert drift == ["device", "server"]
    for rule in rules:
        body = rule.to_yaml()
        assert body["labels"]["severity"] in ("critical", "warning")
        assert set(body["annotations"]) == {"summary", "description"}


def test_for_comes_from_the_settings(plan: Plan) -> None:
    settings = ObserveSettings(alert_for_s=30, for_by_alert_s={"TierwiseBreakerOpen": 5})
    got = {r.alert: r.to_yaml()["for"] for r in alert_rules(workload_slos(plan), settings)}
    assert got["TierwiseBreakerOpen"] == "5s"
    assert got["TierwiseNodeHot"] == "30s"
    default = {r.alert: r.to_yaml()["for"] for r in alert_rules(workload_slos(plan))}
    assert default["TierwiseSloBurn"] == "5m"
    with pytest.raises(ConfigError, match="for_by_alert_s: expected one of TierwiseSloBurn"):
        alert_rules(workload_slos(plan), ObserveSettings(for_by_alert_s={"Nope": 1}))


def test_targets_follow_the_plans_tiers(tmp_path: Path) -> None:
    plan = load_plan(write_plan(tmp_path / "p.yaml", "https://edge.local/v2root", "http://[::1]"))
    targets = plan_targets(plan, ["http://gw:9000"], ["http://pi-1:8081"])
    groups = targets_file(targets)
    assert groups[0] == {
        "targets": ["edge.local:443"],
        "labels": {"job": "tierwise-tier", "__scheme__": "https",
                   "__metrics_path__": "/v2root/metrics", "__tierwise_group": "plain",
                   "tier": "edge"},
    }  # fmt: skip
    assert groups[1]["targets"] == ["[::1]:80"]
    assert [g["labels"]["job"] for g in groups[2:]] == ["tierwise-gateway", "tierwise-agent"]
    assert all("tier" not in g["labels"] for g in groups[2:])
    with pytest.raises(ConfigError, match="--gateway: expected an http"):
        plan_targets(plan, ["gw:9000"])


def test_a_tier_with_tls_gets_its_own_job(tmp_path: Path) -> None:
    ca = tmp_path / "ca.pem"
    ca.write_text("not checked here")
    path = write_plan(tmp_path / "p.yaml", cloud="https://cloud.internal:8443")
    path.write_text(path.read_text().replace(
        "    model: large\n", f"    model: large\n    tls: {{ca: {ca}, server_name: infer}}\n"
    ))  # fmt: skip
    plan = load_plan(path, check_files=False)
    config = prometheus_config(plan_targets(plan), ObserveSettings(scrape_interval_s=5))
    assert config["global"] == {
        "scrape_interval": "5s", "scrape_timeout": "5s", "evaluation_interval": "15s"
    }  # fmt: skip
    jobs = {j["job_name"]: j for j in config["scrape_configs"]}
    assert jobs["tierwise-tls-cloud"]["tls_config"] == {"ca_file": str(ca), "server_name": "infer"}
    assert "tls_config" not in jobs["tierwise"]
    assert config["rule_files"] == ["alerts.yml"]


def test_render_writes_four_files_and_refuses_a_file_as_folder(plan: Plan, tmp_path: Path) -> None:
    rendered = render_plan(plan, gateways=["http://127.0.0.1:9000"])
    written = write_rendered(rendered, tmp_path / "out" / "deep")
    names = sorted(p.name for p in written)
    assert names == ["alerts.yml", "dashboard.json", "prometheus.yml", "targets.json"]
    assert sorted(p.name for p in (tmp_path / "out" / "deep").iterdir()) == names  # no leftovers
    assert json.loads((tmp_path / "out/deep/targets.json").read_text())[2]["targets"] == [
        "127.0.0.1:9000"
    ]
    blocker = tmp_path / "file"
    blocker.write_text("x")
    with pytest.raises(ConfigError, match="is a file"):
        write_rendered(rendered, blocker)


def test_cli_render(plan_path: Path, tmp_path: Path) -> None:
    settings = tmp_path / "observe.yaml"
    settings.write_text("scrape_interval_s: 2\nalert_for_s: 10\n")
    out = tmp_path / "out"
    gateway = ["--gateway", "http://127.0.0.1:9000"]
    args = ["observe", "render", "--plan", str(plan_path), "-o", str(out),
            "--settings", str(settings), *gateway, "--json"]  # fmt: skip
    result = runner.invoke(app, args)
    assert result.exit_code == 0, result.output
    summary = json.loads(result.stdout)
    assert summary["slos"] == {"digits": 0.12, "batch": None}
    assert len(summary["targets"]) == 3
    assert yaml.safe_load((out / "prometheus.yml").read_text())["global"]["scrape_interval"] == "2s"
    rules = yaml.safe_load((out / "alerts.yml").read_text())["groups"][0]["rules"]
    assert {r["for"] for r in rules} == {"10s"}


def test_bad_settings_name_the_field(tmp_path: Path) -> None:
    path = tmp_path / "observe.yaml"
    path.write_text("fallback_rate: 2\n")
    with pytest.raises(ConfigError, match="fallback_rate"):
        load_observe_settings(path)
    path.write_text("- a list\n")
    with pytest.raises(ConfigError, match="a mapping of settings"):
        load_observe_settings(path)
