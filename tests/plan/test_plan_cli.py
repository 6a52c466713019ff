"""`tierwise plan` and `tierwise plan matrix` as a user runs them: real processes, exit
codes, one-line errors naming the field."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import yaml
from plan_helpers import fleet_data, host_profiles

from tierwise.bench import save_profiles

ROOT = Path(__file__).resolve().parents[2]
DIGITS = ROOT / "examples" / "fleets" / "digits.yaml"


def tierwise(*args: str, cwd: Path = ROOT) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "tierwise", *args],
        cwd=cwd, capture_output=True, text=True, timeout=300, check=False,
    )  # fmt: skip


def write_fleet(tmp_path: Path, data: dict[str, object] | None = None) -> Path:
    path = tmp_path / "fleet.yaml"
    path.write_text(yaml.safe_dump(data or fleet_data(), sort_keys=False))
    return path


def test_plan_help_explains_both_forms() -> None:
    result = tierwise("plan", "--help")
    assert result.returncode == 0
    text = " ".join(result.stdout.split())
    assert "tierwise plan SPEC --profiles profiles.json" in text
    assert "tierwise plan matrix SPEC" in text
    assert "matrix" in text
    assert "solve" in text


def test_matrix_json(tmp_path: Path) -> None:
    profiles = save_profiles(host_profiles(), tmp_path / "profiles.json")
    result = tierwise("plan", "matrix", str(write_fleet(tmp_path)), "--profiles", str(profiles),
                      "--json")  # fmt: skip
    assert result.returncode == 0, result.stderr
    doc = json.loads(result.stdout)
    assert doc["drivers"] == ["latency", "privacy", "throughput", "memory", "cost", "operations"]
    (row,) = doc["workloads"]
    assert row["recommended"] == "dev"
    assert row["tiers"][0]["cells"]["latency"]["score"] == 5


def test_matrix_table_on_an_example() -> None:
    result = tierwise("plan", "matrix", str(ROOT / "examples" / "retail-shelf.yaml"))
    assert result.returncode == 0, result.stderr
    assert "shelf-detect: recommended shelf-cam" in result.stdout
    assert "no profiles given" in result.stdout


def test_matrix_profile_for_a_variant_the_spec_lacks_exits_2(tmp_path: Path) -> None:
    doc = host_profiles().to_dict()
    doc["profiles"][1]["variant"] = "zz"  # type: ignore[index]
    bad = tmp_path / "bad.json"
    bad.write_text(json.dumps(doc))
    result = tierwise("plan", "matrix", str(write_fleet(tmp_path)), "--profiles", str(bad))
    assert result.returncode == 2
    assert result.stderr.strip() == (
        f"error: {bad}: profiles[1].variant: expected a variant the spec has (a, b), got 'zz'"
    )


def test_negative_price_exits_2_naming_the_field(tmp_path: Path) -> None:
    data = fleet_data()
    data["tiers"]["cloud"]["cost"]["on_demand_usd_per_hour"] = -1.0  # type: ignore[index]
    result = tierwise("plan", "matrix", str(write_fleet(tmp_path, data)))
    assert result.returncode == 2
    assert "tiers.cloud.cost.on_demand_usd_per_hour: expected a number >= 0, got -1.0" in (
        result.stderr
    )
    assert "Traceback" not in result.stderr
