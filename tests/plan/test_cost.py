"""The cost model's three formulas against hand-computed cases.

Conventions: a month is 365.25 / 12 = 30.4375 days = 730.5 hours; a GB is 10**9 bytes.
"""

from __future__ import annotations

import math
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from tierwise.errors import ConfigError
from tierwise.plan import (
    CostBreakdown,
    blended_usd_per_hour,
    cloud_cost,
    cloud_tier_cost,
    device_cost,
    device_tier_cost,
    edge_cost,
    edge_tier_cost,
    tier_cost,
)
from tierwise.spec import (
    DAYS_PER_MONTH,
    HOURS_PER_MONTH,
    CloudTier,
    DeviceTier,
    EdgeTier,
    load_spec,
)

EXAMPLES = Path(__file__).resolve().parents[2] / "examples"


def test_month_convention() -> None:
    assert DAYS_PER_MONTH == 30.4375  # 365.25 / 12
    assert HOURS_PER_MONTH == 730.5  # 30.4375 x 24


def test_playbook_edge_example() -> None:
    # A Pi node handling 10,000 inferences a day, $150 capex over 3 years, $5/month connectivity.
    # capex per month = 150 / 36 = 4.1666...
    # per month       = 4.1666... + 5 = 9.1666...
    # inferences      = 10,000 x 30.4375 = 304,375 per month
    # per inference   = 9.1666... / 304,375 = 3.0116e-5  ($30.12 per million)
    # (with 30-day months it would be 9.1666... / 300,000 = 3.0556e-5)
    cost = edge_cost(
        capex_usd=150,
        amortization_months=36,
        connectivity_usd_per_month=5,
        inferences_per_month=10_000 * DAYS_PER_MONTH,
    )
    assert cost.usd_per_inference == pytest.approx((150 / 36 + 5) / (10_000 * 30.4375))
    assert cost.usd_per_inference == pytest.approx(3.0116e-5, rel=1e-4)
    assert cost.usd_per_million_inferences == pytest.approx(30.116, rel=1e-4)
    parts = cost.usd_per_inference_by_component()
    assert parts["capex"] == pytest.approx(4.1666667 / 304_375)
    assert parts["connectivity"] == pytest.approx(5 / 304_375)
    assert parts["power"] == parts["maintenance"] == parts["ops"] == 0.0
    # the monthly bill comes back: 9.1666...
    assert cost.usd_per_month == pytest.approx(150 / 36 + 5)


def test_edge_power_maintenance_and_ops() -> None:
    # power: 7 W x 730.5 h = 5,113.5 Wh = 5.1135 kWh; x $0.17 = $0.869295 per month
    # month: 150/36 + 2 + 0.869295 + 5 = 4.166667 + 2 + 0.869295 + 5 = 12.035962
    # 1,000,000 inferences a month: 1.2035962e-5 each, + $1e-6 ops = 1.3035962e-5
    cost = edge_cost(
        capex_usd=150,
        amortization_months=36,
        maintenance_usd_per_month=2,
        power_watts=7,
        energy_usd_per_kwh=0.17,
        connectivity_usd_per_month=5,
        ops_usd_per_inference=1e-6,
        inferences_per_month=1_000_000,
    )
    assert cost.kind == "edge"
    assert cost.usd_per_million_by_component()["power"] == pytest.approx(0.869295)
    assert cost.usd_per_inference == pytest.approx(1.3035962e-5)
    assert cost.usd_per_million_inferences == pytest.approx(13.035962)


def test_blended_hourly_price() -> None:
    # g5.xlarge: on-demand 1.006, spot 0.40, reserved 0.634; mix 20% / 70% / 10%
    # 0.2 x 1.006 + 0.7 x 0.40 + 0.1 x 0.634 = 0.2012 + 0.28 + 0.0634 = 0.5446
    blended = blended_usd_per_hour(
        on_demand_usd_per_hour=1.006,
        spot_usd_per_hour=0.40,
        reserved_usd_per_hour=0.634,
        on_demand_fraction=0.2,
        spot_fraction=0.7,
        reserved_fraction=0.1,
    )
    assert blended == pytest.approx(0.5446)
    assert blended_usd_per_hour(on_demand_usd_per_hour=0.526) == 0.526


