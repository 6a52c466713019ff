"""What a variant does on a tier: latency, throughput, memory and accuracy from profiles,
and the network between a workload's data and the tier.

Profiles come from ``tierwise bench profile`` / ``tierwise bench endpoint``
(:mod:`tierwise.bench.profiles`). For a tier and a variant the estimate is, in order:

1. a profile measured on the tier's own hardware (its profile set lists the tier in
   ``tiers``), used as measured;
2. else a profile of the profiling host (a set listing no tiers), scaled by the tier's
   ``hardware.speed_factor`` *f*: latency / *f*, throughput x *f* (no factor: *f* = 1,
   the tier is the profiling host's hardware).

Energy per inference: the profile's figure when it was measured on the tier's own
hardware; else, when the tier's hardware has a power model, its ``active_watts`` x the
estimated mean time of one call / the rows of that call; else unknown (the host's
energy says nothing about another machine's).

Among several usable profiles (one per execution provider) the fastest at batch 1 wins. A
provider is usable on a tier when it needs nothing the tier lacks: CUDA and TensorRT need
the hardware tag ``cuda``, ROCm ``rocm``, CoreML ``coreml``, OpenVINO ``openvino``; CPU
profiles run anywhere.

Network: requests travel up from the workload's first listed tier (where its data starts)
through its listed tiers below the target, each hop costing the round trip of the lower
tier's ``network`` (p50 and p99; p95 is taken as the p99, to be safe). A profile measured
through an endpoint already includes a round trip, so none is added for its tier.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from tierwise.bench.profiles import ProfileSet, VariantProfile
from tierwise.errors import ProfileError
from tierwise.spec import KIND_RANK, AnyTier, FleetSpec, Workload

__all__ = [
    "BatchEstimate",
    "Estimate",
    "ProfileCatalog",
    "network_ms",
    "speed_factor",
]

Quantile = str  # "p50" | "p95" | "p99"

_PROVIDER_TAGS: dict[str, str] = {
    "CUDAExecutionProvider": "cuda",
    "TensorrtExecutionProvider": "cuda",
    "ROCMExecutionProvider": "rocm",
    "CoreMLExecutionProvider": "coreml",
    "OpenVINOExecutionProvider": "openvino",
}


def speed_factor(tier: AnyTier) -> float:
    """The tier's speed relative to the profiling host (1 when the spec gives none)."""
    return tier.hardware.speed_factor or 1.0


@dataclass(frozen=True)
class BatchEstimate:
    """One batch size on one tier: latency per call (ms) and rows/s of one replica."""

    batch_size: int
    p50_ms: float
    p95_ms: float
    p99_ms: float
    mean_ms: float
    throughput_per_s: float

    def latency_ms(self, quantile: Quantile) -> float:
        return {"p50": self.p50_ms, "p95": self.p95_ms, "p99": self.p99_ms}[quantile]


@dataclass(frozen=True)
class Estimate:
    """A variant on a tier, as measured there or scaled from the profiling host."""

    tier: str
    variant: str
    batches: tuple[BatchEstimate, ...]
    accuracy: float | None
    peak_memory_mib: float | None
    includes_network: bool
    provider: str
    source: str  # e.g. "measured on tier 'store-edge'" or "host 'vm' x0.6 (speed_factor)"
    #: joules of one inference (module docs), and where the figure comes from
    energy_j_per_inference: float | None = None
    energy_source: str | None = None

    @property
    def single(self) -> BatchEstimate:
        """The smallest batch measured: one request's latency."""
        return self.batches[0]

    def throughput_within(self, p99_budget_ms: float) -> float | None:
        """Rows/s of one replica at the best batch size whose p99 fits ``p99_budget_ms``;
        None when not even the smallest batch does."""
        fitting = [b.throughput_per_s for b in self.batches if b.p99_ms <= p99_budget_ms]
        return max(fitting) if fitting else None


def _usable(profile: VariantProfile, tier: AnyTier) -> bool:
    tag = _PROVIDER_TAGS.get(profile.provider)
    return tag is None or tag in tier.hardware.tags


def _energy(
    profile: VariantProfile, tier: AnyTier, on_tier: bool, single: BatchEstimate
) -> tuple[float | None, str | None]:
    measured = profile.energy_j_per_inference
    if on_tier and measured is not None:
        return measured, f"profile ({profile.energy_source})"
    power = tier.hardware.power
    if power is not None:
        joules = power.active_watts * single.mean_ms / 1000.0 / single.batch_size
        return joules, "power model"
    return None, None


