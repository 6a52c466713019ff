"""Tiers of the fleet (device classes, edge boxes, cloud pools), with sites and regions.

A tier is one kind of machine at one place: ``device`` (phones, laptops, cameras the
workload's data starts on), ``edge`` (boxes at a site such as a shop floor) or ``cloud``
(an instance pool in a provider region). Each carries its hardware, capacity, the network
to the next tier up and the inputs of the cost model (:mod:`tierwise.plan.cost`).

Sites and regions exist for residency: an edge tier sits at a site, a site lies in a
region, a cloud tier runs in a region. A site entry may stand for ``site_count`` identical
sites (a chain of stores); edge capacity and cost are then per site.
"""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import Field, ValidationInfo, field_validator, model_validator

from tierwise.spec.base import Name, SpecModel

__all__ = [
    "KIND_RANK",
    "AnyTier",
    "Capacity",
    "CloudCost",
    "CloudMix",
    "CloudTier",
    "DeviceCost",
    "DeviceTier",
    "EdgeCost",
    "EdgeTier",
    "Hardware",
    "Network",
    "PowerModel",
    "Region",
    "Site",
    "Tier",
    "TierKind",
]

TierKind = Literal["device", "edge", "cloud"]
#: Order of the kinds from the data's origin upwards; ``network.next_tier`` must go up.
KIND_RANK: dict[str, int] = {"device": 0, "edge": 1, "cloud": 2}

_MIX_TOLERANCE = 1e-6


class Region(SpecModel):
    """A legal/geographic region (residency ``region`` keeps data inside one)."""

    name: Name
    description: str | None = None
    provider: str | None = None  # e.g. "aws"
    provider_region: str | None = None  # e.g. "us-east-1"
    jurisdiction: str | None = None  # e.g. "US", "EU"


class Site(SpecModel):
    """A physical site (a store, a factory); ``site_count`` identical ones share the entry."""

    name: Name
    description: str | None = None
    region: Name | None = None
    site_count: int = Field(default=1, ge=1)


class PowerModel(SpecModel):
    """How much power one node draws, for energy estimates where nothing measures it.

    ``idle_watts`` is the draw with nothing running (a Raspberry Pi 5: about 3 W),
    ``active_watts`` the typical draw while a model computes (a Pi 5 with a Hailo-8L:
    about 5 W; a GPU instance: hundreds), ``peak_watts`` the most the node can draw (a
    Hailo-8: 2.5 W typical, 8.65 W peak), recorded for sizing supplies and reports.
    Energy is estimated as ``active_watts`` x the time models keep the node busy; the
    idle draw shows in the node's power but is charged to no model.
    """

    idle_watts: float = Field(default=0.0, ge=0)
    active_watts: float = Field(gt=0)
    peak_watts: float | None = Field(default=None, gt=0)

    @model_validator(mode="after")
    def _ordered(self) -> PowerModel:
        if self.active_watts < self.idle_watts:
            raise ValueError(
                f"expected active_watts >= idle_watts ({self.idle_watts:g}), "
                f"got {self.active_watts:g}"
            )
        if self.peak_watts is not None and self.peak_watts < self.active_watts:
            raise ValueError(
                f"expected peak_watts >= active_watts ({self.active_watts:g}), "
                f"got {self.peak_watts:g}"
            )
        return self

    def watts_at(self, utilization: float) -> float:
        """The draw when models keep the node busy ``utilization`` of the time (0..1):
        idle + (active - idle) x utilization."""
        share = min(max(utilization, 0.0), 1.0)
        return self.idle_watts + (self.active_watts - self.idle_watts) * share


class Hardware(SpecModel):
    """One node's hardware.

    ``speed_factor`` is the performance scaling assumption of this tier relative to the
    machine its profiles were measured on: measured throughput x speed_factor, measured
    latency / speed_factor. ``None`` means "profiles were measured on this hardware".
    ``tags`` are matched against a variant's ``hardware_tags`` (e.g. ``cuda``, ``arm64``).
    ``power`` is the node's power model (:class:`PowerModel`), when known.
    """

    cpu_cores: int = Field(ge=1)
    cpu_model: str | None = None
    memory_gib: float = Field(gt=0)
    accelerator: str | None = None  # e.g. "nvidia-a10g", "webgpu"; None = CPU only
    accelerator_memory_gib: float | None = Field(default=None, gt=0)
    tags: list[str] = Field(default_factory=list)
    speed_factor: float | None = Field(default=None, gt=0)
    power: PowerModel | None = None


class Capacity(SpecModel):
    """How many nodes a tier has (per site for edge tiers) and replicas per node."""

    node_count: int = Field(ge=1)
    max_replicas_per_node: int = Field(default=1, ge=1)
    max_node_count: int | None = Field(default=None, ge=1)  # autoscaling ceiling

    @field_validator("max_node_count")
    @classmethod
    def _ceiling_above_count(cls, value: int | None, info: ValidationInfo) -> int | None:
        count = info.data.get("node_count")
        if value is not None and count is not None and value < count:
            raise ValueError(f"expected max_node_count >= node_count ({count}), got {value}")
        return value


