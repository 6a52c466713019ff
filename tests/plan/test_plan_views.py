"""Cost views: the plan priced under every cloud purchase mix, by hand."""

from __future__ import annotations

import pytest
from plan_helpers import fleet, fleet_data, host_profiles

from tierwise.plan import MIXES, PlanSettings, cost_views, plan_fleet
from tierwise.spec import HOURS_PER_MONTH


def cloud_plan(**cost: float):  # type: ignore[no-untyped-def]
    data = fleet_data()
    data["tiers"]["cloud"]["cost"].update(cost)
    data["workloads"]["w"]["tiers"] = ["cloud"]
    spec = fleet(data)
    return spec, plan_fleet(spec, [host_profiles()], settings=PlanSettings(mip_rel_gap=0.0))


def test_every_mix_with_and_without_the_energy_fee() -> None:
    spec, result = cloud_plan(energy_fee_usd_per_hour=0.1)
    views = cost_views(result, spec)
    assert [(s.mix, s.energy_fee) for s in views.scenarios] == [
        (m, fee) for m in MIXES for fee in (True, False)
    ]
    by = {(s.mix, s.energy_fee): s for s in views.scenarios}
    # one instance all month; on-demand $1 (the spec's mix is all on-demand), spot $0.4,
    # reserved $0.6, plus a $0.1 energy fee
    for (mix, fee), price in {
        ("spec", True): 1.1, ("spec", False): 1.0, ("on_demand", True): 1.1,
        ("spot", True): 0.5, ("spot", False): 0.4, ("reserved", True): 0.7,
        ("reserved", False): 0.6,
    }.items():  # fmt: skip
        assert by[(mix, fee)].total_usd_per_month == pytest.approx(price * HOURS_PER_MONTH)
    assert views.baseline.total_usd_per_month == pytest.approx(result.total_usd_per_month)
    # w keeps 100/s / (2,000/s per replica) = 0.05 busy replicas of 0.7 per instance
    spec_1m = by[("spec", True)].usd_per_million["w"]
    volume = result.placements["w"].requests_per_month
    assert spec_1m == pytest.approx(0.05 / 0.7 * HOURS_PER_MONTH * 1.1 / volume * 1e6)
    assert by[("spot", False)].usd_per_million["w"] == pytest.approx(spec_1m * 0.4 / 1.1)
    low, high = views.spread("w")
    assert (low, high) == (pytest.approx(spec_1m * 0.4 / 1.1), pytest.approx(spec_1m))


def test_a_missing_price_keeps_on_demand_and_says_so() -> None:
    data = fleet_data()
    del data["tiers"]["cloud"]["cost"]["spot_usd_per_hour"]
    data["workloads"]["w"]["tiers"] = ["cloud"]
    spec = fleet(data)
    result = plan_fleet(spec, [host_profiles()])
    spot = next(s for s in cost_views(result, spec).scenarios if s.mix == "spot")
    assert spot.notes == ("cloud: no spot price: on-demand",)
    assert spot.total_usd_per_month == pytest.approx(HOURS_PER_MONTH)


def test_views_without_cloud_do_not_move() -> None:
    spec = fleet()
    result = plan_fleet(spec, [host_profiles()])
    totals = [s.total_usd_per_month for s in cost_views(result, spec).scenarios]
    assert totals == [pytest.approx(result.total_usd_per_month)] * 8
