"""Every way a workload could be placed, each checked against its hard constraints.

Candidates are single tiers (each listed tier with each variant it may run: the pinned
one, else every variant of the model) and cascades (each calibrated cascade of variants,
:mod:`tierwise.plan.calibration`, on every rising sequence of listed tiers, pins
respected). A candidate is kept when it passes, in this order:

1. ``privacy`` / ``residency``: every stage's tier may see the data;
2. ``model``: each variant fits its tier (hardware tags, memory) and is profiled there;
3. ``min_accuracy``: the variant's measured accuracy, or a calibration setting, reaches it;
4. ``slo.p50_ms`` / ``slo.p95_ms`` / ``slo.p99_ms``: the estimated percentiles meet the SLO
   (:func:`~tierwise.plan.cascade.cascade_latency_ms`);
5. ``traffic``: no stage needs more replicas than its tier has, even alone;
6. ``budget.usd_per_month`` / ``budget.usd_per_million_inferences``: its cost fits.

A cascade keeps its cheapest calibration setting that passes (with ``min_accuracy``: any
setting on the curves reaching it; without: the setting calibration chose per rule). When
nothing passes, the *binding* constraint is the last check any candidate reached, and the
message names the candidate that came closest.
"""

from __future__ import annotations

import itertools
from collections.abc import Sequence
from dataclasses import dataclass, field

from tierwise.errors import InfeasiblePlanError
from tierwise.escalation.rules import ScoreKind
from tierwise.plan.calibration import CascadeCurve, CurvePoint, ScoreOutput
from tierwise.plan.cascade import QUANTILES, cascade_latency_ms, stage_figures
from tierwise.plan.perf import Estimate, ProfileCatalog
from tierwise.plan.problem import TierModel, period_rates
from tierwise.spec import (
    AnyTier,
    FleetSpec,
    Variant,
    Workload,
    excluded_tiers,
    variant_misfit,
)

__all__ = ["Option", "Rejection", "Stage", "WorkloadOptions", "workload_options"]


@dataclass(frozen=True)
class Stage:
    """One stage of a placement: a variant on a tier, the fraction of requests reaching it,
    and the escalation rule past it (none on the last stage). ``memory_mib`` is what the
    variant holds on each node it is loaded on: the larger of its size and its measured
    peak memory."""

    tier: str
    kind: str
    variant: str
    reach: float
    rule: str | None = None
    threshold: float | None = None
    output: str | None = None  # the tensor holding the variant's scores, as calibrated
    scores: ScoreKind | None = None  # what it holds
    provider: str = ""
    source: str = ""
    model: str = ""
    memory_mib: float = 0.0


@dataclass(frozen=True)
class Option:
    """A feasible placement of a workload, with its figures."""

    workload: str
    stages: tuple[Stage, ...]
    accuracy: float | None
    latency_ms: dict[str, float]
    usage: dict[str, tuple[float, ...]]  # tier -> busy replicas in each period of the day
    variable_usd_per_month: float
    usd_per_month_by_tier: dict[str, float]  # each stage's variable costs + its tier share
    variable_usd_per_month_by_tier: dict[str, float] = field(default_factory=dict)

    @property
    def usd_per_month(self) -> float:
        """Variable costs plus the share of each tier's cost this placement uses."""
        return sum(self.usd_per_month_by_tier.values())

    @property
    def label(self) -> str:
        return " > ".join(f"{s.tier}/{s.variant}" for s in self.stages)


@dataclass(frozen=True)
class Rejection:
    """Why a candidate failed: the workload field it breaks, by how much."""

    step: int
    constraint: str
    candidate: str
    reason: str
    value: float | None = None
    limit: float | None = None

    @property
    def slack(self) -> float:
        """How far off the candidate is (1 = just at the limit); lower is closer."""
        if self.value is None or self.limit is None:
            return float("inf")
        if self.constraint == "min_accuracy":
            return self.limit / self.value if self.value > 0 else float("inf")
        return self.value / self.limit if self.limit > 0 else float("inf")


@dataclass(frozen=True)
class WorkloadOptions:
    """A workload's feasible placements, and why the other candidates failed."""

    workload: str
    requests_per_month: float
    rates: tuple[float, ...]
    options: tuple[Option, ...]
    rejections: tuple[Rejection, ...]

    def binding(self) -> Rejection | None:
        """The constraint that left no placement (None when some remain)."""
        if self.options or not self.rejections:
            return None
        last = max(r.step for r in self.rejections)
        return min((r for r in self.rejections if r.step == last), key=lambda r: r.slack)

    def error(self) -> InfeasiblePlanError:
        """The error naming the binding constraint and what was expected."""
        binding = self.binding()
        if binding is None:
            return InfeasiblePlanError(self.workload, "tiers", "no candidate placement")
        return InfeasiblePlanError(self.workload, binding.constraint, _explain(binding, self))


