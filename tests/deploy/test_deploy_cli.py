"""``tierwise deploy k8s`` and ``tierwise deploy systemd`` from the command line: the tree
they write, the flags that shape it, and exit code 2 with one clear line for what they
refuse."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import yaml
from deploy_helpers import ROOT, fleet_plan_yaml

DIGITS = ROOT / "examples" / "plans" / "digits.yaml"
RETAIL = ROOT / "examples" / "retail-shelf.yaml"


def tierwise(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "tierwise", *args],
        cwd=ROOT, capture_output=True, text=True, timeout=300, check=False,
    )  # fmt: skip


def test_k8s_writes_the_tree(tmp_path: Path) -> None:
    text, _ = fleet_plan_yaml(RETAIL)
    plan = tmp_path / "plan.yaml"
    plan.write_text(text)
    out = tmp_path / "k8s"
    result = tierwise(
        "deploy", "k8s", str(plan), "--spec", str(RETAIL), "-o", str(out), "--edge", "openyurt",
        "--progressive", "argo", "--image", "registry.local/tierwise:1.2.3",
        "--gate", "p99_ratio=1.2", "--json",
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    files = json.loads(result.stdout)["files"]
    assert "base/rollout-reid-cloud.yaml" in files
    assert "base/daemonset-store-edge-small-int8.yaml" in files
    overlay = yaml.safe_load((out / "overlays/production/kustomization.yaml").read_text())
    assert overlay["images"] == [
        {"name": "registry.local/tierwise", "newName": "registry.local/tierwise", "newTag": "1.2.3"}
    ]
    ds = yaml.safe_load((out / "base/daemonset-store-edge-small-int8.yaml").read_text())
    pod = ds["spec"]["template"]["spec"]
    assert pod["nodeSelector"] == {"apps.openyurt.io/nodepool": "store"}
    assert pod["containers"][0]["image"] == "registry.local/tierwise:1.2.3"
    gates = yaml.safe_load((out / "base/analysistemplate-reid-cloud-gates.yaml").read_text())
    assert gates["spec"]["metrics"][0]["successCondition"].endswith("result[0] <= 1.2")


def test_systemd_writes_unit_and_settings(tmp_path: Path) -> None:
    result = tierwise("deploy", "systemd", str(DIGITS), "--node", "box-1", "-o", str(tmp_path))
    assert result.returncode == 0, result.stderr
    assert sorted(p.name for p in tmp_path.iterdir()) == [
        "agent.yaml", "plan.yaml", "tierwise-agent-box-1.service",
    ]  # fmt: skip
    assert "wrote 3 files" in result.stdout


def test_refusals_exit_2_with_one_line(tmp_path: Path) -> None:
    bad_flag = tierwise("deploy", "k8s", str(DIGITS), "-o", str(tmp_path), "--edge", "microk8s")
    assert bad_flag.returncode == 2
    assert "edge: Input should be 'kubeedge', 'openyurt' or 'k3s'" in bad_flag.stderr
    bad_uri = tierwise("deploy", "k8s", str(DIGITS), "-o", str(tmp_path),
                       "--storage-uri", "https://x/{model}")  # fmt: skip
    assert bad_uri.returncode == 2
    assert "oci:// or s3://" in bad_uri.stderr
    no_tier = tierwise("deploy", "systemd", str(DIGITS), "--node", "b", "-o", str(tmp_path),
                       "--tier", "cloud")  # fmt: skip
    assert no_tier.returncode == 2
    last = no_tier.stderr.strip().splitlines()[-1]
    assert last.startswith("error: tiers.cloud.kind: expected edge")
    assert not list(tmp_path.iterdir())
