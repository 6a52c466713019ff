"""Privacy and residency semantics, origin resolution, traffic helpers and queries."""

from __future__ import annotations

import copy
from typing import Any

import pytest
from pydantic import ValidationError

from tierwise.errors import ConfigError
from tierwise.spec import (
    DAYS_PER_MONTH,
    CloudCost,
    FleetSpec,
    Slo,
    Traffic,
    allowed_tiers,
    excluded_tiers,
    get_workload,
    region_of,
    site_of,
    tiers_of_kind,
    variant_for,
    workload_origin,
    workloads_on_tier,
)

NET = {"rtt_p50_ms": 5, "rtt_p99_ms": 20, "bandwidth_mbps": 100}
HW_PI = {"cpu_cores": 4, "memory_gib": 8, "tags": ["cpu", "arm64"]}
HW_GPU = {"cpu_cores": 4, "memory_gib": 16, "accelerator_memory_gib": 24, "tags": ["cpu", "cuda"]}
EDGE_COST = {
    "capex_usd": 150,
    "amortization_months": 36,
    "maintenance_usd_per_month": 0,
    "power_watts": 7,
    "energy_usd_per_kwh": 0.17,
    "connectivity_usd_per_month": 5,
}
CLOUD_COST = {"on_demand_usd_per_hour": 1.006, "egress_usd_per_gb": 0.09}


def fleet() -> dict[str, Any]:
    """Two stores in us-east, a cloud pool in us-east and one in eu-west."""
    return {
        "regions": {"us-east": {}, "eu-west": {}},
        "sites": {"store-a": {"region": "us-east"}, "store-b": {"region": "us-east"}},
        "tiers": {
            "cam-a": {
                "kind": "device",
                "site": "store-a",
                "hardware": {"cpu_cores": 4, "memory_gib": 0.5, "tags": ["cpu", "arm64"]},
                "capacity": {"node_count": 8},
                "network": {**NET, "next_tier": "edge-a"},
            },
            "edge-a": {
                "kind": "edge",
                "site": "store-a",
                "hardware": HW_PI,
                "capacity": {"node_count": 1},
                "network": NET,
                "cost": EDGE_COST,
            },
            "edge-b": {
                "kind": "edge",
                "site": "store-b",
                "hardware": HW_PI,
                "capacity": {"node_count": 1},
                "network": NET,
                "cost": EDGE_COST,
            },
            "gpu-us": {
                "kind": "cloud",
                "region": "us-east",
                "hardware": HW_GPU,
                "capacity": {"node_count": 1},
                "cost": CLOUD_COST,
            },
            "gpu-eu": {
                "kind": "cloud",
                "region": "eu-west",
                "hardware": HW_GPU,
                "capacity": {"node_count": 1},
                "cost": CLOUD_COST,
            },
        },
        "models": {
            "det": {
                "variants": {
                    "big": {"uri": "big.onnx", "hardware_tags": ["cuda"], "size_mib": 900},
                    "small": {"uri": "small.onnx", "hardware_tags": ["arm64"], "size_mib": 10},
                    "huge-cpu": {"uri": "h.onnx", "size_mib": 20_000},
                    "too-big": {"uri": "t.onnx", "size_mib": 30_000},
                }
            }
        },
        "workloads": {
            "w": {
                "model": "det",
                "tiers": ["cam-a", "edge-a", "edge-b", "gpu-us", "gpu-eu"],
                "slo": {"p99_ms": 500},
                "traffic": {"requests_per_s": 10},
                "privacy": "public",
            }
        },
    }


def spec_with(**workload: Any) -> FleetSpec:
    data = fleet()
    data["workloads"]["w"].update(workload)
    return FleetSpec.model_validate(data)


def names(spec: FleetSpec) -> list[str]:
    return [t.name for t in allowed_tiers(spec, "w")]


@pytest.mark.parametrize(
    ("privacy", "residency", "expected"),
    [
        ("public", "any", ["cam-a", "edge-a", "edge-b", "gpu-us", "gpu-eu"]),
        ("sensitive", "any", ["cam-a"]),
        ("personal", "any", ["cam-a", "edge-a"]),
        ("public", "device", ["cam-a"]),
        ("public", "site", ["cam-a", "edge-a"]),
        ("public", "region", ["cam-a", "edge-a", "edge-b", "gpu-us"]),
        ("personal", "region", ["cam-a", "edge-a"]),
    ],
)
def test_allowed_tiers(privacy: str, residency: str, expected: list[str]) -> None:
    assert names(spec_with(privacy=privacy, residency=residency)) == expected


def test_origin_comes_from_the_device_tier() -> None:
    spec = spec_with()
    origin = workload_origin(spec, "w")
    assert (origin.site, origin.region) == ("store-a", "us-east")


def test_origin_falls_back_to_the_edge_site() -> None:
    spec = spec_with(tiers=["edge-b", "gpu-us"], privacy="personal")
    assert workload_origin(spec, "w").site == "store-b"
    assert names(spec) == ["edge-b"]
    assert excluded_tiers(spec, "w") == {
        "gpu-us": ["privacy 'personal' data may reach the site's edge but not the cloud"]
    }


def test_explicit_origin_site_wins() -> None:
    derived = spec_with(tiers=["cam-a", "edge-a", "edge-b"], privacy="personal")
    assert names(derived) == ["cam-a", "edge-a"]  # the camera is at store-a
    moved = spec_with(privacy="personal", origin_site="store-b")
    assert names(moved) == ["cam-a", "edge-b"]


