"""A placement's figures: latency percentiles, capacity used and cost per month.

A placement is a cascade of stages ``(tier, variant)``, lowest tier first; a single tier
is a cascade of one. ``reach[i]`` is the fraction of requests that get to stage *i*
(1 for the first; calibration's escalation rates for the others).

Latency. A request that stops at stage *j* took every stage's compute up to *j* plus the
round trip to stage *j*'s tier (:func:`~tierwise.plan.perf.network_ms`). The percentile
*q* of the cascade is taken from the shallowest path *j* past which at most 1 - *q* of the
requests go (``reach[j + 1] <= 1 - q``), with every stage's *q* latency summed: with 3%
escalated to the cloud, the p99 includes the cloud, the p50 does not.

Capacity. Stage *i* keeps ``rate x reach[i] / rows-per-second`` replicas busy, the rate
being the workload's in each period of the day and rows per second those of the best
batch size whose p99 still fits the SLO after the stages before it.

Cost per month of a stage: its variable costs (cloud egress of the responses, edge ops per
inference, device energy when the operator pays it) plus its share of the tier, in
proportion to the capacity it uses (:meth:`~tierwise.plan.problem.TierModel.usd_per_replica_month`;
edge and device tiers by the busiest period, cloud pools period by period). Shares of
idle capacity belong to no workload; the plan's total counts them.

That is what ``tierwise plan`` shows as a workload's $/month and $/1M
(:data:`SHARE_BASIS`). ``tierwise plan matrix`` asks another question, what a tier would
cost the workload alone (:data:`ALONE_BASIS`): the same share plus the rest of an edge or
device tier's fixed cost (boxes; device updates and telemetry), which only that workload
would then be paying for. It shows both figures; they differ by that fixed cost.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from tierwise.plan.perf import Estimate, network_ms
from tierwise.plan.problem import TierModel, hours_per_month
from tierwise.spec import (
    BYTES_PER_GB,
    AnyTier,
    CloudTier,
    EdgeTier,
    FleetSpec,
    Workload,
)

__all__ = [
    "ALONE_BASIS",
    "QUANTILES",
    "SHARE_BASIS",
    "StageFigures",
    "cascade_latency_ms",
    "stage_figures",
]

#: How the plan states a workload's cost (its $/month and $/1M).
SHARE_BASIS = (
    "variable costs plus the workload's share of each tier's cost, in proportion to the"
    " capacity it keeps busy; tier costs beyond the shares are idle capacity"
)
#: How the decision matrix states a workload's cost on a tier.
ALONE_BASIS = (
    "the workload alone on the tier: the plan's share plus the rest of an edge or device"
    " tier's fixed cost (boxes; device updates and telemetry); cloud: the instance-hours"
    " it keeps busy, as the plan counts them"
)


#: SLO percentiles by name, as fractions.
QUANTILES: dict[str, float] = {"p50": 0.5, "p95": 0.95, "p99": 0.99}
_WATT_SECONDS_PER_KWH = 3_600_000.0


def _path_ms(
    spec: FleetSpec,
    workload: Workload,
    tiers: Sequence[AnyTier],
    estimates: Sequence[Estimate],
    stop: int,
    quantile: str,
) -> float:
    compute = sum(e.single.latency_ms(quantile) for e in estimates[: stop + 1])
    last = estimates[stop]
    if not last.includes_network:
        return compute + network_ms(spec, workload, tiers[stop], quantile)
    if stop == 0:
        return compute
    return compute + network_ms(spec, workload, tiers[stop - 1], quantile)


def cascade_latency_ms(
    spec: FleetSpec,
    workload: Workload,
    tiers: Sequence[AnyTier],
    estimates: Sequence[Estimate],
    reach: Sequence[float],
) -> dict[str, float]:
    """The cascade's p50, p95 and p99 in ms (module docs)."""
    out: dict[str, float] = {}
    for name, q in QUANTILES.items():
        stop = len(tiers) - 1
        for j in range(len(tiers) - 1):
            if reach[j + 1] <= 1.0 - q + 1e-12:
                stop = j
                break
        out[name] = _path_ms(spec, workload, tiers, estimates, stop, name)
    return out


@dataclass(frozen=True)
class StageFigures:
    """What one stage uses and costs: busy replicas per period, USD per month."""

    usage: tuple[float, ...]
    variable_usd_per_month: float
    usd_per_month: float  # variable + the share of the tier


def _variable_usd(
    tier: AnyTier, workload: Workload, estimate: Estimate, volume_per_month: float
) -> float:
    if isinstance(tier, CloudTier):
        gb = workload.response_bytes / BYTES_PER_GB
        return gb * tier.cost.egress_usd_per_gb * volume_per_month
    if isinstance(tier, EdgeTier):
        return tier.cost.ops_usd_per_inference * volume_per_month
    c = tier.cost
    if not c.operator_pays_energy:
        return 0.0
    watt_s = estimate.energy_j_per_inference
    if watt_s is None:
        watt_s = c.power_watts * estimate.single.mean_ms / 1000.0
    return watt_s / _WATT_SECONDS_PER_KWH * c.energy_usd_per_kwh * volume_per_month


def stage_figures(
    spec: FleetSpec,
    workload: Workload,
    tiers: Sequence[AnyTier],
    estimates: Sequence[Estimate],
    reach: Sequence[float],
    models: dict[str, TierModel],
    periods: tuple[float, ...],
    rates: Sequence[float],
) -> list[StageFigures]:
    """Usage and cost of each stage of a cascade (module docs)."""
    out: list[StageFigures] = []
    before_ms = 0.0
    volume = workload.traffic.requests_per_month
    for tier, estimate, share in zip(tiers, estimates, reach, strict=True):
        network = 0.0 if estimate.includes_network else network_ms(spec, workload, tier, "p99")
        budget = workload.slo.p99_ms - network - before_ms
        per_replica = estimate.throughput_within(budget) or estimate.single.throughput_per_s
        usage = tuple(rate * share / per_replica for rate in rates)
        model = models[tier.name]
        variable = _variable_usd(tier, workload, estimate, volume * share)
        if model.cloud:
            replica_hours = sum(u * hours_per_month(h) for u, h in zip(usage, periods, strict=True))
            capacity_usd = replica_hours * model.instance_usd_per_hour / model.capacity_replicas
        else:
            capacity_usd = max(usage, default=0.0) * model.usd_per_replica_month()
        out.append(StageFigures(usage, variable, variable + capacity_usd))
        before_ms += estimate.single.p99_ms
    return out