def _estimate(
    profile: VariantProfile, tier: AnyTier, factor: float, source: str, *, on_tier: bool
) -> Estimate:
    batches = tuple(
        BatchEstimate(
            batch_size=b.batch_size,
            p50_ms=b.p50_ms / factor,
            p95_ms=b.p95_ms / factor,
            p99_ms=b.p99_ms / factor,
            mean_ms=b.mean_ms / factor,
            throughput_per_s=b.throughput_per_s * factor,
        )
        for b in profile.batches
    )
    joules, origin = _energy(profile, tier, on_tier, batches[0])
    return Estimate(
        tier=tier.name,
        variant=profile.variant,
        batches=batches,
        accuracy=profile.accuracy,
        peak_memory_mib=profile.peak_memory_mib,
        includes_network=profile.includes_network,
        provider=profile.provider,
        source=source,
        energy_j_per_inference=joules,
        energy_source=origin,
    )


class ProfileCatalog:
    """Profile sets checked against a fleet spec, answering "what does variant V do on
    tier T". ``files`` names where each set came from, for error messages."""

    def __init__(
        self, spec: FleetSpec, sets: Sequence[ProfileSet], files: Sequence[str] | None = None
    ) -> None:
        names = list(files) if files is not None else [f"profiles[{i}]" for i in range(len(sets))]
        if len(names) != len(sets):
            raise ProfileError("<profiles>", "", "expected one file name per profile set")
        self.spec = spec
        self.sets = list(sets)
        for file, found in zip(names, self.sets, strict=True):
            self._check(file, found)

    def _check(self, file: str, found: ProfileSet) -> None:
        spec = self.spec
        for i, tier in enumerate(found.tiers):
            if tier not in spec.tiers:
                known = ", ".join(spec.tiers)
                raise ProfileError(
                    file, f"tiers[{i}]", f"expected a tier of the spec ({known}), got {tier!r}"
                )
        variants = {v for m in spec.models.values() for v in m.variants}
        for i, p in enumerate(found.profiles):
            if p.model is not None and p.model not in spec.models:
                known = ", ".join(spec.models)
                raise ProfileError(
                    file, f"profiles[{i}].model", f"expected a model of the spec ({known}), got"
                    f" {p.model!r}"
                )  # fmt: skip
            allowed = spec.models[p.model].variants if p.model is not None else variants
            if p.variant not in allowed:
                raise ProfileError(
                    file,
                    f"profiles[{i}].variant",
                    f"expected a variant the spec has ({', '.join(sorted(allowed))}), got"
                    f" {p.variant!r}",
                )
            if p.includes_network and not found.tiers:
                raise ProfileError(
                    file,
                    f"profiles[{i}]",
                    "an endpoint profile describes the tiers it was measured on; expected"
                    " tiers (bench endpoint --tier NAME), got none",
                )

    def _candidates(self, model: str, variant: str, tier: AnyTier) -> list[Estimate]:
        on_tier: list[Estimate] = []
        scaled: list[Estimate] = []
        factor = speed_factor(tier)
        for found in self.sets:
            for p in found.profiles:
                if p.variant != variant or p.model not in (None, model) or not _usable(p, tier):
                    continue
                if tier.name in found.tiers:
                    on_tier.append(
                        _estimate(p, tier, 1.0, f"measured on tier {tier.name!r}", on_tier=True)
                    )
                elif not found.tiers:
                    host = found.host.label or found.host.hostname or "the profiling host"
                    where = f"host {host!r}"
                    note = f"{where} x{factor:g} (speed_factor)" if factor != 1.0 else where
                    scaled.append(_estimate(p, tier, factor, note, on_tier=False))
        return on_tier or scaled

    def estimate(self, model: str, variant: str, tier: AnyTier) -> Estimate | None:
        """The best estimate of ``variant`` of ``model`` on ``tier``; None when unprofiled."""
        found = self._candidates(model, variant, tier)
        if not found:
            return None
        return min(found, key=lambda e: (e.single.p99_ms, e.provider))


def network_ms(spec: FleetSpec, workload: Workload, tier: AnyTier, quantile: Quantile) -> float:
    """The round trip from where the workload's data starts to ``tier`` (module docs)."""
    listed = [spec.tiers[n] for n in workload.tiers]
    if tier.name in workload.tiers:
        below = listed[: workload.tiers.index(tier.name)]
    else:
        rank = KIND_RANK[tier.kind]
        below = [t for t in listed if KIND_RANK[t.kind] < rank]
    total = 0.0
    for hop in below:
        if hop.network is not None:
            total += hop.network.rtt_p50_ms if quantile == "p50" else hop.network.rtt_p99_ms
    return total
