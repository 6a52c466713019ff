"""Energy per inference in the planner: from a profile measured on the tier, else the
tier's power model; charged as the device energy fee at the tier's price per kWh."""

from __future__ import annotations

import pytest
from plan_helpers import batch, fleet, fleet_data, host_profiles, profile_set

from tierwise.bench.profiles import VariantProfile
from tierwise.errors import ConfigError
from tierwise.plan import decision_matrix
from tierwise.plan.cost import device_cost, tier_cost
from tierwise.plan.perf import ProfileCatalog


def with_energy(name: str, joules: float, source: str = "measured") -> VariantProfile:
    b = batch(1, 4.0, 500.0).model_copy(update={"energy_j_per_inference": joules})
    return VariantProfile(
        variant=name, provider="CPUExecutionProvider", source="onnxruntime", batches=[b],
        energy_source=source,
    )  # fmt: skip


def test_estimates_take_energy_from_the_tier_profile_or_power_model() -> None:
    data = fleet_data()
    data["tiers"]["dev"]["hardware"]["power"] = {"idle_watts": 3.0, "active_watts": 6.0}
    spec = fleet(data)
    host = host_profiles()
    catalog = ProfileCatalog(spec, [host])
    # host "a": mean 2 ms at batch 1, half speed on dev: 4 ms x 6 W = 0.024 J
    dev = catalog.estimate("m", "a", spec.tiers["dev"])
    assert dev is not None
    assert dev.energy_j_per_inference == pytest.approx(0.024)
    assert dev.energy_source == "power model"
    # the edge box has no power model, and the host's own energy says nothing about it
    host_with_energy = profile_set([with_energy("a", 0.5)])
    edge = ProfileCatalog(spec, [host_with_energy]).estimate("m", "a", spec.tiers["edge"])
    assert edge is not None
    assert edge.energy_j_per_inference is None
    # measured on the device itself: the profile's figure wins over the power model
    on_dev = profile_set([with_energy("a", 0.01)], tiers=["dev"])
    dev = ProfileCatalog(spec, [host, on_dev]).estimate("m", "a", spec.tiers["dev"])
    assert dev is not None
    assert dev.energy_j_per_inference == pytest.approx(0.01)
    assert dev.energy_source == "profile (measured)"


def test_device_energy_fee_uses_energy_per_inference() -> None:
    kwargs = {"inferences_per_month": 100.0, "power_watts": 2.0, "busy_s_per_inference": 1.0,
              "energy_usd_per_kwh": 0.2}  # fmt: skip
    by_watts = device_cost(**kwargs, operator_pays_energy=True)  # type: ignore[arg-type]
    assert by_watts.usd_per_inference == pytest.approx(2.0 / 3.6e6 * 0.2)
    # 3,600 J per inference is 1 Wh: 0.001 kWh x $0.2
    by_joules = device_cost(  # type: ignore[arg-type]
        **kwargs, operator_pays_energy=True, energy_j_per_inference=3600.0
    )
    assert by_joules.usd_per_inference_by_component()["energy"] == pytest.approx(0.0002)
    unpaid = device_cost(**kwargs, energy_j_per_inference=3600.0)  # type: ignore[arg-type]
    assert unpaid.usd_per_inference == 0.0
    with pytest.raises(ConfigError, match="energy_j_per_inference"):
        device_cost(inferences_per_month=1.0, energy_j_per_inference=-1.0)
    spec = fleet()
    cost = tier_cost(spec, "w", "dev", energy_j_per_inference=3600.0)
    assert cost.usd_per_inference_by_component()["energy"] == 0.0  # the user pays


def _dev_usd_per_million(power: dict[str, float] | None) -> float:
    data = fleet_data()
    data["workloads"]["w"]["variants"] = {"dev": "a"}
    data["tiers"]["dev"]["cost"] = {
        "update_usd_per_month": 0.1, "power_watts": 2.0, "energy_usd_per_kwh": 0.5,
        "operator_pays_energy": True,
    }  # fmt: skip
    if power is not None:
        data["tiers"]["dev"]["hardware"]["power"] = power
    row = decision_matrix(fleet(data), [host_profiles()]).workload("w")
    return next(t for t in row.tiers if t.tier == "dev").usd_per_million


def test_the_matrix_charges_the_power_model_on_devices() -> None:
    without = _dev_usd_per_million(None)
    with_power = _dev_usd_per_million({"idle_watts": 5.0, "active_watts": 50.0})
    # 4 ms per inference on dev: 2 W -> 0.008 J, 50 W -> 0.2 J; at $0.5/kWh per 1M:
    # (0.2 - 0.008) / 3.6e6 x 0.5 x 1e6 = $0.0266667
    assert with_power - without == pytest.approx(0.192 / 3.6e6 * 0.5 * 1e6, rel=1e-6)
