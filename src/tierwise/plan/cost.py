"""Cost per inference on each kind of tier: the playbook's three formulas.

::

    cloud   usd/inference = (blended usd per instance-hour + energy fee per hour)
                            / inferences per instance-hour
                          + egress bytes per inference / 1e9 x usd per GB
            blended       = on_demand_fraction x on-demand price + spot_fraction x spot price
                          + reserved_fraction x reserved price
    edge    usd/inference = (capex / amortization months + maintenance + power + connectivity)
                            per node-month / inferences per node-month
                          + ops overhead per inference
            power         = watts x hours per month / 1000 x usd per kWh
    device  usd/inference = (update + telemetry) per device-month / inferences per device-month
                          + joules per inference / 3.6e6 x usd per kWh
                            (only when the operator pays the device's energy)
            joules        = energy per inference from a profile measured on the device
                            or the device's power model (hardware.power), else
                            watts x busy seconds per inference

Idle owned compute on a device costs nothing at the margin, so device capex is not charged.
A month is 365.25 / 12 = 30.4375 days (730.5 hours), a GB is 10**9 bytes.

The formula functions (:func:`cloud_cost`, :func:`edge_cost`, :func:`device_cost`) take
plain numbers; the tier functions (:func:`cloud_tier_cost`, ...) take spec models and a
workload's traffic. All return a :class:`CostBreakdown` so a report can show where the
money goes. Bad arguments raise :class:`~tierwise.errors.ConfigError` naming the parameter.
"""

from __future__ import annotations

from dataclasses import replace

from tierwise.errors import ConfigError
from tierwise.plan.formulas import (
    CostBreakdown,
    blended_usd_per_hour,
    cloud_cost,
    device_cost,
    edge_cost,
    require_fraction,
    require_number,
)
from tierwise.spec import (
    CloudTier,
    DeviceTier,
    EdgeTier,
    FleetSpec,
    Workload,
    get_tier,
    get_workload,
)

__all__ = [
    "DEFAULT_CLOUD_THROUGHPUT_PER_S",
    "CostBreakdown",
    "blended_usd_per_hour",
    "cloud_cost",
    "cloud_tier_cost",
    "device_cost",
    "device_tier_cost",
    "edge_cost",
    "edge_tier_cost",
    "tier_cost",
]

#: Inferences per second one cloud instance serves, assumed when no profile measured it.
DEFAULT_CLOUD_THROUGHPUT_PER_S = 100.0

_SECONDS_PER_HOUR = 3600.0


def _tier_volume(workload: Workload, traffic_share: float) -> float:
    share = require_fraction("traffic_share", traffic_share, positive=True)
    volume = workload.traffic.requests_per_month * share
    if volume <= 0:
        raise ConfigError(
            "workload.traffic", "a request rate > 0", workload.traffic.mean_requests_per_s
        )
    return volume


def cloud_tier_cost(
    tier: CloudTier,
    workload: Workload,
    *,
    throughput_per_instance_per_s: float,
    target_utilization: float = 1.0,
    traffic_share: float = 1.0,
) -> CostBreakdown:
    """A workload's cost per inference on a cloud tier (an autoscaled, shared pool).

    One instance serves ``throughput_per_instance_per_s x target_utilization`` inferences
    per second (throughput measured or scaled for this tier's instance type); egress is the
    workload's ``response_bytes``. ``traffic_share`` is the fraction of the workload's
    requests this tier serves (escalations in a cascade), which sets the monthly volume.
    """
    throughput = require_number(
        "throughput_per_instance_per_s", throughput_per_instance_per_s, positive=True
    )
    utilization = require_fraction("target_utilization", target_utilization, positive=True)
    cost = tier.cost
    return cloud_cost(
        on_demand_usd_per_hour=cost.on_demand_usd_per_hour,
        spot_usd_per_hour=cost.spot_usd_per_hour or 0.0,
        reserved_usd_per_hour=cost.reserved_usd_per_hour or 0.0,
        on_demand_fraction=cost.mix.on_demand,
        spot_fraction=cost.mix.spot,
        reserved_fraction=cost.mix.reserved,
        inferences_per_hour=throughput * utilization * _SECONDS_PER_HOUR,
        egress_usd_per_gb=cost.egress_usd_per_gb,
        egress_bytes_per_inference=workload.response_bytes,
        energy_fee_usd_per_hour=cost.energy_fee_usd_per_hour,
        inferences_per_month=_tier_volume(workload, traffic_share),
        tier=tier.name,
    )


