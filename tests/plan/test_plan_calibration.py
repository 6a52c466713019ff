"""Calibration curves read from `tierwise calibrate --json`, and endpoint profiles whose
latency already includes the network."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from plan_helpers import batch, fleet, host_profiles, profile_set, variant

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
    from tierwise.plan import curves_from_result
    from tierwise.router.calibrate import calibrate

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