def _explain(b: Rejection, options: WorkloadOptions) -> str:
    if b.value is None or b.limit is None:
        same = [r.reason for r in options.rejections if r.step == b.step]
        return "; ".join(dict.fromkeys(same))
    if b.constraint == "min_accuracy":
        return (
            f"the most accurate placement, {b.candidate}, is right {b.value:.2%} of the time;"
            f" expected min_accuracy <= {b.value:.4g}, got {b.limit:g}"
        )
    if b.constraint.startswith("slo."):
        return (
            f"the fastest placement, {b.candidate}, takes {b.value:.3g} ms at {b.reason},"
            f" network included; expected {b.constraint} >= {b.value:.3g}, got {b.limit:g}"
        )
    if b.constraint == "traffic":
        return f"even the placement with the most room, {b.candidate}, {b.reason}"
    return (
        f"the cheapest placement, {b.candidate}, costs ${b.value:,.4g}; expected"
        f" {b.constraint} >= {b.value:.4g}, got {b.limit:g}"
    )


@dataclass(frozen=True)
class _Candidate:
    tiers: tuple[AnyTier, ...]
    variants: tuple[Variant, ...]
    curve: CascadeCurve | None

    @property
    def label(self) -> str:
        return " > ".join(
            f"{t.name}/{v.name}" for t, v in zip(self.tiers, self.variants, strict=True)
        )


def _candidates(
    spec: FleetSpec, workload: Workload, curves: Sequence[CascadeCurve]
) -> list[_Candidate]:
    model = spec.models[workload.model]
    listed = [spec.tiers[n] for n in workload.tiers]
    out: list[_Candidate] = []
    for tier in listed:
        pinned = workload.variants.get(tier.name)
        for variant in model.variants.values():
            if pinned is None or pinned == variant.name:
                out.append(_Candidate((tier,), (variant,), None))
    for curve in curves:
        if not all(v in model.variants for v in curve.variants):
            continue
        for picks in itertools.combinations(listed, len(curve.variants)):
            if all(
                workload.variants.get(t.name, v) == v
                for t, v in zip(picks, curve.variants, strict=True)
            ):
                variants = tuple(model.variants[v] for v in curve.variants)
                out.append(_Candidate(picks, variants, curve))
    return out


def _read(c: _Candidate, variant: str) -> ScoreOutput | None:
    """Where calibration read ``variant``'s scores (None: not calibrated, or unsaid)."""
    return c.curve.outputs.get(variant) if c.curve is not None else None