def edge_tier_cost(
    tier: EdgeTier,
    workload: Workload,
    *,
    site_count: int = 1,
    traffic_share: float = 1.0,
    cost_share: float = 1.0,
) -> CostBreakdown:
    """A workload's cost per inference on an edge tier of ``node_count`` boxes per site.

    The tier's monthly cost over ``site_count`` sites, times ``cost_share`` (the part of
    the boxes attributed to this workload), is spread over the workload's monthly
    requests times ``traffic_share`` (the part this tier serves).
    """
    if isinstance(site_count, bool) or not isinstance(site_count, int) or site_count < 1:
        raise ConfigError("site_count", "a whole number >= 1", site_count)
    sites = site_count
    share = require_fraction("cost_share", cost_share, positive=True)
    volume = _tier_volume(workload, traffic_share)
    nodes = tier.capacity.node_count * sites * share
    c = tier.cost
    per_node = edge_cost(
        capex_usd=c.capex_usd,
        amortization_months=c.amortization_months,
        maintenance_usd_per_month=c.maintenance_usd_per_month,
        power_watts=c.power_watts,
        energy_usd_per_kwh=c.energy_usd_per_kwh,
        connectivity_usd_per_month=c.connectivity_usd_per_month,
        ops_usd_per_inference=c.ops_usd_per_inference,
        inferences_per_month=volume / nodes,
    )
    return replace(per_node, tier=tier.name, inferences_per_month=volume)


def device_tier_cost(
    tier: DeviceTier,
    workload: Workload,
    *,
    busy_s_per_inference: float = 0.0,
    energy_j_per_inference: float | None = None,
    traffic_share: float = 1.0,
    cost_share: float = 1.0,
) -> CostBreakdown:
    """A workload's marginal cost per inference on a device tier of ``node_count`` devices.

    ``cost_share`` is the part of each device's update and telemetry cost attributed to
    this workload; ``busy_s_per_inference`` is how long one inference keeps the device
    busy; ``energy_j_per_inference``, when known, is what one inference uses (it replaces
    the tier's ``power_watts`` x busy time).
    """
    share = require_fraction("cost_share", cost_share, positive=True)
    volume = _tier_volume(workload, traffic_share)
    c = tier.cost
    per_device = device_cost(
        update_usd_per_month=c.update_usd_per_month,
        telemetry_usd_per_month=c.telemetry_usd_per_month,
        power_watts=c.power_watts,
        busy_s_per_inference=busy_s_per_inference,
        energy_usd_per_kwh=c.energy_usd_per_kwh,
        operator_pays_energy=c.operator_pays_energy,
        energy_j_per_inference=energy_j_per_inference,
        inferences_per_month=volume / (tier.capacity.node_count * share),
    )
    return replace(per_device, tier=tier.name, inferences_per_month=volume)


def tier_cost(
    spec: FleetSpec,
    workload: Workload | str,
    tier: CloudTier | DeviceTier | EdgeTier | str,
    *,
    throughput_per_instance_per_s: float | None = None,
    target_utilization: float = 1.0,
    busy_s_per_inference: float = 0.0,
    energy_j_per_inference: float | None = None,
    traffic_share: float = 1.0,
    cost_share: float = 1.0,
) -> CostBreakdown:
    """A workload's cost per inference on any tier of ``spec``, by the tier's kind.

    Cloud tiers need ``throughput_per_instance_per_s``; edge tiers take their site's
    ``site_count`` from the spec. Other arguments are passed to the kind's function.
    """
    found = get_workload(spec, workload)
    where = get_tier(spec, tier)
    if isinstance(where, CloudTier):
        if throughput_per_instance_per_s is None:
            raise ConfigError(
                "throughput_per_instance_per_s", f"a number > 0 for cloud tier {where.name!r}"
            )
        return cloud_tier_cost(
            where,
            found,
            throughput_per_instance_per_s=throughput_per_instance_per_s,
            target_utilization=target_utilization,
            traffic_share=traffic_share,
        )
    if isinstance(where, EdgeTier):
        site = spec.sites.get(where.site)
        return edge_tier_cost(
            where,
            found,
            site_count=site.site_count if site is not None else 1,
            traffic_share=traffic_share,
            cost_share=cost_share,
        )
    return device_tier_cost(
        where,
        found,
        busy_s_per_inference=busy_s_per_inference,
        energy_j_per_inference=energy_j_per_inference,
        traffic_share=traffic_share,
        cost_share=cost_share,
    )
