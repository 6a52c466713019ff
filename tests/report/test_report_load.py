"""``tierwise report PLAN``: a plan made by the real planner from the demo's fleet, the zoo
profiled here and its calibration, read back into every section of the report."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import orjson
import pytest
import yaml

from tierwise.bench.profiles import ProfileSet, save_profiles
from tierwise.calibrate.sweep import CalibrationResult, calibrate
from tierwise.demo.fleet import MAIN_WORKLOAD, write_fleet
from tierwise.errors import ReportError, SpecError
from tierwise.plan import Endpoint, load_calibration, plan_fleet, write_plan
from tierwise.report import PAGE_NAME
from tierwise.report.load import PLANNED, load_report_data
from tierwise.spec import load_spec


@pytest.fixture(scope="module")
def made(
    tmp_path_factory: pytest.TempPathFactory,
    shared_zoo_dir: Path,
    digits_profiles: ProfileSet,
    shelf_costs: dict[str, float],
) -> dict[str, Path]:
    """fleet.yaml, profiles.json, calibration.json and the plan.yaml made from them."""
    root = tmp_path_factory.mktemp("made")
    fleet = write_fleet(root / "fleet.yaml")
    profiles = save_profiles(digits_profiles, root / "profiles.json")
    result: CalibrationResult = calibrate(
        shared_zoo_dir, target_accuracy=0.995, usd_per_inference=shelf_costs
    )
    calibration = root / "calibration.json"
    calibration.write_bytes(orjson.dumps(result.to_dict()))
    spec = load_spec(fleet)
    planned = plan_fleet(spec, [digits_profiles], calibrations=[load_calibration(calibration)])
    endpoints = {
        "dock-edge": Endpoint("http://127.0.0.1:1"),
        "gpu-pool": Endpoint("http://127.0.0.1:2"),
    }
    plan = write_plan(
        planned, spec, root / "plan" / "plan.yaml", spec_path=fleet, endpoints=endpoints,
        zoo_dir=shared_zoo_dir,
    )  # fmt: skip
    recorded = write_plan(
        planned, spec, root / "recorded" / "plan.yaml", spec_path=fleet, endpoints=endpoints,
        zoo_dir=shared_zoo_dir, profiles=[profiles], calibrations=[calibration],
    )  # fmt: skip
    return {"fleet": fleet, "profiles": profiles, "calibration": calibration, "plan": plan,
            "recorded": recorded}  # fmt: skip


def test_a_plan_that_records_its_inputs_needs_no_flags(made: dict[str, Path]) -> None:
    doc = yaml.safe_load(made["recorded"].read_text())
    assert doc["made_from"] == {
        "profiles": ["../profiles.json"],
        "calibrations": ["../calibration.json"],
    }
    given = load_report_data(
        made["plan"], profiles=[made["profiles"]], calibrations=[made["calibration"]]
    )
    recorded = load_report_data(made["recorded"])
    assert recorded.matrix == given.matrix
    assert recorded.cascade == given.cascade
    assert recorded.costs == given.costs


def test_every_section_follows_the_plan(made: dict[str, Path]) -> None:
    data = load_report_data(
        made["plan"], profiles=[made["profiles"]], calibrations=[made["calibration"]]
    )
    plan = yaml.safe_load(made["plan"].read_text())
    spec = load_spec(made["fleet"])
    workloads = plan["workloads"]
    spec_tier = {name: t["spec_tier"] for name, t in plan["tiers"].items()}
    assert data.title == "tierwise report: parcel-hub"
    # the matrix marks every tier a workload's placement uses
    assert data.matrix is not None
    for name, workload in workloads.items():
        used = {spec_tier[s["tier"]] for s in workload["cascade"]}
        marked = {r.tier for r in data.matrix.rows if r.workload == name and "placed" in r.verdict}
        assert marked == used, name
    # costs: what the plan expects to pay beside every listed tier
    costs = {c.workload: c for c in data.costs}
    for name, workload in workloads.items():
        assert costs[name].planned_usd_per_million == workload["expected"]["usd_per_million"]
        assert list(costs[name].usd_per_million_by_tier) == spec.workloads[name].tiers
    # latency: the planner's percentiles against the spec's SLO
    for row in data.latency:
        expected = workloads[row.workload]["expected"]
        assert row.source == PLANNED
        assert (row.p50_ms, row.p95_ms, row.p99_ms) == (
            expected["p50_ms"], expected["p95_ms"], expected["p99_ms"],
        )  # fmt: skip
        assert row.slo_p99_ms == spec.workloads[row.workload].slo.p99_ms
    # the cascade: the plan's main workload runs the calibrated three-stage cascade, and its
    # setting is marked on its rule's curve
    assert data.cascade is not None
    main = workloads[MAIN_WORKLOAD]["cascade"]
    assert len(main) == 3
    (marked,) = [c for c in data.cascade.chosen if c.label == MAIN_WORKLOAD]
    assert marked.rule == main[0]["rule"]
    assert marked.point.thresholds == pytest.approx([s["threshold"] for s in main[:-1]])
    assert marked.point.accuracy == pytest.approx(workloads[MAIN_WORKLOAD]["expected"]["accuracy"])
    assert data.cascade.oracle.cost_usd_per_million <= marked.point.cost_usd_per_million
    # the summary: one row per workload
    assert data.summary is not None
    assert [r[0] for r in data.summary.rows] == list(workloads)


def tierwise(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "tierwise", *args],
        capture_output=True, text=True, timeout=120, check=False,
    )  # fmt: skip


def test_the_report_verb_writes_the_page(made: dict[str, Path], tmp_path: Path) -> None:
    out = tmp_path / "report"
    result = tierwise(
        "report", str(made["plan"]), "-o", str(out), "--profiles", str(made["profiles"]),
        "--calibration", str(made["calibration"]), "--json",
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    doc = json.loads(result.stdout)
    assert doc["page"] == str(out / PAGE_NAME)
    assert sorted(doc["plots"]) == ["cascade", "cost", "latency", "matrix"]
    assert all(Path(p).is_file() for p in doc["plots"].values())
    assert [row["workload"] for row in doc["summary"]] == ["parcel-codes", "customs-forms"]
    # without a calibration there is no cascade plot; the page says so
    again = tierwise("report", str(made["plan"]), "-o", str(out))
    assert again.returncode == 0, again.stderr
    assert "wrote" in again.stdout
    assert not (out / "cascade.png").exists()
    assert "No data for the cascade" in (out / PAGE_NAME).read_text()


@pytest.mark.parametrize(
    ("args", "needle"),
    [
        (["missing.yaml"], "missing.yaml"),
        (["PLAN", "--calibration", "PROFILES"], "not a calibration"),
        (["PLAN", "--profiles", "CALIBRATION"], "schema"),
        (["NOSPEC"], "links no fleet spec"),
    ],
    ids=["no-plan", "profiles-as-calibration", "calibration-as-profiles", "no-spec"],
)
def test_bad_input_is_one_line_and_exit_2(
    made: dict[str, Path], tmp_path: Path, args: list[str], needle: str
) -> None:
    nospec = tmp_path / "nospec.yaml"
    doc = yaml.safe_load(made["plan"].read_text())
    doc.pop("spec")
    for tier in doc["tiers"].values():
        tier.pop("spec_tier", None)
        if "local" in tier:
            tier["local"]["model"] = str((made["plan"].parent / tier["local"]["model"]).resolve())
    nospec.write_text(yaml.safe_dump(doc))
    names = {"PLAN": made["plan"], "PROFILES": made["profiles"],
             "CALIBRATION": made["calibration"], "NOSPEC": nospec}  # fmt: skip
    argv = [str(names.get(a, tmp_path / a if a.endswith(".yaml") else a)) for a in args]
    result = tierwise("report", *argv, "-o", str(tmp_path / "out"))
    assert result.returncode == 2, result.stdout
    assert "Traceback" not in result.stderr
    assert result.stderr.startswith("error: ")
    assert needle in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1


def test_a_plan_without_spec_is_a_report_error(made: dict[str, Path], tmp_path: Path) -> None:
    plan = tmp_path / "plan.yaml"
    plan.write_text("version: 1\ntiers: {}\nworkloads: {}\n")
    with pytest.raises(SpecError, match="tiers"):
        load_report_data(plan)
    with pytest.raises(ReportError, match="not a calibration"):
        load_report_data(made["plan"], calibrations=[made["profiles"]])
