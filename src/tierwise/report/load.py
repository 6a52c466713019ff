"""A report's data from a plan file and what it was made from.

The plan (``tierwise plan SPEC ... -o plan.yaml``, format :mod:`tierwise.planfile.schema`)
links its fleet spec (``spec:``); the profiles and calibrations the planner read are given
alongside. From them:

- the decision matrix of the spec with the profiles (:func:`tierwise.plan.decision_matrix`),
  each placed tier marked;
- cost per 1M inferences of each workload on each tier it lists, what the plan expects to
  pay, and the budget;
- the plan's expected latency percentiles per workload against the spec's SLOs;
- the cascade curve of the calibration the plan's cascades use most, with each workload's
  setting and the oracle bound;
- a summary row per workload: placement, accuracy, p99 against the SLO, cost, and the
  energy of one inference on each stage (J) where a profile measured on the tier or the
  tier's power model gives it (:class:`~tierwise.plan.perf.ProfileCatalog`).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from tierwise.errors import ReportError
from tierwise.planfile.schema import Plan, WorkloadConfig
from tierwise.report.calibration import (
    cascade_from_calibration,
    choose_on_curve,
    load_calibration_json,
)
from tierwise.report.data import CascadeData, LatencyRow, ReportData, SummaryTable
from tierwise.report.matrix import cost_section, matrix_section
from tierwise.spec import FleetSpec

if TYPE_CHECKING:
    from tierwise.bench.profiles import ProfileSet

__all__ = [
    "PLANNED",
    "PlanInputs",
    "energy_per_stage",
    "load_report_data",
    "plan_summary",
    "planned_latency",
    "read_inputs",
]

#: Where the plan's latencies come from: the planner's estimates, network included.
PLANNED = "planned, network included"

_SUMMARY_COLUMNS = (
    "workload", "placement", "reach", "accuracy", "p99 ms", "SLO p99 ms", "USD / 1M",
    "USD / month", "J / inference",
)  # fmt: skip


@dataclass(frozen=True)
class PlanInputs:
    """A plan and what it was made from, loaded and checked."""

    plan_path: Path
    plan: Plan
    spec_path: Path
    spec: FleetSpec
    profiles: tuple[Path, ...]
    calibrations: tuple[tuple[Path, dict[str, Any]], ...]


def _variants(plan: Plan, workload: WorkloadConfig) -> tuple[str, ...]:
    tiers = [plan.tiers[s.tier] for s in workload.cascade]
    return tuple(t.variant or t.model or t.name for t in tiers)


def _placement(plan: Plan, workload: WorkloadConfig) -> str:
    return " -> ".join(
        f"{plan.tiers[s.tier].spec_tier or s.tier}/{_variants(plan, workload)[i]}"
        for i, s in enumerate(workload.cascade)
    )


def planned_latency(inputs: PlanInputs) -> list[LatencyRow]:
    """The plan's expected p50 / p95 / p99 of each workload against the spec's SLO (the
    plan's deadline stands in for p99 when the spec does not know the workload)."""
    rows = []
    for name, workload in inputs.plan.workloads.items():
        expected = workload.expected
        if expected is None or None in (expected.p50_ms, expected.p95_ms, expected.p99_ms):
            continue
        found = inputs.spec.workloads.get(name)
        slo = found.slo if found is not None else None
        rows.append(
            LatencyRow(
                workload=name,
                label="plan",
                p50_ms=expected.p50_ms or 0.0,
                p95_ms=expected.p95_ms or 0.0,
                p99_ms=expected.p99_ms or 0.0,
                slo_p50_ms=slo.p50_ms if slo else None,
                slo_p95_ms=slo.p95_ms if slo else None,
                slo_p99_ms=slo.p99_ms if slo else workload.deadline_ms,
                source=PLANNED,
            )
        )
    return rows


def _cell(value: float | None, fmt: str) -> str:
    return "-" if value is None else format(value, fmt)


def energy_per_stage(inputs: PlanInputs, sets: Sequence[ProfileSet]) -> dict[str, str]:
    """Per workload of the plan: the joules of one inference on each stage of its cascade,
    ``" / "``-joined, ``-`` where unknown (module docs)."""
    from tierwise.plan.perf import ProfileCatalog

    spec, plan = inputs.spec, inputs.plan
    catalog = ProfileCatalog(spec, sets, [str(p) for p in inputs.profiles]) if sets else None
    out: dict[str, str] = {}
    for name, workload in plan.workloads.items():
        found = spec.workloads.get(name)
        cells = []
        for stage in workload.cascade:
            entry = plan.tiers[stage.tier]
            tier = spec.tiers.get(entry.spec_tier or stage.tier)
            estimate = None
            if catalog is not None and found is not None and tier is not None and entry.variant:
                estimate = catalog.estimate(found.model, entry.variant, tier)
            cells.append(_cell(estimate.energy_j_per_inference if estimate else None, ".3g"))
        out[name] = " / ".join(cells)
    return out


def plan_summary(inputs: PlanInputs, energy: Mapping[str, str] | None = None) -> SummaryTable:
    """One row per workload of the plan: placement, reach per stage, accuracy, p99 against
    the SLO, USD per 1M and per month (the planner's expectations), and ``energy`` (see
    :func:`energy_per_stage`)."""
    rows = []
    for name, workload in inputs.plan.workloads.items():
        e = workload.expected
        found = inputs.spec.workloads.get(name)
        slo = found.slo.p99_ms if found is not None else workload.deadline_ms
        reach = " / ".join(f"{r:.0%}" for r in (e.reach or [])) if e else ""
        rows.append(
            (
                name,
                _placement(inputs.plan, workload),
                reach or "-",
                _cell(e.accuracy if e else None, ".2%"),
                _cell(e.p99_ms if e else None, ".3g"),
                _cell(slo, "g"),
                _cell(e.usd_per_million if e else None, ".4g"),
                _cell(e.usd_per_month if e else None, ",.2f"),
                (energy or {}).get(name, "-"),
            )
        )
    return SummaryTable("what the plan expects of each workload", _SUMMARY_COLUMNS, tuple(rows))


def _pick_calibration(inputs: PlanInputs) -> CascadeData | None:
    """The calibration whose cascade the most plan workloads run (earliest among equals),
    with each such workload's setting marked on its rule's curve."""
    best: tuple[int, int, Path, dict[str, Any]] | None = None
    for index, (path, doc) in enumerate(inputs.calibrations):
        variants = tuple(doc.get("variants") or ())
        users = sum(_variants(inputs.plan, w) == variants for w in inputs.plan.workloads.values())
        if best is None or users > best[0]:
            best = (users, index, path, doc)
    if best is None:
        return None
    _, _, path, doc = best
    cascade = cascade_from_calibration(doc, source=str(path))
    variants = tuple(doc.get("variants") or ())
    for name, workload in inputs.plan.workloads.items():
        stages = workload.cascade
        if _variants(inputs.plan, workload) != variants or stages[0].rule is None:
            continue
        thresholds = [s.threshold or 0.0 for s in stages[:-1]]
        cascade = choose_on_curve(cascade, name, stages[0].rule, thresholds)
    return cascade


def read_inputs(
    plan_path: str | Path,
    *,
    profiles: Sequence[str | Path] = (),
    calibrations: Sequence[str | Path] = (),
) -> PlanInputs:
    """Load the plan, its spec, and the given profiles and calibrations (errors name the
    file: SpecError for the plan or spec, ProfileError, ReportError)."""
    from tierwise.planfile.load import load_plan
    from tierwise.spec import load_spec

    path = Path(plan_path)
    plan = load_plan(path, check_files=False)
    if plan.spec is None:
        raise ReportError(
            "the plan links no fleet spec (spec: fleet.yaml); the report needs it for the"
            " decision matrix, costs and SLOs",
            path=str(path),
        )
    spec_path = Path(plan.spec)
    if plan.made_from is not None:  # what the planner read, unless told otherwise
        profiles = profiles or plan.made_from.profiles
        calibrations = calibrations or plan.made_from.calibrations
    return PlanInputs(
        plan_path=path,
        plan=plan,
        spec_path=spec_path,
        spec=load_spec(spec_path),
        profiles=tuple(Path(p) for p in profiles),
        calibrations=tuple((Path(c), load_calibration_json(c)) for c in calibrations),
    )


def load_report_data(
    plan_path: str | Path,
    *,
    profiles: Sequence[str | Path] = (),
    calibrations: Sequence[str | Path] = (),
    title: str | None = None,
) -> ReportData:
    """Everything the report shows about the plan at ``plan_path`` (see the module docs)."""
    from tierwise.bench.profiles import load_profiles
    from tierwise.plan import decision_matrix

    inputs = read_inputs(plan_path, profiles=profiles, calibrations=calibrations)
    sets = [load_profiles(p) for p in inputs.profiles]
    matrix = decision_matrix(inputs.spec, sets or None)
    plan = inputs.plan
    placed = {
        name: {plan.tiers[s.tier].spec_tier or s.tier for s in w.cascade}
        for name, w in plan.workloads.items()
    }
    expected = {
        name: w.expected.usd_per_million
        for name, w in plan.workloads.items()
        if w.expected is not None and w.expected.usd_per_million is not None
    }
    facts = [("plan", str(inputs.plan_path)), ("fleet spec", str(inputs.spec_path))]
    if plan.description:
        facts.append(("planner", plan.description))
    facts.append(
        ("profiles", ", ".join(map(str, inputs.profiles)) or "none: latency is network only")
    )
    facts.append(("calibration", ", ".join(str(p) for p, _ in inputs.calibrations) or "none"))
    return ReportData(
        title=title or f"tierwise report: {inputs.spec.name or inputs.plan_path.stem}",
        matrix=matrix_section(matrix, inputs.spec, placed),
        costs=cost_section(matrix, inputs.spec, expected),
        latency=tuple(planned_latency(inputs)),
        cascade=_pick_calibration(inputs),
        summary=plan_summary(inputs, energy_per_stage(inputs, sets)),
        facts=tuple(facts),
    )