def test_cloud_mix_with_egress_and_energy_fee() -> None:
    # blended as above: $0.5446 per instance-hour
    # 100 inferences/s at 50% utilisation = 50/s = 180,000 per instance-hour
    # compute:    0.5446 / 180,000         = 3.025556e-6
    #   on-demand 0.2012 / 180,000 = 1.117778e-6, spot 0.28 / 180,000 = 1.555556e-6,
    #   reserved  0.0634 / 180,000 = 3.522222e-7
    # energy fee: 0.05 / 180,000           = 2.777778e-7
    # egress:     4,096 B / 1e9 x $0.09    = 3.6864e-7
    # total:      3.025556e-6 + 2.777778e-7 + 3.6864e-7 = 3.671973e-6 ($3.672 per million)
    cost = cloud_cost(
        on_demand_usd_per_hour=1.006,
        spot_usd_per_hour=0.40,
        reserved_usd_per_hour=0.634,
        on_demand_fraction=0.2,
        spot_fraction=0.7,
        reserved_fraction=0.1,
        inferences_per_hour=180_000,
        egress_usd_per_gb=0.09,
        egress_bytes_per_inference=4096,
        energy_fee_usd_per_hour=0.05,
        tier="a10g",
    )
    parts = cost.usd_per_inference_by_component()
    assert list(parts) == ["on_demand", "spot", "reserved", "energy_fee", "egress"]
    assert parts["on_demand"] == pytest.approx(1.117778e-6)
    assert parts["spot"] == pytest.approx(1.555556e-6)
    assert parts["reserved"] == pytest.approx(3.522222e-7)
    assert parts["energy_fee"] == pytest.approx(2.777778e-7)
    assert parts["egress"] == pytest.approx(3.6864e-7)
    assert cost.usd_per_inference == pytest.approx(3.671973e-6)
    assert cost.usd_per_million_inferences == pytest.approx(3.671973)
    assert cost.tier == "a10g"
    assert cost.usd_per_month is None


def test_device_marginal_cost() -> None:
    # updates $0.0043 + telemetry $0.001 per device-month, 150 inferences per device-month
    # updates:   0.0043 / 150 = 2.866667e-5;  telemetry: 0.001 / 150 = 6.666667e-6
    # energy:    15 W x 0.2 s = 3 Ws = 3 / 3.6e6 kWh = 8.333333e-7 kWh x $0.17 = 1.416667e-7
    kwargs = {
        "update_usd_per_month": 0.0043,
        "telemetry_usd_per_month": 0.001,
        "power_watts": 15,
        "busy_s_per_inference": 0.2,
        "energy_usd_per_kwh": 0.17,
        "inferences_per_month": 150,
    }
    user_pays = device_cost(**kwargs)  # type: ignore[arg-type]
    assert user_pays.usd_per_inference_by_component() == pytest.approx(
        {"updates": 2.866667e-5, "telemetry": 6.666667e-6, "energy": 0.0}
    )
    operator_pays = device_cost(**kwargs, operator_pays_energy=True)  # type: ignore[arg-type]
    assert operator_pays.usd_per_inference_by_component()["energy"] == pytest.approx(1.416667e-7)
    assert operator_pays.usd_per_inference == pytest.approx(3.547500e-5, rel=1e-5)
    # idle owned compute costs nothing
    assert device_cost(inferences_per_month=1).usd_per_inference == 0.0


