"""ReportData is checked where it is built; plots are PNGs, the same bytes for the same
data; the cascade section matches the calibration it came from."""

from __future__ import annotations

import struct

import pytest

from tierwise.errors import ConfigError, ReportError
from tierwise.report import (
    CascadeCurve,
    CascadeData,
    CurvePoint,
    DecisionMatrix,
    LatencyRow,
    MatrixRow,
    ReportData,
    SummaryTable,
    WorkloadCost,
    cascade_from_calibration,
    cascade_png,
    cost_png,
    latency_png,
    matrix_png,
)
from tierwise.report.plots import DPI
from tierwise.router.calibrate import CalibrationResult

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


def _size(png: bytes) -> tuple[int, int]:
    assert png.startswith(PNG_MAGIC)
    width, height = struct.unpack(">II", png[16:24])
    return width, height


def test_plots_are_pngs_and_deterministic(report_data: ReportData) -> None:
    assert report_data.matrix is not None
    assert report_data.cascade is not None
    renders = {
        "matrix": lambda: matrix_png(report_data.matrix),  # type: ignore[arg-type]
        "cost": lambda: cost_png(report_data.costs),
        "latency": lambda: latency_png(report_data.latency),
        "cascade": lambda: cascade_png(report_data.cascade),  # type: ignore[arg-type]
    }
    for name, render in renders.items():
        first, second = render(), render()
        assert first == second, f"{name} differs between two renders"
        width, height = _size(first)
        assert width == 9 * DPI, name
        assert 100 < height < 1000, name
        assert b"matplotlib" not in first.lower(), name  # no version stamp


def test_cascade_section_matches_its_calibration(calibration: CalibrationResult) -> None:
    cascade = cascade_from_calibration(calibration)
    cheapest = min(
        (r for r in calibration.rules.values() if r.chosen is not None),
        key=lambda r: r.chosen.cost_usd_per_million,  # type: ignore[union-attr]
    )
    assert cascade.chosen_rule == cheapest.rule
    assert cascade.chosen is not None
    assert cheapest.chosen is not None
    assert cascade.chosen.thresholds == cheapest.chosen.thresholds
    assert cascade.chosen.accuracy >= cascade.target_accuracy
    # the oracle is at least as accurate as any setting, for no more than the chosen one
    assert cascade.oracle.cost_usd_per_million <= cascade.chosen.cost_usd_per_million
    assert cascade.oracle.accuracy >= max(p.accuracy for c in cascade.curves for p in c.points)
    assert cascade.cloud_only.cost_usd_per_million > cascade.chosen.cost_usd_per_million
    assert cascade.stages == ("tiny (device)", "small (edge)", "large (cloud)")
    for curve in cascade.curves:
        costs = [p.cost_usd_per_million for p in curve.points]
        accuracies = [p.accuracy for p in curve.points]
        assert costs == sorted(costs)
        assert accuracies == sorted(accuracies)
    pinned = cascade_from_calibration(calibration, rule="max_prob")
    assert pinned.chosen_rule == "max_prob"
    with pytest.raises(ReportError, match="no rule 'nope'"):
        cascade_from_calibration(calibration, rule="nope")


def _row(**scores: float) -> MatrixRow:
    return MatrixRow("w", "edge", scores, {}, sum(scores.values()))


@pytest.mark.parametrize(
    ("build", "parameter"),
    [
        (lambda: DecisionMatrix(("cost",), (_row(cost=1.5),)), "rows[0].scores['cost']"),
        (lambda: DecisionMatrix(("cost", "privacy"), (_row(cost=0.5),)), "rows[0].scores"),
        (lambda: DecisionMatrix((), ()), "DecisionMatrix.drivers"),
        (lambda: DecisionMatrix(("cost",), (), score_range=(1.0, 0.0)), "score_range"),
        (lambda: MatrixRow("", "edge", {}, {}, 0.0), "MatrixRow.workload"),
        (lambda: WorkloadCost("w", {"cloud": -1.0}), "usd_per_million_by_tier['cloud']"),
        (lambda: WorkloadCost("w", {}, budget_usd_per_million=float("nan")), "budget"),
        (lambda: LatencyRow("w", "cloud", 5.0, 4.0, 9.0), "p95_ms"),
        (lambda: LatencyRow("w", "cloud", 1.0, 2.0, 3.0, slo_p99_ms=-1.0), "slo_p99_ms"),
        (lambda: CurvePoint(1.0, 1.2), "CurvePoint.accuracy"),
        (lambda: CascadeCurve("max_prob", ()), "points"),
        (lambda: SummaryTable("t", ("a", "b"), (("1",),)), "SummaryTable.rows[0]"),
        (lambda: ReportData(" "), "ReportData.title"),
    ],
)
def test_bad_values_name_the_field(build: object, parameter: str) -> None:
    with pytest.raises(ConfigError) as caught:
        build()  # type: ignore[operator]
    assert parameter in caught.value.parameter


def test_cascade_chosen_rule_must_be_a_curve() -> None:
    point = CurvePoint(1.0, 0.9)
    curve = CascadeCurve("max_prob", (point,))
    with pytest.raises(ConfigError, match="chosen_rule"):
        CascadeData(("a", "b"), (curve,), point, point, 0.9, chosen=point, chosen_rule="margin")
    with pytest.raises(ConfigError, match="chosen_rule"):
        CascadeData(("a", "b"), (curve,), point, point, 0.9, chosen=point)


def test_latency_row_knows_when_it_misses_its_slo() -> None:
    assert LatencyRow("w", "edge", 1.0, 2.0, 3.0, slo_p99_ms=3.0).meets_slo
    assert not LatencyRow("w", "edge", 1.0, 2.0, 3.5, slo_p99_ms=3.0).meets_slo
    assert not LatencyRow("w", "edge", 1.0, 2.0, 3.0, slo_p50_ms=0.5).meets_slo