def test_region_residency_from_edge_sites() -> None:
    spec = spec_with(tiers=["edge-a", "edge-b", "gpu-us", "gpu-eu"], residency="region")
    # two edge sites: no single origin site, but both sites are in us-east
    origin = workload_origin(spec, "w")
    assert (origin.site, origin.region) == (None, "us-east")
    assert names(spec) == ["edge-a", "edge-b", "gpu-us"]


def test_region_residency_without_known_origin() -> None:
    with pytest.raises(ValidationError) as info:
        spec_with(tiers=["gpu-us", "gpu-eu"], residency="region")
    assert "workloads.w.residency: no tier listed" in str(info.value)
    assert "needs the origin region; set origin_region" in str(info.value)
    spec = spec_with(tiers=["cam-a", "gpu-us", "gpu-eu"], residency="region", origin_site=None)
    assert excluded_tiers(spec, "w") == {
        "gpu-eu": [
            "residency 'region' keeps data in region 'us-east', this tier is in region 'eu-west'"
        ]
    }


def test_explicit_origin_region() -> None:
    spec = spec_with(tiers=["gpu-us", "gpu-eu"], residency="region", origin_region="eu-west")
    assert names(spec) == ["gpu-eu"]


def test_origin_site_and_region_must_agree() -> None:
    with pytest.raises(ValidationError, match="origin site 'store-a' is in region 'us-east'"):
        spec_with(origin_site="store-a", origin_region="eu-west")


def test_construction_checks_cross_references() -> None:
    data = fleet()
    data["workloads"]["w"]["tiers"].append("gpu-ap")
    with pytest.raises(ValidationError, match=r"workloads\.w\.tiers\[5\]: unknown tier 'gpu-ap'"):
        FleetSpec.model_validate(data)


def test_entries_know_their_names() -> None:
    spec = spec_with()
    assert spec.tiers["edge-a"].name == "edge-a"
    assert spec.models["det"].variants["small"].name == "small"
    assert get_workload(spec, "w").name == "w"


def test_queries() -> None:
    spec = spec_with()
    assert [t.name for t in tiers_of_kind(spec, "edge")] == ["edge-a", "edge-b"]
    assert site_of(spec, "edge-b") == spec.sites["store-b"]
    assert site_of(spec, "gpu-eu") is None
    assert region_of(spec, "edge-b") == "us-east"
    assert region_of(spec, "cam-a") == "us-east"
    assert region_of(spec, "gpu-eu") == "eu-west"
    assert [w.name for w in workloads_on_tier(spec, "gpu-us")] == ["w"]
    with pytest.raises(ConfigError, match="workload: expected one of"):
        get_workload(spec, "nope")
    with pytest.raises(ConfigError, match="kind"):
        tiers_of_kind(spec, "fog")  # type: ignore[arg-type]


def test_variant_for_picks_the_first_that_fits() -> None:
    spec = spec_with()
    assert variant_for(spec, "w", "edge-a").name == "small"  # type: ignore[union-attr]
    assert variant_for(spec, "w", "gpu-us").name == "big"  # type: ignore[union-attr]
    pinned = spec_with(variants={"gpu-us": "huge-cpu"})
    assert variant_for(pinned, "w", "gpu-us").name == "huge-cpu"  # type: ignore[union-attr]


def test_variant_too_big_for_the_tier() -> None:
    with pytest.raises(ValidationError, match="does not fit in the 24 GiB of tier 'gpu-us'"):
        spec_with(variants={"gpu-us": "too-big"})


def test_traffic_helpers() -> None:
    per_day = Traffic(requests_per_day=86_400)
    assert per_day.mean_requests_per_s == 1.0
    # 1 request/s x 86,400 s/day x 30.4375 days/month
    assert per_day.requests_per_month == pytest.approx(86_400 * 30.4375)
    assert DAYS_PER_MONTH == 30.4375
    weekly = Traffic(requests_per_week=604_800)
    assert weekly.mean_requests_per_s == pytest.approx(1.0)
    # weights 2 for 12 hours and 0 for 12: mean weight 1, so the busy hours see twice the mean
    shaped = Traffic(requests_per_s=3.0, hourly_profile=[0.0] * 12 + [2.0] * 12)
    assert shaped.hourly_requests_per_s() == [0.0] * 12 + [6.0] * 12
    assert shaped.peak_requests_per_s == 6.0
    assert Traffic(requests_per_s=3.0).hourly_requests_per_s() == [3.0] * 24


def test_traffic_and_slo_bounds() -> None:
    with pytest.raises(ValidationError, match="exactly one of requests_per_s"):
        Traffic()
    with pytest.raises(ValidationError, match="positive sum"):
        Traffic(requests_per_s=1, hourly_profile=[0.0] * 24)
    assert Slo(p99_ms=100).p50_ms is None
    with pytest.raises(ValidationError, match="expected p99_ms >= p50_ms"):
        Slo(p50_ms=200, p99_ms=100)


def test_cloud_cost_blend() -> None:
    cost = CloudCost(
        on_demand_usd_per_hour=1.0,
        spot_usd_per_hour=0.3,
        reserved_usd_per_hour=0.6,
        mix={"on_demand": 0.2, "spot": 0.5, "reserved": 0.3},  # type: ignore[arg-type]
        egress_usd_per_gb=0.09,
    )
    # 0.2 x 1.0 + 0.5 x 0.3 + 0.3 x 0.6 = 0.2 + 0.15 + 0.18 = 0.53
    assert cost.blended_usd_per_hour() == pytest.approx(0.53)


def test_spec_is_frozen() -> None:
    spec = spec_with()
    data = copy.deepcopy(spec.model_dump())
    with pytest.raises(ValidationError):
        spec.name = "other"
    assert FleetSpec.model_validate(data) == spec
