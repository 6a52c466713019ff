"""What a report shows, as typed data: the input of the plots and of the page.

A :class:`ReportData` holds five sections, each a plain frozen dataclass checked where it
is built (a bad value raises :class:`~tierwise.errors.ConfigError` naming the field and
the bound):

- :class:`DecisionMatrix`: per workload and tier, a score for each driver with its reason;
- :class:`WorkloadCost`: cost per 1M inferences of a workload on each tier, what the plan
  pays (a cascade pays a blend) and the workload's budget;
- :class:`LatencyRow`: latency percentiles of a route against the workload's SLO;
- :class:`CascadeData`: the calibrated accuracy / cost curves, the points chosen on them,
  the oracle bound and cloud only;
- :class:`SummaryTable`: the headline table, already formatted as text.

Loaders (a plan file, the demo) build one; :func:`tierwise.report.write_report` renders it.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass
from numbers import Real
from typing import Any

from tierwise.errors import ConfigError

__all__ = [
    "CascadeCurve",
    "CascadeData",
    "ChosenPoint",
    "CurvePoint",
    "DecisionMatrix",
    "LatencyRow",
    "MatrixRow",
    "ReportData",
    "SummaryTable",
    "WorkloadCost",
]


def _number(parameter: str, value: object, *, low: float = 0.0, high: float = math.inf) -> float:
    """``value`` as a float in [low, high], or ConfigError naming ``parameter``."""
    number = float(value) if isinstance(value, Real) and not isinstance(value, bool) else math.nan
    if not math.isfinite(number) or not low <= number <= high:
        if math.isfinite(low) and math.isfinite(high):
            bound = f"a finite number in [{low:g}, {high:g}]"
        elif math.isfinite(low):
            bound = f"a finite number >= {low:g}"
        else:
            bound = "a finite number"
        raise ConfigError(parameter, bound, value)
    return number


def _text(parameter: str, value: object) -> str:
    if not isinstance(value, str) or not value.strip():
        raise ConfigError(parameter, "a non-empty string", value)
    return value


def _copy(value: Mapping[str, Any]) -> dict[str, Any]:
    return dict(value)


@dataclass(frozen=True)
class MatrixRow:
    """One workload on one tier: a score per driver (``scores``; None where the driver is
    a hard constraint the tier breaks), why (``reasons``), the total (None when the tier is
    infeasible), and the verdict (e.g. ``chosen``, ``rank 2``, ``infeasible``)."""

    workload: str
    tier: str
    scores: Mapping[str, float | None]
    reasons: Mapping[str, str]
    total: float | None
    verdict: str = ""

    def __post_init__(self) -> None:
        _text("MatrixRow.workload", self.workload)
        _text("MatrixRow.tier", self.tier)
        object.__setattr__(self, "scores", _copy(self.scores))
        object.__setattr__(self, "reasons", _copy(self.reasons))
        if self.total is not None:
            _number(f"MatrixRow[{self.label!r}].total", self.total, low=-math.inf)

    @property
    def label(self) -> str:
        return f"{self.workload} @ {self.tier}"


@dataclass(frozen=True)
class DecisionMatrix:
    """Scores of every workload x tier on the same drivers, within ``score_range``
    (None: infeasible)."""

    drivers: tuple[str, ...]
    rows: tuple[MatrixRow, ...]
    score_range: tuple[float, float] = (0.0, 1.0)

    def __post_init__(self) -> None:
        object.__setattr__(self, "drivers", tuple(self.drivers))
        object.__setattr__(self, "rows", tuple(self.rows))
        low, high = (float(v) for v in self.score_range)
        if not (math.isfinite(low) and math.isfinite(high) and low < high):
            raise ConfigError("DecisionMatrix.score_range", "(low, high) with low < high", low)
        if not self.drivers:
            raise ConfigError("DecisionMatrix.drivers", "at least one driver", self.drivers)
        for i, row in enumerate(self.rows):
            if set(row.scores) != set(self.drivers):
                raise ConfigError(
                    f"DecisionMatrix.rows[{i}].scores",
                    f"a score for each of {', '.join(self.drivers)}",
                    sorted(row.scores),
                )
            for driver, score in row.scores.items():
                if score is not None:
                    _number(
                        f"DecisionMatrix.rows[{i}].scores[{driver!r}]", score, low=low, high=high
                    )


@dataclass(frozen=True)
class WorkloadCost:
    """USD per 1M inferences of one workload on each tier that may serve it, what the
    plan's placement pays (None when not placed) and the budget (None when unbounded)."""

    workload: str
    usd_per_million_by_tier: Mapping[str, float]
    planned_usd_per_million: float | None = None
    planned_label: str = "plan"
    budget_usd_per_million: float | None = None

    def __post_init__(self) -> None:
        _text("WorkloadCost.workload", self.workload)
        object.__setattr__(self, "usd_per_million_by_tier", _copy(self.usd_per_million_by_tier))
        for tier, usd in self.usd_per_million_by_tier.items():
            _number(f"WorkloadCost[{self.workload!r}].usd_per_million_by_tier[{tier!r}]", usd)
        for name in ("planned_usd_per_million", "budget_usd_per_million"):
            value = getattr(self, name)
            if value is not None:
                _number(f"WorkloadCost[{self.workload!r}].{name}", value)