def test_edge_tier_cost_over_a_chain_of_stores() -> None:
    spec = load_spec(EXAMPLES / "retail-shelf.yaml")
    tier = spec.tiers["store-edge"]
    assert isinstance(tier, EdgeTier)
    workload = spec.workloads["shelf-detect"]
    # one Pi 5 per store, 40 stores:
    # per store-month: 150/36 + 2 + 7 x 730.5 / 1000 x 0.13 + 5
    #                = 4.166667 + 2 + 0.664755 + 5 = 11.831422;  x 40 = 473.256867
    # inferences:      37.3/s x 86,400 x 30.4375 = 98,091,540 per month
    # per inference:   473.256867 / 98,091,540 = 4.824645e-6
    cost = edge_tier_cost(tier, workload, site_count=40)
    assert cost.inferences_per_month == pytest.approx(98_091_540)
    assert cost.usd_per_month == pytest.approx(473.256867)
    assert cost.usd_per_inference == pytest.approx(4.824645e-6)
    assert tier_cost(spec, "shelf-detect", "store-edge") == cost
    # the edge serving only a tenth of the traffic costs ten times as much per inference
    tenth = edge_tier_cost(tier, workload, site_count=40, traffic_share=0.1)
    assert tenth.usd_per_inference == pytest.approx(10 * cost.usd_per_inference)
    # half the boxes attributed to this workload: half the cost
    half = edge_tier_cost(tier, workload, site_count=40, cost_share=0.5)
    assert half.usd_per_inference == pytest.approx(cost.usd_per_inference / 2)


def test_cloud_tier_cost_from_the_spec() -> None:
    spec = load_spec(EXAMPLES / "browser-assistant.yaml")
    tier = spec.tiers["cloud-qa"]
    assert isinstance(tier, CloudTier)
    workload = spec.workloads["public-qa"]
    # g4dn.xlarge: 0.3 x 0.526 + 0.7 x 0.331 = 0.1578 + 0.2317 = 0.3895 per hour
    # 20/s x 0.75 x 3600 = 54,000 inferences per instance-hour: 0.3895 / 54,000 = 7.212963e-6
    # egress 4,096 B x 0.09 / 1e9 = 3.6864e-7;  total 7.581603e-6
    # a fifth of 60,000 requests a day escalates: 12,000 x 30.4375 = 365,250 per month
    cost = cloud_tier_cost(
        tier, workload, throughput_per_instance_per_s=20, target_utilization=0.75, traffic_share=0.2
    )
    assert cost.usd_per_inference == pytest.approx(7.581603e-6)
    assert cost.inferences_per_month == pytest.approx(365_250)
    assert cost.usd_per_month == pytest.approx(7.581603e-6 * 365_250)
    with pytest.raises(ConfigError) as info:
        tier_cost(spec, "public-qa", "cloud-qa")
    assert info.value.parameter == "throughput_per_instance_per_s"


def test_device_tier_cost_from_the_spec() -> None:
    spec = load_spec(EXAMPLES / "browser-assistant.yaml")
    tier = spec.tiers["browser"]
    assert isinstance(tier, DeviceTier)
    # 100,000 requests a day over 20,000 browsers: 5 x 30.4375 = 152.1875 per browser-month
    # (0.0043 + 0.001) / 152.1875 = 3.482546e-5; users pay their own energy
    cost = device_tier_cost(tier, spec.workloads["page-qa"], busy_s_per_inference=0.1)
    assert cost.usd_per_inference == pytest.approx(0.0053 / 152.1875)
    assert cost.usd_per_inference_by_component()["energy"] == 0.0
    assert cost.inferences_per_month == pytest.approx(100_000 * 30.4375)