class _Checker:
    """Runs one workload's candidates through the checks (module docs)."""

    def __init__(
        self,
        spec: FleetSpec,
        workload: Workload,
        catalog: ProfileCatalog,
        models: dict[str, TierModel],
        periods: tuple[float, ...],
    ) -> None:
        self.spec = spec
        self.workload = workload
        self.catalog = catalog
        self.models = models
        self.periods = periods
        self.rates = tuple(period_rates(workload, periods))
        self.excluded = excluded_tiers(spec, workload)

    def check(self, c: _Candidate) -> Option | Rejection:
        w = self.workload
        for tier in c.tiers:
            if tier.name in self.excluded:
                reason = self.excluded[tier.name][0]
                field = "privacy" if reason.startswith("privacy") else "residency"
                return Rejection(0, field, c.label, f"tier {tier.name!r}: {reason}")
        estimates: list[Estimate] = []
        for tier, variant in zip(c.tiers, c.variants, strict=True):
            misfit = variant_misfit(variant, tier)
            if misfit is not None:
                return Rejection(1, "model", c.label, misfit)
            found = self.catalog.estimate(w.model, variant.name, tier)
            if found is None:
                why = f"variant {variant.name!r} has no profile usable on tier {tier.name!r}"
                return Rejection(1, "model", c.label, why)
            estimates.append(found)
        points: list[CurvePoint | None]
        if c.curve is None:
            accuracy = estimates[0].accuracy
            if w.min_accuracy is not None and (accuracy is None or accuracy < w.min_accuracy):
                if accuracy is None:
                    why = f"the accuracy of {c.variants[0].name!r} was not measured"
                    return Rejection(2, "min_accuracy", c.label, why)
                return Rejection(2, "min_accuracy", c.label, "", accuracy, w.min_accuracy)
            points = [None]
        else:
            points = list(c.curve.candidates(w.min_accuracy))
            if not points:
                best = max((p.accuracy for p in c.curve.points), default=0.0)
                return Rejection(2, "min_accuracy", c.label, "", best, w.min_accuracy or 1.0)
        results = [self._point(c, estimates, p) for p in points]
        kept = [r for r in results if isinstance(r, Option)]
        if kept:
            return min(kept, key=lambda o: (o.usd_per_month, -(o.accuracy or 0.0)))
        rejected = [r for r in results if isinstance(r, Rejection)]
        return max(rejected, key=lambda r: (r.step, -r.slack))

    def _point(
        self, c: _Candidate, estimates: list[Estimate], point: CurvePoint | None
    ) -> Option | Rejection:
        w = self.workload
        reach = point.reach if point is not None else (1.0,)
        latency = cascade_latency_ms(self.spec, w, c.tiers, estimates, reach)
        for name in QUANTILES:
            limit = getattr(w.slo, f"{name}_ms")
            if limit is not None and latency[name] > limit:
                return Rejection(3, f"slo.{name}_ms", c.label, name, latency[name], limit)
        figures = stage_figures(
            self.spec, w, c.tiers, estimates, reach, self.models, self.periods, self.rates
        )
        for tier, fig in zip(c.tiers, figures, strict=True):
            model = self.models[tier.name]
            room = model.capacity_replicas * (model.max_instances if model.cloud else 1)
            peak = max(fig.usage, default=0.0)
            if peak > room:
                why = (
                    f"needs {peak:.3g} busy replicas on tier {tier.name!r} in the busiest hour,"
                    f" which holds {room:.3g} (nodes x max_replicas_per_node x max_utilization);"
                    " expected less traffic or more capacity"
                )
                return Rejection(4, "traffic", c.label, why, peak, room)
        by_tier = {t.name: f.usd_per_month for t, f in zip(c.tiers, figures, strict=True)}
        usd = sum(by_tier.values())
        budget = w.budget
        volume = w.traffic.requests_per_month
        if budget is not None and budget.usd_per_month is not None and usd > budget.usd_per_month:
            field = "budget.usd_per_month"
            return Rejection(5, field, c.label, "", usd, budget.usd_per_month)
        limit_1m = budget.usd_per_million_inferences if budget is not None else None
        if limit_1m is not None and volume > 0 and usd / volume * 1e6 > limit_1m:
            field = "budget.usd_per_million_inferences"
            return Rejection(5, field, c.label, "", usd / volume * 1e6, limit_1m)
        last = len(c.tiers) - 1
        stages = tuple(
            Stage(
                tier=t.name,
                kind=t.kind,
                variant=v.name,
                reach=reach[i],
                rule=point.rule if point is not None and i < last else None,
                threshold=point.thresholds[i] if point is not None and i < last else None,
                output=read.output if (read := _read(c, v.name)) is not None else None,
                scores=read.scores if read is not None else None,
                provider=e.provider,
                source=e.source,
                model=w.model,
                memory_mib=max(v.size_mib, e.peak_memory_mib or 0.0),
            )
            for i, (t, v, e) in enumerate(zip(c.tiers, c.variants, estimates, strict=True))
        )
        return Option(
            workload=w.name,
            stages=stages,
            accuracy=point.accuracy if point is not None else estimates[0].accuracy,
            latency_ms=latency,
            usage={t.name: f.usage for t, f in zip(c.tiers, figures, strict=True)},
            variable_usd_per_month=sum(f.variable_usd_per_month for f in figures),
            usd_per_month_by_tier=by_tier,
            variable_usd_per_month_by_tier={
                t.name: f.variable_usd_per_month for t, f in zip(c.tiers, figures, strict=True)
            },
        )


def workload_options(
    spec: FleetSpec,
    workload: Workload,
    catalog: ProfileCatalog,
    models: dict[str, TierModel],
    periods: tuple[float, ...],
    curves: Sequence[CascadeCurve] = (),
) -> WorkloadOptions:
    """The feasible placements of ``workload`` and why the other candidates failed."""
    checker = _Checker(spec, workload, catalog, models, periods)
    options: list[Option] = []
    rejections: list[Rejection] = []
    for candidate in _candidates(spec, workload, curves):
        result = checker.check(candidate)
        (options if isinstance(result, Option) else rejections).append(result)  # type: ignore[arg-type]
    return WorkloadOptions(
        workload=workload.name,
        requests_per_month=workload.traffic.requests_per_month,
        rates=checker.rates,
        options=tuple(options),
        rejections=tuple(rejections),
    )
