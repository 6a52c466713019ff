"""What the simulator is told: the plan (routes, costs, round trips, the cascades'
measured reach), the fleet spec (traffic, capacity, power) and the profiles (service
times by batch size), gathered per router tier and per workload.

- A tier's service time for a batch of ``b`` rows is the profile's p50 interpolated in
  ``b`` (scaled to the tier's hardware as the planner scales it,
  :class:`~tierwise.plan.perf.ProfileCatalog`), times a log-normal factor with the spread
  of the profile's p99 over its p50.
- Device tiers run on each device, one request at a time and without a shared queue;
  edge tiers run ``node_count x max_replicas_per_node`` servers per site, for every site
  of their place; a cloud tier with a ceiling (``max_node_count``) follows its load, a
  scale-up taking ``scale_up_s`` (:mod:`tierwise.sim.scaling`), or with ``autoscale``
  off runs as many servers as the busiest hour needs at ``target_utilization``; a cloud
  tier without a ceiling runs ``node_count`` (times replicas per node).
- Each server batches as the tier server does (``max_batch``, ``max_delay_ms``) and
  refuses past ``max_queue`` waiting requests.
- With a calibration's per-row outcomes (:mod:`tierwise.sim.rows`) each request is a
  held-out row that escalates and is answered right exactly as that row was; otherwise a
  stage escalates with the probability the plan's cascade measured
  (``expected.reach[i+1] / expected.reach[i]``), and a workload's answers are right with
  the plan's ``expected.accuracy``.
- A rehearsal on one machine may give each tier's server count (``servers``), the fixed
  time each call spends outside the model (``call_overhead_ms``: the router, HTTP and
  (de)serialisation, as measured), the server's own serial work per request and per batch
  (``per_request_ms``, ``per_batch_ms``: added to each batch's time), and the seed its link emulator
  draws round trips with (``rtt_seeds``: the simulator then draws the very same sequence).
- Energy per inference is the profile's, else the tier's active power times the service
  time; cost per inference is the plan's.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field, replace
from typing import Any, Literal

import numpy as np
from pydantic import BaseModel, ConfigDict, Field, ValidationInfo, field_validator

from tierwise.errors import ConfigError, PlanError
from tierwise.link.delay import Z99, RttModel
from tierwise.plan.perf import Estimate, ProfileCatalog
from tierwise.planfile.schema import Plan
from tierwise.router.health import BreakerSettings
from tierwise.sim.rows import CalibrationRows, RowOutcomes, workload_rows
from tierwise.sim.scaling import Scaling
from tierwise.spec import FleetSpec

__all__ = ["SimFleet", "SimSettings", "SimTier", "SimWorkload", "sim_fleet"]


class SimSettings(BaseModel):
    """How a simulation runs (see :mod:`tierwise.sim.inputs` for the servers' model)."""

    model_config = ConfigDict(extra="forbid", frozen=True, allow_inf_nan=False)

    hours: float = Field(default=24.0, gt=0, le=24 * 31)
    seed: int = Field(default=0, ge=0)
    start_hour: int = Field(default=0, ge=0, le=23, description="the local hour it starts at")
    block_s: float = Field(default=60.0, gt=0, le=3600, description="routing granularity")
    traffic_scale: float = Field(default=1.0, gt=0, le=1e6, description="x the spec's rates")
    max_batch: int = Field(default=64, ge=1, le=4096)
    max_delay_ms: float = Field(default=0.0, ge=0, le=10_000)
    max_queue: int = Field(default=512, ge=1)
    target_utilization: float = Field(default=0.7, gt=0, le=1)
    autoscale: bool = Field(
        default=True,
        description="cloud tiers with a ceiling follow their load (off: sized for the "
        "busiest hour all day)",
    )
    scale_up_s: float = Field(
        default=120.0, ge=0, le=86400,
        description="from a cloud tier's load rising to its new servers serving",
    )  # fmt: skip
    scale_down_s: float = Field(
        default=300.0, ge=0, le=86400,
        description="how long servers no longer needed stay up before they are removed",
    )  # fmt: skip
    drain_batch: int = Field(default=16, ge=1, description="outbox items delivered per round")
    spot_replace_s: float = Field(
        default=120.0, gt=0, le=86400, description="until a preempted instance is replaced"
    )
    max_requests: int = Field(default=200_000_000, ge=1, description="refuse bigger runs")
    breaker: BreakerSettings = Field(
        default_factory=BreakerSettings, description="the router's breakers (its settings)"
    )
    servers: dict[str, int] = Field(
        default_factory=dict, description="servers per plan tier, instead of the spec's"
    )
    call_overhead_ms: dict[str, float | tuple[float, ...]] = Field(
        default_factory=dict,
        description="per plan tier: each call's time outside the model (several: measured "
        "samples, each call draws one)",
    )
    rtt_seeds: dict[str, int] = Field(
        default_factory=dict, description="per plan tier: the seed of its link's round trips"
    )
    per_request_ms: dict[str, float] = Field(
        default_factory=dict,
        description="per plan tier: a server's own work per request (parsing, encoding), "
        "one request at a time, on top of the batch's compute",
    )
    per_batch_ms: dict[str, float] = Field(
        default_factory=dict,
        description="per plan tier: a server's own work per batch, on top of its compute",
    )

    @field_validator("servers")
    @classmethod
    def _some_servers(cls, value: dict[str, int]) -> dict[str, int]:
        bad = {k: v for k, v in value.items() if v < 1}
        if bad:
            raise ConfigError("servers", "at least 1 server per tier", bad)
        return value

    @field_validator("call_overhead_ms", "per_request_ms", "per_batch_ms")
    @classmethod
    def _overheads(cls, value: dict[str, Any], info: ValidationInfo) -> dict[str, Any]:
        def fine(v: float | tuple[float, ...]) -> bool:
            values = v if isinstance(v, tuple) else (v,)
            return bool(values) and all(0 <= x < 60_000 for x in values)

        bad = {k: v for k, v in value.items() if not fine(v)}
        if bad:
            raise ConfigError(str(info.field_name), "milliseconds in [0, 60000)", bad)
        return value


@dataclass(frozen=True)
class SimTier:
    """One router tier as the simulator runs it."""

    name: str
    kind: Literal["device", "edge", "cloud"]
    spec_tier: str
    variant: str
    remote: bool
    servers: int
    service_s: np.ndarray  # index b: p50 seconds of a batch of b rows (0 unused)
    sigma: float  # log-normal spread of one call's time around the p50
    rtt: RttModel
    cost_usd_per_inference: float
    energy_j_per_inference: float | None
    timeout_s: float
    #: each call's time outside the model, not holding a server (samples: one is drawn)
    overhead_s: np.ndarray = field(default_factory=lambda: np.zeros(1))
    steady_s: float = 0.0  # a server's own steady work in a one-row batch (in service_s)
    rtt_seed: int | None = None  # draw round trips as the link seeded so does
    #: how it follows its load (None: ``servers`` all the time)
    scaling: Scaling | None = None

    def throughput_per_s(self, batch: int) -> float:
        """Rows per second one server runs at batch size ``batch``."""
        b = min(batch, self.service_s.size - 1)
        return b / float(self.service_s[b])


@dataclass(frozen=True)
class SimWorkload:
    """One workload: its traffic by local hour, SLO, and each cascade stage's chance to
    escalate."""

    name: str
    hourly_rps: tuple[float, ...]
    slo_p99_ms: float | None
    escalate: dict[str, float]  # by tier: P(escalating | the stage answered)
    accuracy: float | None
    cascade: tuple[str, ...]
    rows: RowOutcomes | None = None  # per held-out row: escalations and right answers


@dataclass(frozen=True)
class SimFleet:
    plan: Plan
    spec: FleetSpec
    settings: SimSettings
    tiers: dict[str, SimTier]
    workloads: dict[str, SimWorkload]


def _service_table(estimate: Estimate, max_batch: int) -> tuple[np.ndarray, float]:
    sizes = np.array([b.batch_size for b in estimate.batches], dtype=float)
    p50 = np.array([b.p50_ms for b in estimate.batches], dtype=float) / 1000.0
    wanted = np.arange(1, max_batch + 1, dtype=float)
    table = np.interp(wanted, sizes, p50)
    if sizes[-1] < max_batch:  # past the largest measured batch: at its rows per second
        per_row = p50[-1] / sizes[-1]
        beyond = wanted > sizes[-1]
        table[beyond] = p50[-1] + (wanted[beyond] - sizes[-1]) * per_row
    single = estimate.single
    spread = (
        math.log(single.p99_ms / single.p50_ms) / Z99 if single.p99_ms > single.p50_ms > 0 else 0
    )
    return np.concatenate(([0.0], np.maximum(table, 1e-7))), spread


def _servers(
    spec: FleetSpec, spec_tier: str, kind: str, load_rps: float, tier: SimTier, utilization: float
) -> tuple[int, int]:
    """The tier's servers for a load of ``load_rps``, and the fewest it may have."""
    t = spec.tiers[spec_tier]
    capacity = t.capacity
    if kind == "device":
        return capacity.node_count, capacity.node_count
    per_node = capacity.max_replicas_per_node
    if kind == "edge":
        site = spec.sites.get(getattr(t, "site", "") or "")
        count = max(1, capacity.node_count * per_node * (site.site_count if site else 1))
        return count, count
    floor = capacity.node_count * per_node
    top = (capacity.max_node_count or capacity.node_count) * per_node
    per_server = tier.throughput_per_s(tier.service_s.size - 1) * utilization
    needed = math.ceil(load_rps / per_server) if per_server > 0 else top
    return max(floor, min(top, needed)), floor


def sim_fleet(
    plan: Plan,
    spec: FleetSpec,
    catalog: ProfileCatalog,
    settings: SimSettings,
    calibration: CalibrationRows | None = None,
) -> SimFleet:
    """Gather the simulator's view of ``plan`` on ``spec`` (see the module docstring);
    SpecError naming the tier for one the profiles cannot time, ConfigError for a
    setting that names a tier the plan's workloads do not use."""
    workloads: dict[str, SimWorkload] = {}
    models: dict[str, str] = {}
    for name, config in plan.workloads.items():
        spec_workload = spec.workloads.get(name)
        if spec_workload is None:
            continue  # a plan-only workload (a comparison): no traffic of its own
        cascade = tuple(stage.tier for stage in config.cascade)
        reach = config.expected.reach if config.expected is not None else None
        escalate: dict[str, float] = {}
        for i, tier in enumerate(cascade[:-1]):
            if reach is not None and i + 1 < len(reach) and reach[i] > 0:
                escalate[tier] = min(1.0, max(0.0, reach[i + 1] / reach[i]))
            else:
                escalate[tier] = 0.0
        escalate[cascade[-1]] = 0.0
        rates = spec_workload.traffic.hourly_requests_per_s()
        workloads[name] = SimWorkload(
            name=name,
            hourly_rps=tuple(r * settings.traffic_scale for r in rates),
            slo_p99_ms=spec_workload.slo.p99_ms if spec_workload.slo else None,
            escalate=escalate,
            accuracy=config.expected.accuracy if config.expected is not None else None,
            cascade=cascade,
            rows=workload_rows(plan, name, calibration) if calibration is not None else None,
        )
        for tier in cascade:
            models.setdefault(tier, spec_workload.model)
    for option in ("servers", "call_overhead_ms", "rtt_seeds", "per_request_ms", "per_batch_ms"):
        unknown = sorted(set(getattr(settings, option)) - set(models))
        if unknown:
            raise ConfigError(option, f"tiers the workloads use ({', '.join(models)})", unknown)
    tiers: dict[str, SimTier] = {}
    for name, model in models.items():
        tiers[name] = _tier(plan, spec, catalog, settings, name, model, workloads)
    return SimFleet(plan, spec, settings, tiers, workloads)


def _tier(
    plan: Plan,
    spec: FleetSpec,
    catalog: ProfileCatalog,
    settings: SimSettings,
    name: str,
    model: str,
    workloads: dict[str, SimWorkload],
) -> SimTier:
    config = plan.tiers[name]
    spec_tier = config.spec_tier or name
    if spec_tier not in spec.tiers:
        raise PlanError(f"tiers.{name}.spec_tier", "a tier of the fleet spec", spec_tier)
    variant = config.variant or config.model
    if variant is None:
        raise ConfigError(f"tiers.{name}.variant", "the variant the tier serves")
    spec_t = spec.tiers[spec_tier]
    estimate = catalog.estimate(model, variant, spec_t)
    if estimate is None:
        raise PlanError(
            f"tiers.{name}", f"a profile of {model}/{variant} that fits {spec_tier}", None
        )
    table, sigma = _service_table(estimate, settings.max_batch)
    per_request_s = settings.per_request_ms.get(name, 0.0) / 1000.0
    per_batch_s = settings.per_batch_ms.get(name, 0.0) / 1000.0
    table[1:] += per_batch_s + per_request_s * np.arange(1, table.size)
    energy = estimate.energy_j_per_inference
    if energy is None:
        watts = getattr(getattr(spec_t.hardware, "power", None), "active_watts", None)
        watts = watts if watts is not None else getattr(spec_t.cost, "power_watts", None)
        if watts is not None:
            energy = float(watts) * float(table[1])
    tier = SimTier(
        name=name,
        kind=spec_t.kind,
        spec_tier=spec_tier,
        variant=variant,
        remote=config.remote,
        servers=1,
        service_s=table,
        sigma=sigma,
        rtt=RttModel(config.rtt_p50_ms, max(config.rtt_p50_ms, config.rtt_p99_ms)),
        cost_usd_per_inference=config.cost_usd_per_inference,
        energy_j_per_inference=energy,
        timeout_s=config.timeout_s,
        overhead_s=np.atleast_1d(np.asarray(settings.call_overhead_ms.get(name, 0.0))) / 1000.0,
        steady_s=per_batch_s + per_request_s,
        rtt_seed=settings.rtt_seeds.get(name),
    )
    load = 0.0  # the busiest hour's requests reaching the tier
    shares: dict[str, float] = {}  # of each workload's requests, those reaching the tier
    for w in workloads.values():
        if name in w.cascade:
            share = 1.0
            for earlier in w.cascade[: w.cascade.index(name)]:
                share *= w.escalate.get(earlier, 0.0)
            shares[w.name] = share
            load += share * max(w.hourly_rps)
    if name in settings.servers:
        return replace(tier, servers=settings.servers[name])
    utilization = settings.target_utilization
    servers, floor = _servers(spec, spec_tier, spec_t.kind, load, tier, utilization)
    top = (spec_t.capacity.max_node_count or 0) * spec_t.capacity.max_replicas_per_node
    if settings.autoscale and spec_t.kind == "cloud" and top > floor:
        per_server = tier.throughput_per_s(tier.service_s.size - 1) * utilization
        return replace(tier, servers=top, scaling=Scaling(floor, per_server, shares))
    return replace(tier, servers=servers)