class Network(SpecModel):
    """The link from this tier to the next tier up (``next_tier``, when named)."""

    next_tier: Name | None = None
    rtt_p50_ms: float = Field(ge=0)
    rtt_p99_ms: float = Field(ge=0)
    bandwidth_mbps: float = Field(gt=0)

    @field_validator("rtt_p99_ms")
    @classmethod
    def _p99_above_p50(cls, value: float, info: ValidationInfo) -> float:
        p50 = info.data.get("rtt_p50_ms")
        if p50 is not None and value < p50:
            raise ValueError(f"expected rtt_p99_ms >= rtt_p50_ms ({p50:g}), got {value:g}")
        return value


class EdgeCost(SpecModel):
    """Cost inputs of one edge node; ``power_watts`` is its average draw, around the clock."""

    capex_usd: float = Field(ge=0)
    amortization_months: float = Field(gt=0)
    maintenance_usd_per_month: float = Field(ge=0)
    power_watts: float = Field(ge=0)
    energy_usd_per_kwh: float = Field(ge=0)
    connectivity_usd_per_month: float = Field(ge=0)
    ops_usd_per_inference: float = Field(default=0.0, ge=0)


class DeviceCost(SpecModel):
    """Cost inputs of one device. Idle owned compute is free: only the marginal costs count.

    ``update_usd_per_month`` and ``telemetry_usd_per_month`` are per device (model
    downloads, metrics upload). ``power_watts`` is the extra draw while inferring; it is
    charged only when ``operator_pays_energy`` (the fleet operator owns the device and pays
    its power). Capex and the rest are recorded for reports, not charged per inference.
    """

    capex_usd: float = Field(default=0.0, ge=0)
    amortization_months: float = Field(default=36.0, gt=0)
    maintenance_usd_per_month: float = Field(default=0.0, ge=0)
    power_watts: float = Field(default=0.0, ge=0)
    energy_usd_per_kwh: float = Field(default=0.0, ge=0)
    connectivity_usd_per_month: float = Field(default=0.0, ge=0)
    update_usd_per_month: float = Field(default=0.0, ge=0)
    telemetry_usd_per_month: float = Field(default=0.0, ge=0)
    operator_pays_energy: bool = False


class CloudMix(SpecModel):
    """Fractions of instance-hours bought on-demand, on spot and reserved; they sum to 1."""

    on_demand: float = Field(default=0.0, ge=0, le=1)
    spot: float = Field(default=0.0, ge=0, le=1)
    reserved: float = Field(default=0.0, ge=0, le=1)

    @model_validator(mode="after")
    def _sums_to_one(self) -> CloudMix:
        total = self.on_demand + self.spot + self.reserved
        if abs(total - 1.0) > _MIX_TOLERANCE:
            raise ValueError(
                "expected on_demand + spot + reserved = 1, got "
                f"{self.on_demand:g} + {self.spot:g} + {self.reserved:g} = {total:g}"
            )
        return self


class CloudCost(SpecModel):
    """Cost inputs of one cloud instance: prices per instance-hour, the mix, egress, fees."""

    on_demand_usd_per_hour: float = Field(ge=0)
    spot_usd_per_hour: float | None = Field(default=None, ge=0)
    reserved_usd_per_hour: float | None = Field(default=None, ge=0)
    mix: CloudMix = Field(default_factory=lambda: CloudMix(on_demand=1.0))
    egress_usd_per_gb: float = Field(ge=0)
    energy_fee_usd_per_hour: float = Field(default=0.0, ge=0)  # power/colo fee per instance

    @field_validator("mix")
    @classmethod
    def _priced(cls, mix: CloudMix, info: ValidationInfo) -> CloudMix:
        for part, price in (("spot", "spot_usd_per_hour"), ("reserved", "reserved_usd_per_hour")):
            # A price that failed its own validation is absent here and reported there.
            if getattr(mix, part) > 0 and price in info.data and info.data[price] is None:
                raise ValueError(f"{part} is {getattr(mix, part):g} but {price} is not set")
        return mix

    def blended_usd_per_hour(self) -> float:
        """The mix-weighted price of one instance-hour."""
        return (
            self.mix.on_demand * self.on_demand_usd_per_hour
            + self.mix.spot * (self.spot_usd_per_hour or 0.0)
            + self.mix.reserved * (self.reserved_usd_per_hour or 0.0)
        )


class _TierBase(SpecModel):
    name: Name
    description: str | None = None
    hardware: Hardware
    capacity: Capacity


class DeviceTier(_TierBase):
    """A class of devices where data starts (``capacity.node_count`` devices)."""

    kind: Literal["device"]
    site: Name | None = None  # where the devices are, when fixed (shelf cameras)
    region: Name | None = None
    network: Network
    cost: DeviceCost = Field(default_factory=DeviceCost)


class EdgeTier(_TierBase):
    """Edge boxes at a site (``capacity.node_count`` per site)."""

    kind: Literal["edge"]
    site: Name
    network: Network
    cost: EdgeCost


class CloudTier(_TierBase):
    """A cloud instance pool in a region; ``network`` is optional (the top of the cascade)."""

    kind: Literal["cloud"]
    region: Name
    instance_type: str | None = None  # e.g. "g5.xlarge"
    network: Network | None = None
    cost: CloudCost


#: Any one tier, for annotations and isinstance checks.
AnyTier = DeviceTier | EdgeTier | CloudTier
#: A tier as the spec reads it: the kind field says which.
Tier = Annotated[AnyTier, Field(discriminator="kind")]
