"""Calibration curves read from `tierwise calibrate --json`, and endpoint profiles whose
latency already includes the network."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from plan_helpers import batch, fleet, fleet_data, host_profiles, profile_set, variant

from tierwise.errors import PlanError
from tierwise.plan import ProfileCatalog, load_calibration
from tierwise.plan.cascade import cascade_latency_ms

CALIBRATION = {
    "variants": ["a", "b"],
    "rules": {
        "max_prob": {
            "rule": "max_prob",
            "thresholds": [0.9],
            "accuracy": 0.94,
            "escalation_rates": [0.2],
            "curve": [
                {"thresholds": [0.5], "accuracy": 0.91, "escalation_rates": [0.05],
                 "cost_usd_per_million": 1.0},
                {"thresholds": [0.9], "accuracy": 0.94, "escalation_rates": [0.2],
                 "cost_usd_per_million": 2.0},
            ],
        }
    },
}  # fmt: skip


def write(tmp_path: Path, doc: object) -> Path:
    path = tmp_path / "calibration.json"
    path.write_text(json.dumps(doc))
    return path


def test_points_and_candidates(tmp_path: Path) -> None:
    curve = load_calibration(write(tmp_path, CALIBRATION))
    assert curve.variants == ("a", "b")
    assert [(p.accuracy, p.reach, p.chosen) for p in curve.points] == [
        (0.91, (1.0, 0.05), False),
        (0.94, (1.0, 0.2), False),
        (0.94, (1.0, 0.2), True),
    ]
    assert [p.accuracy for p in curve.candidates(0.92)] == [0.94, 0.94]
    assert [p.chosen for p in curve.candidates(None)] == [True]


def test_calibrate_output_of_the_real_zoo(shared_zoo_dir: Path) -> None:
    from tierwise.calibrate.sweep import calibrate
    from tierwise.plan import curves_from_result

    result = calibrate(shared_zoo_dir, variants=("tiny", "large"))
    curve = curves_from_result(result)
    assert curve.variants == ("tiny", "large")
    chosen = [p for p in curve.points if p.chosen]
    assert {p.rule for p in chosen} == set(result.rules)
    for p in curve.points:
        assert 0 <= p.escalation_rates[0] <= 1


@pytest.mark.parametrize(
    ("doc", "needle"),
    [
        ("{", "JSON from `tierwise calibrate --json`"),
        ({"variants": ["a"], "rules": {}}, "variants"),
        (
            {**CALIBRATION, "variants": ["a", "b", "c"]},
            "rules.max_prob.curve[0]: expected 2 thresholds and escalation rates",
        ),
    ],
    ids=["json", "one-variant", "stages"],
)
def test_bad_calibration_files(tmp_path: Path, doc: object, needle: str) -> None:
    path = tmp_path / "calibration.json"
    path.write_text(doc if isinstance(doc, str) else json.dumps(doc))
    with pytest.raises(PlanError) as info:
        load_calibration(path)
    assert needle in str(info.value)
    assert str(path) in str(info.value)


def test_an_endpoint_profile_already_includes_the_network() -> None:
    spec = fleet()
    measured = profile_set(
        [variant("a", [batch(1, 30.0, 100.0)], includes_network=True)], tiers=["cloud"]
    )
    catalog = ProfileCatalog(spec, [host_profiles(), measured])
    w = spec.workloads["w"]
    tiers = [spec.tiers["dev"], spec.tiers["cloud"]]
    dev = catalog.estimate("m", "a", spec.tiers["dev"])
    cloud = catalog.estimate("m", "a", spec.tiers["cloud"])
    assert dev is not None
    assert cloud is not None
    assert cloud.includes_network
    # everything escalates: dev's 8 ms, then the cloud's 30 ms measured through its
    # endpoint, round trip included, so no network is added for it
    latency = cascade_latency_ms(spec, w, tiers, [dev, cloud], [1.0, 1.0])
    assert latency["p99"] == pytest.approx(8.0 + 30.0 + 0.0)
    alone = cascade_latency_ms(spec, w, [spec.tiers["cloud"]], [cloud], [1.0])
    assert alone["p99"] == pytest.approx(30.0)


def test_an_endpoint_profile_needs_its_tiers() -> None:
    from tierwise.errors import ProfileError

    measured = profile_set([variant("a", [batch(1, 30.0, 100.0)], includes_network=True)])
    with pytest.raises(ProfileError, match=r"bench endpoint --tier NAME"):
        ProfileCatalog(fleet(), [measured])


def test_a_calibration_for_variants_the_spec_lacks_is_an_error(tmp_path: Path) -> None:
    from tierwise.plan import build_problem, check_calibrations

    spec = fleet()
    typo = load_calibration(write(tmp_path, {**CALIBRATION, "variants": ["a", "bb"]}))
    with pytest.raises(PlanError) as info:
        build_problem(spec, [host_profiles()], calibrations=[typo])
    assert str(info.value) == (
        f"{tmp_path / 'calibration.json'}: variants[1]: expected a variant of model 'm' of the"
        " spec (a, b), got 'bb'; did you mean 'b'?"
    )
    assert info.value.field.endswith("calibration.json: variants[1]")
    far = load_calibration(write(tmp_path, {**CALIBRATION, "variants": ["a", "zzz"]}))
    with pytest.raises(PlanError, match=r"got 'zzz'$"):
        check_calibrations(spec, [far])
    check_calibrations(spec, [load_calibration(write(tmp_path, CALIBRATION))])


def test_a_calibration_no_workload_can_run_is_an_error(tmp_path: Path) -> None:
    from tierwise.plan import check_calibrations

    data = fleet_data()
    data["workloads"]["w"]["tiers"] = ["cloud"]
    curve = load_calibration(write(tmp_path, CALIBRATION))
    with pytest.raises(PlanError) as info:
        check_calibrations(fleet(data), [curve])
    message = str(info.value)
    assert "calibration.json: variants: expected a workload of model 'm' that lists a tier" in (
        message
    )
    assert "got 'w' lists 1" in message
