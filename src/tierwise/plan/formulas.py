"""The playbook's three cost formulas on plain numbers, and the breakdown they return.

See :mod:`tierwise.plan.cost` for the formulas and conventions; this module holds their
implementation so that the spec-level functions there stay short.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from tierwise.errors import ConfigError
from tierwise.spec import BYTES_PER_GB, HOURS_PER_MONTH, TierKind

__all__ = [
    "CostBreakdown",
    "blended_usd_per_hour",
    "cloud_cost",
    "device_cost",
    "edge_cost",
    "require_fraction",
    "require_number",
]

_WATT_SECONDS_PER_KWH = 3_600_000.0
_WATTS_PER_KW = 1000.0
_MIX_TOLERANCE = 1e-6


@dataclass(frozen=True)
class CostBreakdown:
    """USD per inference on one tier, split into named components.

    ``components`` holds ``(name, usd_per_inference)`` pairs: ``on_demand``, ``spot``,
    ``reserved``, ``energy_fee``, ``egress`` for cloud; ``capex``, ``maintenance``,
    ``power``, ``connectivity``, ``ops`` for edge; ``updates``, ``telemetry``, ``energy``
    for devices. ``inferences_per_month`` is the volume the figures assume, when known.
    """

    kind: TierKind
    components: tuple[tuple[str, float], ...]
    tier: str | None = None
    inferences_per_month: float | None = None

    @property
    def usd_per_inference(self) -> float:
        """The total cost of one inference."""
        return math.fsum(usd for _, usd in self.components)

    @property
    def usd_per_million_inferences(self) -> float:
        """The total cost of a million inferences."""
        return self.usd_per_inference * 1e6

    @property
    def usd_per_month(self) -> float | None:
        """The monthly bill at ``inferences_per_month``; None when the volume is unknown."""
        if self.inferences_per_month is None:
            return None
        return self.usd_per_inference * self.inferences_per_month

    def usd_per_inference_by_component(self) -> dict[str, float]:
        """``{component: usd per inference}``."""
        return dict(self.components)

    def usd_per_million_by_component(self) -> dict[str, float]:
        """``{component: usd per million inferences}``."""
        return {name: usd * 1e6 for name, usd in self.components}


def require_number(parameter: str, value: object, *, positive: bool = False) -> float:
    """``value`` as a float, or ConfigError naming ``parameter`` and the bound."""
    bound = "a finite number > 0" if positive else "a finite number >= 0"
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
        raise ConfigError(parameter, bound, value)
    if value < 0 or (positive and value == 0):
        raise ConfigError(parameter, bound, value)
    return float(value)


def require_fraction(parameter: str, value: object, *, positive: bool = False) -> float:
    """``value`` as a float in [0, 1] (or (0, 1]), or ConfigError naming ``parameter``."""
    number = require_number(parameter, value, positive=positive)
    if number > 1:
        raise ConfigError(
            parameter, "a fraction in (0, 1]" if positive else "a fraction in [0, 1]", value
        )
    return number


def blended_usd_per_hour(
    *,
    on_demand_usd_per_hour: float,
    spot_usd_per_hour: float = 0.0,
    reserved_usd_per_hour: float = 0.0,
    on_demand_fraction: float = 1.0,
    spot_fraction: float = 0.0,
    reserved_fraction: float = 0.0,
) -> float:
    """The price of one instance-hour under a purchase mix (fractions summing to 1)."""
    return math.fsum(
        usd
        for _, usd in _mix_components(
            on_demand_usd_per_hour,
            spot_usd_per_hour,
            reserved_usd_per_hour,
            on_demand_fraction,
            spot_fraction,
            reserved_fraction,
        )
    )


def _mix_components(
    on_demand_usd_per_hour: float,
    spot_usd_per_hour: float,
    reserved_usd_per_hour: float,
    on_demand_fraction: float,
    spot_fraction: float,
    reserved_fraction: float,
) -> list[tuple[str, float]]:
    prices = {
        "on_demand": require_number("on_demand_usd_per_hour", on_demand_usd_per_hour),
        "spot": require_number("spot_usd_per_hour", spot_usd_per_hour),
        "reserved": require_number("reserved_usd_per_hour", reserved_usd_per_hour),
    }
    fractions = {
        "on_demand": require_fraction("on_demand_fraction", on_demand_fraction),
        "spot": require_fraction("spot_fraction", spot_fraction),
        "reserved": require_fraction("reserved_fraction", reserved_fraction),
    }
    total = math.fsum(fractions.values())
    if abs(total - 1.0) > _MIX_TOLERANCE:
        raise ConfigError(
            "on_demand_fraction + spot_fraction + reserved_fraction", "a sum of 1", round(total, 9)
        )
    return [(name, fractions[name] * prices[name]) for name in prices]


def cloud_cost(
    *,
    on_demand_usd_per_hour: float,
    inferences_per_hour: float,
    spot_usd_per_hour: float = 0.0,
    reserved_usd_per_hour: float = 0.0,
    on_demand_fraction: float = 1.0,
    spot_fraction: float = 0.0,
    reserved_fraction: float = 0.0,
    egress_usd_per_gb: float = 0.0,
    egress_bytes_per_inference: float = 0.0,
    energy_fee_usd_per_hour: float = 0.0,
    inferences_per_month: float | None = None,
    tier: str | None = None,
) -> CostBreakdown:
    """Cloud cost per inference: blended instance-hour (+ fee) / inferences per hour + egress.

    ``inferences_per_hour`` is what one instance serves in an hour (throughput x
    utilisation). The compute cost is split by purchase option.
    """
    per_hour = require_number("inferences_per_hour", inferences_per_hour, positive=True)
    mix = _mix_components(
        on_demand_usd_per_hour,
        spot_usd_per_hour,
        reserved_usd_per_hour,
        on_demand_fraction,
        spot_fraction,
        reserved_fraction,
    )
    fee = require_number("energy_fee_usd_per_hour", energy_fee_usd_per_hour)
    egress_gb = (
        require_number("egress_bytes_per_inference", egress_bytes_per_inference) / BYTES_PER_GB
    )
    egress = egress_gb * require_number("egress_usd_per_gb", egress_usd_per_gb)
    components = [(name, usd / per_hour) for name, usd in mix]
    components += [("energy_fee", fee / per_hour), ("egress", egress)]
    return CostBreakdown("cloud", tuple(components), tier, _volume(inferences_per_month))


def _volume(inferences_per_month: float | None) -> float | None:
    if inferences_per_month is None:
        return None
    return require_number("inferences_per_month", inferences_per_month)


def edge_cost(
    *,
    capex_usd: float,
    amortization_months: float,
    inferences_per_month: float,
    maintenance_usd_per_month: float = 0.0,
    power_watts: float = 0.0,
    energy_usd_per_kwh: float = 0.0,
    connectivity_usd_per_month: float = 0.0,
    ops_usd_per_inference: float = 0.0,
    tier: str | None = None,
) -> CostBreakdown:
    """Edge cost per inference on one node serving ``inferences_per_month``.

    (capex / amortization_months + maintenance + power + connectivity) / inferences
    + ops overhead, with power = watts x 730.5 h / 1000 x usd per kWh (a steady draw).
    """
    volume = require_number("inferences_per_month", inferences_per_month, positive=True)
    months = require_number("amortization_months", amortization_months, positive=True)
    kwh_per_month = require_number("power_watts", power_watts) * HOURS_PER_MONTH / _WATTS_PER_KW
    monthly = {
        "capex": require_number("capex_usd", capex_usd) / months,
        "maintenance": require_number("maintenance_usd_per_month", maintenance_usd_per_month),
        "power": kwh_per_month * require_number("energy_usd_per_kwh", energy_usd_per_kwh),
        "connectivity": require_number("connectivity_usd_per_month", connectivity_usd_per_month),
    }
    components = [(name, usd / volume) for name, usd in monthly.items()]
    components.append(("ops", require_number("ops_usd_per_inference", ops_usd_per_inference)))
    return CostBreakdown("edge", tuple(components), tier, volume)


def device_cost(
    *,
    inferences_per_month: float,
    update_usd_per_month: float = 0.0,
    telemetry_usd_per_month: float = 0.0,
    power_watts: float = 0.0,
    busy_s_per_inference: float = 0.0,
    energy_usd_per_kwh: float = 0.0,
    operator_pays_energy: bool = False,
    energy_j_per_inference: float | None = None,
    tier: str | None = None,
) -> CostBreakdown:
    """On-device marginal cost per inference on one device serving ``inferences_per_month``.

    Idle owned compute is free; the device's share of update and telemetry costs is
    spread over its inferences, plus the energy of each inference when
    ``operator_pays_energy``: ``energy_j_per_inference`` when known (a profile measured
    it, or the device's power model gives it), else ``power_watts`` for
    ``busy_s_per_inference``.
    """
    volume = require_number("inferences_per_month", inferences_per_month, positive=True)
    updates = require_number("update_usd_per_month", update_usd_per_month) / volume
    telemetry = require_number("telemetry_usd_per_month", telemetry_usd_per_month) / volume
    watt_seconds = require_number("power_watts", power_watts) * require_number(
        "busy_s_per_inference", busy_s_per_inference
    )
    if energy_j_per_inference is not None:
        watt_seconds = require_number("energy_j_per_inference", energy_j_per_inference)
    price = require_number("energy_usd_per_kwh", energy_usd_per_kwh)
    energy = watt_seconds / _WATT_SECONDS_PER_KWH * price if operator_pays_energy else 0.0
    components = (("updates", updates), ("telemetry", telemetry), ("energy", energy))
    return CostBreakdown("device", components, tier, volume)