@dataclass(frozen=True)
class LatencyRow:
    """Latency percentiles (ms) of one route of a workload (``label``: a tier, a cascade
    or cloud only), measured or predicted (``source``), against its SLO."""

    workload: str
    label: str
    p50_ms: float
    p95_ms: float
    p99_ms: float
    slo_p50_ms: float | None = None
    slo_p95_ms: float | None = None
    slo_p99_ms: float | None = None
    source: str = "measured"

    def __post_init__(self) -> None:
        _text("LatencyRow.workload", self.workload)
        _text("LatencyRow.label", self.label)
        where = f"LatencyRow[{self.workload!r}, {self.label!r}]"
        low = 0.0
        for name in ("p50_ms", "p95_ms", "p99_ms"):
            low = _number(f"{where}.{name}", getattr(self, name), low=low)
        for name in ("slo_p50_ms", "slo_p95_ms", "slo_p99_ms"):
            if getattr(self, name) is not None:
                _number(f"{where}.{name}", getattr(self, name))

    def percentiles(self) -> dict[str, tuple[float, float | None]]:
        """``{"p50": (measured ms, SLO ms or None), ...}``."""
        return {
            "p50": (self.p50_ms, self.slo_p50_ms),
            "p95": (self.p95_ms, self.slo_p95_ms),
            "p99": (self.p99_ms, self.slo_p99_ms),
        }

    @property
    def meets_slo(self) -> bool:
        return all(slo is None or ms <= slo for ms, slo in self.percentiles().values())


@dataclass(frozen=True)
class CurvePoint:
    """A cascade setting: its cost per 1M inferences, accuracy and per-stage thresholds."""

    cost_usd_per_million: float
    accuracy: float
    thresholds: tuple[float, ...] = ()

    def __post_init__(self) -> None:
        _number("CurvePoint.cost_usd_per_million", self.cost_usd_per_million)
        _number("CurvePoint.accuracy", self.accuracy, high=1.0)
        object.__setattr__(self, "thresholds", tuple(float(t) for t in self.thresholds))


@dataclass(frozen=True)
class CascadeCurve:
    """One escalation rule's accuracy / cost front, cheapest first."""

    rule: str
    points: tuple[CurvePoint, ...]

    def __post_init__(self) -> None:
        _text("CascadeCurve.rule", self.rule)
        object.__setattr__(self, "points", tuple(self.points))
        if not self.points:
            raise ConfigError(f"CascadeCurve[{self.rule!r}].points", "at least one point")


@dataclass(frozen=True)
class ChosenPoint:
    """A setting picked on a rule's curve; ``label`` says by whom (the calibration's own
    target, a plan's workload)."""

    label: str
    rule: str
    point: CurvePoint

    def __post_init__(self) -> None:
        _text("ChosenPoint.label", self.label)
        _text("ChosenPoint.rule", self.rule)


@dataclass(frozen=True)
class CascadeData:
    """The calibrated cascade: every rule's curve, the points chosen on them (none when the
    target is out of reach), the oracle bound, cloud only and the accuracy target. Costs are
    at the prices calibration used (``cost_source``)."""

    stages: tuple[str, ...]
    curves: tuple[CascadeCurve, ...]
    oracle: CurvePoint
    cloud_only: CurvePoint
    target_accuracy: float
    chosen: tuple[ChosenPoint, ...] = ()
    samples: int = 0
    cost_source: str = ""

    def __post_init__(self) -> None:
        object.__setattr__(self, "stages", tuple(self.stages))
        object.__setattr__(self, "curves", tuple(self.curves))
        object.__setattr__(self, "chosen", tuple(self.chosen))
        if len(self.stages) < 2:
            raise ConfigError("CascadeData.stages", "at least two stages", self.stages)
        if not self.curves:
            raise ConfigError("CascadeData.curves", "at least one rule's curve")
        _number("CascadeData.target_accuracy", self.target_accuracy, high=1.0)
        rules = [c.rule for c in self.curves]
        for i, choice in enumerate(self.chosen):
            if choice.rule not in rules:
                raise ConfigError(f"CascadeData.chosen[{i}].rule", f"one of {rules}", choice.rule)


@dataclass(frozen=True)
class SummaryTable:
    """The headline table: column names and rows of text, one cell per column."""

    title: str
    columns: tuple[str, ...]
    rows: tuple[tuple[str, ...], ...]

    def __post_init__(self) -> None:
        object.__setattr__(self, "columns", tuple(self.columns))
        object.__setattr__(self, "rows", tuple(tuple(r) for r in self.rows))
        if not self.columns:
            raise ConfigError("SummaryTable.columns", "at least one column")
        for i, row in enumerate(self.rows):
            if len(row) != len(self.columns):
                raise ConfigError(f"SummaryTable.rows[{i}]", f"{len(self.columns)} cells", len(row))


@dataclass(frozen=True)
class ReportData:
    """Everything one report page shows. ``facts`` are ``(name, value)`` lines under the
    title (the plan, the spec, where the numbers come from)."""

    title: str
    matrix: DecisionMatrix | None = None
    costs: tuple[WorkloadCost, ...] = ()
    latency: tuple[LatencyRow, ...] = ()
    cascade: CascadeData | None = None
    summary: SummaryTable | None = None
    facts: tuple[tuple[str, str], ...] = ()
    #: a simulated day, and a fidelity check (a tierwise.report.simulation.SimulationData)
    simulation: Any = None

    def __post_init__(self) -> None:
        _text("ReportData.title", self.title)
        object.__setattr__(self, "costs", tuple(self.costs))
        object.__setattr__(self, "latency", tuple(self.latency))
        object.__setattr__(self, "facts", tuple((str(k), str(v)) for k, v in self.facts))
