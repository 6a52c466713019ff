"""The optimizer's plan.yaml is what the router takes: it loads, and a router built from it
routes real requests to real tiers (the zoo in-process and a `tierwise serve` on
loopback)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
import yaml
from plan_helpers import curve_ab, fleet, fleet_data, host_profiles

from server_helpers import RunningServer, running_server
from tierwise.bench import MeasureSettings, profile_zoo
from tierwise.calibrate.sweep import calibrate
from tierwise.errors import PlanError
from tierwise.plan import (
    Endpoint,
    PlanSettings,
    curves_from_result,
    plan_document,
    plan_fleet,
    write_plan,
)
from tierwise.planfile.load import load_plan, parse_plan
from tierwise.router.client import Client
from tierwise.router.explain import route_explain
from tierwise.server import ServerSettings
from tierwise.spec import DAYS_PER_MONTH, SECONDS_PER_DAY, load_spec
from tierwise.zoo import load_eval

ROOT = Path(__file__).resolve().parents[2]
DIGITS = ROOT / "examples" / "fleets" / "digits.yaml"


def cascade_result():  # type: ignore[no-untyped-def]
    data = fleet_data()
    w = data["workloads"]["w"]
    w.update(min_accuracy=0.93, traffic={"requests_per_s": 1000.0}, description="the one")
    w["budget"] = {"usd_per_month": 1e5}
    data["tiers"]["dev"]["hardware"]["memory_gib"] = 0.05
    data["tiers"]["edge"]["hardware"]["memory_gib"] = 0.05
    spec = fleet(data)
    curve = curve_ab((0.04, 0.931, True))
    return spec, plan_fleet(spec, [host_profiles()], calibrations=[curve])


def test_document_of_a_cascade(tmp_path: Path) -> None:
    spec, result = cascade_result()
    (tmp_path / "a.onnx").write_bytes(b"onnx")
    doc = plan_document(
        result, spec, plan_dir=tmp_path / "plans", spec_path=tmp_path / "fleet.yaml",
        endpoints={"cloud": Endpoint("http://127.0.0.1:9", auth_header_env="CLOUD_AUTH")},
    )  # fmt: skip
    low = result.placements["w"].option.stages[0].tier
    assert doc["spec"] == "../fleet.yaml"
    assert list(doc["tiers"]) == [low, "cloud"]
    device = doc["tiers"][low]
    assert device["spec_tier"] == low
    assert device["variant"] == "a"
    cloud = doc["tiers"]["cloud"]
    assert (cloud["url"], cloud["model"], cloud["auth_header_env"]) == (
        "http://127.0.0.1:9", "b", "CLOUD_AUTH",
    )  # fmt: skip
    assert (cloud["rtt_p50_ms"], cloud["rtt_p99_ms"]) == (25.0, 60.0)
    w = doc["workloads"]["w"]
    assert w["cascade"] == [
        {"tier": low, "rule": "max_prob", "threshold": 0.5},
        {"tier": "cloud"},
    ]
    assert w["deadline_ms"] == 100.0
    assert w["budget_usd_per_period"] == 1e5
    assert w["budget_period_s"] == DAYS_PER_MONTH * SECONDS_PER_DAY
    assert w["expected"]["reach"] == [1.0, 0.04]
    assert w["expected"]["accuracy"] == 0.931
    assert w["description"] == "the one"
    # the cloud's cost per request reaching it is its share of the plan over those requests
    placement = result.placements["w"]
    per_request = placement.option.usd_per_month_by_tier["cloud"] / (
        placement.requests_per_month * 0.04
    )
    assert cloud["cost_usd_per_inference"] == pytest.approx(per_request, rel=1e-5)
    plans = tmp_path / "plans"
    plans.mkdir()
    (plans / "plan.yaml").write_text(yaml.safe_dump(doc, sort_keys=False))
    (tmp_path / "fleet.yaml").write_text(yaml.safe_dump(fleet_data(), sort_keys=False))
    plan = load_plan(plans / "plan.yaml", check_files=False)
    assert plan.tiers["cloud"].spec_tier == "cloud"
    assert plan.workloads["w"].expected is not None


def test_remote_tier_without_an_endpoint(tmp_path: Path) -> None:
    spec, result = cascade_result()
    with pytest.raises(PlanError) as info:
        plan_document(result, spec, plan_dir=tmp_path)
    assert str(info.value).startswith("tiers.cloud: expected the V2 endpoint of remote tier")


def test_device_model_must_be_a_file(tmp_path: Path) -> None:
    data = fleet_data()
    data["models"]["m"]["variants"]["a"]["uri"] = "oci://registry/a:1"
    spec = fleet(data)
    result = plan_fleet(spec, [host_profiles()])
    with pytest.raises(PlanError, match=r"models\.m\.variants\.a\.uri: expected a file path"):
        plan_document(result, spec, plan_dir=tmp_path)
    data["models"]["m"]["variants"]["a"]["uri"] = "zoo://a"
    spec = fleet(data)
    with pytest.raises(PlanError, match="--zoo"):
        plan_document(plan_fleet(spec, [host_profiles()]), spec, plan_dir=tmp_path)


def test_unknown_spec_tier_in_a_plan_is_a_problem(tmp_path: Path) -> None:
    (tmp_path / "fleet.yaml").write_text(yaml.safe_dump(fleet_data(), sort_keys=False))
    text = yaml.safe_dump(
        {
            "spec": "fleet.yaml",
            "tiers": {"x": {"spec_tier": "ghost", "kind": "cloud", "region": "r1",
                            "url": "http://h", "model": "a", "rtt_p50_ms": 1,
                            "rtt_p99_ms": 1, "cost_usd_per_inference": 0}},
            "workloads": {"w": {"cascade": [{"tier": "x"}]}},
        }
    )  # fmt: skip
    from tierwise.errors import SpecError

    with pytest.raises(SpecError, match=r"tiers\.x\.spec_tier: unknown tier 'ghost'"):
        parse_plan(text, base_dir=tmp_path, check_files=False)


@pytest.fixture(scope="module")
def digits_server(shared_zoo_dir: Path) -> Iterator[RunningServer]:
    with running_server(ServerSettings(model_repo=shared_zoo_dir)) as server:
        yield server


async def test_the_digits_plan_routes_real_requests(
    shared_zoo_dir: Path, digits_server: RunningServer, tmp_path: Path
) -> None:
    settings = MeasureSettings(batch_sizes=(1, 8), runs=10, warmup_runs=2)
    profiles = profile_zoo(shared_zoo_dir, providers=["cpu"], settings=settings)
    curve = curves_from_result(calibrate(shared_zoo_dir), "calibration")
    spec = load_spec(DIGITS)
    result = plan_fleet(spec, [profiles], calibrations=[curve], settings=PlanSettings())
    endpoints = {t: Endpoint(digits_server.url) for t in ("store-edge", "cloud")}
    path = write_plan(
        result, spec, tmp_path / "plan.yaml", spec_path=DIGITS, endpoints=endpoints,
        zoo_dir=shared_zoo_dir,
    )  # fmt: skip
    plan = load_plan(path)  # the device's model file is checked too
    assert set(plan.workloads) == set(spec.workloads)
    x, _ = load_eval(shared_zoo_dir)
    async with Client(plan) as client:
        for name, placement in result.placements.items():
            if spec.workloads[name].urgency != "interactive":
                continue
            first = plan.workloads[name].cascade[0].tier
            answered = set()
            for image in x[:20]:
                answer = await client.infer({"image": image[None]}, workload=name)
                assert answer.outputs["label"].shape == (1,)
                answered.add(plan.tiers[answer.tier or ""].spec_tier)
            assert plan.tiers[first].spec_tier in answered or len(placement.option.stages) > 1
            assert answered <= {s.tier for s in placement.option.stages}
    route, text = route_explain(path, "digits-personal")
    assert all(plan.tiers[t].kind != "cloud" for t in route.tiers)
    assert "digits-personal" in text