@pytest.mark.parametrize(
    ("call", "parameter"),
    [
        (
            lambda: edge_cost(capex_usd=-1, amortization_months=36, inferences_per_month=1),
            "capex_usd",
        ),
        (
            lambda: edge_cost(capex_usd=1, amortization_months=0, inferences_per_month=1),
            "amortization_months",
        ),
        (
            lambda: edge_cost(capex_usd=1, amortization_months=36, inferences_per_month=0),
            "inferences_per_month",
        ),
        (
            lambda: edge_cost(
                capex_usd=1,
                amortization_months=36,
                inferences_per_month=1,
                energy_usd_per_kwh=math.nan,
            ),
            "energy_usd_per_kwh",
        ),
        (
            lambda: cloud_cost(on_demand_usd_per_hour=1, inferences_per_hour=0),
            "inferences_per_hour",
        ),
        (
            lambda: cloud_cost(
                on_demand_usd_per_hour=1, inferences_per_hour=1, spot_usd_per_hour=-0.1
            ),
            "spot_usd_per_hour",
        ),
        (
            lambda: cloud_cost(
                on_demand_usd_per_hour=1, inferences_per_hour=1, egress_usd_per_gb=True
            ),
            "egress_usd_per_gb",
        ),
        (
            lambda: blended_usd_per_hour(on_demand_usd_per_hour=1, spot_fraction=1.5),
            "spot_fraction",
        ),
        (
            lambda: blended_usd_per_hour(
                on_demand_usd_per_hour=1, on_demand_fraction=0.5, spot_fraction=0.4
            ),
            "on_demand_fraction + spot_fraction + reserved_fraction",
        ),
        (lambda: device_cost(inferences_per_month=0), "inferences_per_month"),
        (
            lambda: device_cost(inferences_per_month=1, busy_s_per_inference=-1),
            "busy_s_per_inference",
        ),
    ],
)
def test_bad_arguments_name_the_parameter(call: object, parameter: str) -> None:
    with pytest.raises(ConfigError) as info:
        call()  # type: ignore[operator]
    assert info.value.parameter == parameter
    assert str(info.value).startswith(f"{parameter}: expected ")
    assert isinstance(info.value, ValueError)


def test_bad_shares_and_site_counts() -> None:
    spec = load_spec(EXAMPLES / "retail-shelf.yaml")
    tier = spec.tiers["store-edge"]
    assert isinstance(tier, EdgeTier)
    workload = spec.workloads["shelf-detect"]
    for kwargs, parameter in [
        ({"traffic_share": 0}, "traffic_share"),
        ({"traffic_share": 1.5}, "traffic_share"),
        ({"cost_share": -0.5}, "cost_share"),
        ({"site_count": 0}, "site_count"),
    ]:
        with pytest.raises(ConfigError) as info:
            edge_tier_cost(tier, workload, **kwargs)  # type: ignore[arg-type]
        assert info.value.parameter == parameter


def test_breakdown_is_a_value() -> None:
    cost = CostBreakdown("edge", (("capex", 1e-6), ("power", 2e-6)), "pi", 1_000)
    assert cost.usd_per_inference == pytest.approx(3e-6)
    assert cost.usd_per_million_inferences == pytest.approx(3.0)
    assert cost.usd_per_million_by_component() == pytest.approx({"capex": 1.0, "power": 2.0})
    assert cost.usd_per_month == pytest.approx(3e-3)
    assert hash(cost) == hash(
        CostBreakdown("edge", (("capex", 1e-6), ("power", 2e-6)), "pi", 1_000)
    )


prices = st.floats(min_value=0, max_value=100, allow_nan=False)


@given(
    on_demand=prices,
    spot=prices,
    reserved=prices,
    weights=st.tuples(*[st.integers(min_value=0, max_value=10)] * 3).filter(lambda w: sum(w) > 0),
)
def test_blend_lies_between_the_prices(
    on_demand: float, spot: float, reserved: float, weights: tuple[int, int, int]
) -> None:
    total = sum(weights)
    fractions = [w / total for w in weights]
    blended = blended_usd_per_hour(
        on_demand_usd_per_hour=on_demand,
        spot_usd_per_hour=spot,
        reserved_usd_per_hour=reserved,
        on_demand_fraction=fractions[0],
        spot_fraction=fractions[1],
        reserved_fraction=fractions[2],
    )
    used = [p for p, f in zip((on_demand, spot, reserved), fractions, strict=True) if f > 0]
    assert min(used) - 1e-9 <= blended <= max(used) + 1e-9


@given(volume=st.floats(min_value=1, max_value=1e12, allow_nan=False))
def test_edge_monthly_bill_does_not_depend_on_volume(volume: float) -> None:
    cost = edge_cost(
        capex_usd=150,
        amortization_months=36,
        power_watts=7,
        energy_usd_per_kwh=0.17,
        connectivity_usd_per_month=5,
        inferences_per_month=volume,
    )
    # 150/36 + 7 x 730.5 / 1000 x 0.17 + 5 = 4.166667 + 0.869295 + 5
    assert cost.usd_per_month == pytest.approx(150 / 36 + 0.869295 + 5)
