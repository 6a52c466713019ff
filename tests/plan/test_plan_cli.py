"""`tierwise plan` and `tierwise plan matrix` as a user runs them: real processes, exit
codes, one-line errors naming the field."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
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


def test_plan_spec_is_plan_solve(tmp_path: Path) -> None:
    profiles = save_profiles(host_profiles(), tmp_path / "profiles.json")
    fleet = write_fleet(tmp_path)
    short = tierwise("plan", str(fleet), "--profiles", str(profiles), "--json")
    long = tierwise("plan", "solve", str(fleet), "--profiles", str(profiles), "--json")
    assert short.returncode == long.returncode == 0, short.stderr + long.stderr
    a, b = json.loads(short.stdout), json.loads(long.stdout)
    assert a["plan"]["placements"] == b["plan"]["placements"]
    assert a["plan"]["placements"]["w"]["placement"] == "dev/a"
    assert len(a["cost_views"]["scenarios"]) == 8
    assert a["written"] is None


def test_plan_writes_the_router_plan(tmp_path: Path) -> None:
    from tierwise.planfile.load import load_plan

    data = fleet_data()
    data["workloads"]["w"]["tiers"] = ["cloud"]  # type: ignore[index]
    profiles = save_profiles(host_profiles(), tmp_path / "profiles.json")
    out = tmp_path / "plans" / "plan.yaml"
    result = tierwise(
        "plan", str(write_fleet(tmp_path, data)), "--profiles", str(profiles),
        "--endpoint", "cloud=http://127.0.0.1:8002", "--auth-env", "cloud=CLOUD_AUTH",
        "-o", str(out),
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    assert f"wrote {out}" in result.stdout
    assert "USD per 1M inferences" in result.stdout
    plan = load_plan(out)
    assert plan.tiers["cloud"].url == "http://127.0.0.1:8002"
    assert plan.tiers["cloud"].auth_header_env == "CLOUD_AUTH"
    assert [s.tier for s in plan.workloads["w"].cascade] == ["cloud"]


def test_plan_an_slo_no_tier_can_meet_exits_2(tmp_path: Path) -> None:
    data = fleet_data()
    data["workloads"]["w"]["slo"] = {"p99_ms": 3.0}  # type: ignore[index]
    profiles = save_profiles(host_profiles(), tmp_path / "profiles.json")
    result = tierwise("plan", str(write_fleet(tmp_path, data)), "--profiles", str(profiles))
    assert result.returncode == 2
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1
    assert lines[0].startswith("error: workloads.w.slo.p99_ms: no feasible placement;")
    assert "expected slo.p99_ms >= 8, got 3" in lines[0]


@pytest.mark.parametrize(
    ("args", "needle"),
    [
        (["--endpoint", "cloud"], "--endpoint"),
        (["--endpoint", "ghost=http://h"], "expected a tier of the spec"),
        (["--max-utilization", "0"], "--max-utilization"),
        (["-o", "plan.yaml"], "tiers.cloud: expected the V2 endpoint"),
    ],
    ids=["no-url", "unknown-tier", "headroom", "missing-endpoint"],
)
def test_plan_bad_options_exit_2(tmp_path: Path, args: list[str], needle: str) -> None:
    data = fleet_data()
    data["workloads"]["w"]["tiers"] = ["cloud"]  # type: ignore[index]
    profiles = save_profiles(host_profiles(), tmp_path / "profiles.json")
    fleet = write_fleet(tmp_path, data)
    result = tierwise("plan", str(fleet), "--profiles", str(profiles), *args, cwd=tmp_path)
    assert result.returncode == 2
    assert needle in result.stderr
    assert "Traceback" not in result.stderr


def test_a_mistyped_verb_is_not_read_as_a_spec_file() -> None:
    result = tierwise("plan", "solv", str(DIGITS))
    assert result.returncode == 2
    words = " ".join(w for w in result.stderr.split() if w != "│")
    assert "no such command or spec file 'solv'; did you mean `tierwise plan solve`?" in words


def test_plan_with_a_calibration_for_an_unknown_variant_exits_2(tmp_path: Path) -> None:
    profiles = save_profiles(host_profiles(), tmp_path / "profiles.json")
    calibration = tmp_path / "calibration.json"
    calibration.write_text(json.dumps({"variants": ["a", "bb"], "rules": {}}))
    result = tierwise(
        "plan", str(write_fleet(tmp_path)), "--profiles", str(profiles),
        "--calibration", str(calibration),
    )  # fmt: skip
    assert result.returncode == 2
    assert result.stderr.strip() == (
        f"error: {calibration}: variants[1]: expected a variant of model 'm' of the spec"
        " (a, b), got 'bb'; did you mean 'b'?"
    )


def test_matrix_and_plan_state_device_cost_the_same_way(tmp_path: Path) -> None:
    """The plan charges a workload its share of the capacity it uses; the matrix prices a
    tier for the workload alone. The matrix gives both, and alone = share + what the plan
    counts as the tier's idle cost."""
    profiles = save_profiles(host_profiles(), tmp_path / "profiles.json")
    fleet = write_fleet(tmp_path)
    planned = tierwise("plan", str(fleet), "--profiles", str(profiles), "--json")
    matrix = tierwise("plan", "matrix", str(fleet), "--profiles", str(profiles), "--json")
    assert planned.returncode == matrix.returncode == 0, planned.stderr + matrix.stderr
    plan = json.loads(planned.stdout)["plan"]
    doc = json.loads(matrix.stdout)
    placement = plan["placements"]["w"]
    assert placement["placement"] == "dev/a"
    dev = next(t for t in doc["workloads"][0]["tiers"] if t["tier"] == "dev")
    assert dev["variant"] == "a"
    assert dev["usd_per_million_share"] == pytest.approx(placement["usd_per_million"])
    assert dev["fixed_usd_per_month"] == pytest.approx(1.0)  # 10 devices x $0.1 of updates
    idle = plan["tiers"]["dev"]["idle_usd_per_month"]
    assert 0 < idle < 1.0
    assert dev["usd_per_million"] == pytest.approx(
        placement["usd_per_million"] + idle / placement["requests_per_month"] * 1e6
    )
    assert "share of each tier's cost" in plan["cost_basis"]
    assert "alone on the tier" in doc["cost_basis"]["usd_per_million"]
    reason = dev["cells"]["cost"]["reason"]
    assert "alone, fixed $1.00/month included; plan share $" in reason


def test_plan_and_matrix_tables_say_what_their_costs_count(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("COLUMNS", "200")  # room for every column's header
    profiles = save_profiles(host_profiles(), tmp_path / "profiles.json")
    fleet = write_fleet(tmp_path)
    planned = tierwise("plan", str(fleet), "--profiles", str(profiles))
    matrix = tierwise("plan", "matrix", str(fleet), "--profiles", str(profiles))
    assert planned.returncode == matrix.returncode == 0, planned.stderr + matrix.stderr
    plan_text = " ".join(planned.stdout.split())
    assert "$/month, $/1M: variable costs plus the workload's share of each tier's cost" in (
        plan_text
    )
    assert "`tierwise plan matrix` prices each tier for the workload alone" in plan_text
    assert "idle $/month" in plan_text
    matrix_text = " ".join(matrix.stdout.split())
    assert "cost: USD per 1M for the workload alone on the tier" in matrix_text
    assert "'plan share' is what `tierwise plan` charges the workload there" in matrix_text
