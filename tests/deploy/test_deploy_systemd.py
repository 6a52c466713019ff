"""``tierwise deploy systemd``: a hardened unit that ``systemd-analyze verify`` accepts
without a word, the node's agent.yaml that the agent loads, and clear refusals."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
from deploy_helpers import example_plans

from binaries import require_binary
from tierwise.agent.settings import load_agent_settings
from tierwise.deploy import DeploySettings, render_systemd, write_tree
from tierwise.errors import ConfigError, PlanError

PLANS = example_plans()
TIERWISE = str(Path(sys.executable).with_name("tierwise"))
HARDENING = (
    "NoNewPrivileges=yes", "ProtectSystem=strict", "ProtectHome=yes", "PrivateTmp=yes",
    "DynamicUser=yes", "ReadWritePaths=/var/lib/tierwise", "Restart=on-failure",
    "CapabilityBoundingSet=", "SystemCallFilter=@system-service",
)  # fmt: skip


def _verify(unit: Path) -> subprocess.CompletedProcess[str]:
    analyze = require_binary("systemd-analyze", "systemd")
    return subprocess.run(
        [analyze, "verify", f"./{unit.name}"], cwd=unit.parent, capture_output=True,
        text=True, timeout=60, check=False,
    )  # fmt: skip


def test_unit_passes_systemd_analyze_verify(tmp_path: Path) -> None:
    plan, _ = PLANS["digits"]
    files = render_systemd(plan, "store-1-box", executable=TIERWISE)
    write_tree(files, tmp_path)
    unit = tmp_path / "tierwise-agent-store-1-box.service"
    result = _verify(unit)
    # verify warns (exit 0) about unknown keys: silence is the pass
    assert (result.returncode, result.stdout + result.stderr) == (0, "")
    text = unit.read_text()
    for line in HARDENING:
        assert line in text.splitlines(), line
    assert f"ExecStart={TIERWISE} agent --config /etc/tierwise/agent.yaml" in text
    # a misspelt option is not silent, so the check above means something
    (tmp_path / "bad.service").write_text(text.replace("ProtectSystem=", "ProtectSystm="))
    assert "Unknown key" in _verify(tmp_path / "bad.service").stderr


def test_agent_settings_load_and_name_the_node(tmp_path: Path) -> None:
    plan, _ = PLANS["retail-shelf"]
    files = render_systemd(
        plan, "store-17", DeploySettings(registry="oci://reg.local/fleet"),
        tier="store-edge-small-int8",
    )  # fmt: skip
    write_tree(files, tmp_path)
    settings = load_agent_settings(tmp_path / "agent.yaml")
    assert settings.node == "store-17"
    assert settings.labels == {"site": "store", "tier": "store-edge-small-int8"}
    assert settings.port == 9004
    assert settings.registry.store == "oci://reg.local/fleet"
    assert settings.state_dir == Path("/var/lib/tierwise")
    assert settings.gateway is not None
    assert settings.gateway.local_tiers == ["store-edge-small-int8"]
    assert settings.control_token_env == "TIERWISE_CONTROL_TOKEN"
    assert settings.thermal.source is None  # the agent's default: thermal_zone0 if present
    assert "tierwise-agent-store-17.service" in files
    zone = "/sys/class/thermal/thermal_zone2"
    other = render_systemd(plan, "store-17", DeploySettings(thermal_zone=zone),
                           tier="store-edge-small-int8")  # fmt: skip
    (tmp_path / "agent.yaml").write_text(other["agent.yaml"])
    assert load_agent_settings(tmp_path / "agent.yaml").thermal.source == Path(zone, "temp")


def test_refusals() -> None:
    retail, _ = PLANS["retail-shelf"]
    with pytest.raises(PlanError, match=r"^tier: expected one of the plan's edge tiers"):
        render_systemd(retail, "box")  # two edge tiers: which one?
    with pytest.raises(PlanError, match=r"^tiers.reid-cloud.kind: expected edge"):
        render_systemd(retail, "box", tier="reid-cloud")
    with pytest.raises(ConfigError, match=r"^node: expected a node name"):
        render_systemd(retail, "box/../x", tier="store-edge-small-int8")
    with pytest.raises(ConfigError, match=r"^executable: expected an absolute path"):
        render_systemd(retail, "box", tier="store-edge-small-int8", executable="tierwise")
    batch, _ = PLANS["batch-summarization"]
    with pytest.raises(PlanError, match=r"edge tiers \[\]"):
        render_systemd(batch, "box")
