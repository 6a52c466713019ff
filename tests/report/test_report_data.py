"""ReportData is checked where it is built; plots are PNGs, the same bytes for the same
data; the cascade section matches the calibration it came from."""

from __future__ import annotations

import struct
from pathlib import Path

import orjson
import pytest

from tierwise.calibrate.sweep import CalibrationResult
from tierwise.errors import ConfigError, ReportError
from tierwise.report import (
    CascadeCurve,
    CascadeData,
    ChosenPoint,
    CurvePoint,
    DecisionMatrix,
    LatencyRow,
    MatrixRow,
    ReportData,
    SummaryTable,
    WorkloadCost,
    cascade_from_calibration,
    cascade_png,
    choose_on_curve,
    cost_png,
    latency_png,
    load_calibration_json,
    matrix_png,
)
from tierwise.report.plots import DPI
from tierwise.report.simulation import load_simulation, simulation_png

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
        "simulation": lambda: simulation_png(report_data.simulation),
    }
    for name, render in renders.items():
        first, second = render(), render()
        assert first == second, f"{name} differs between two renders"
        width, height = _size(first)
        assert width == 9 * DPI, name
        assert 100 < height < 1000 if name != "simulation" else height == 3 * 260, name
        assert b"matplotlib" not in first.lower(), name  # no version stamp


def test_cascade_section_matches_its_calibration(calibration: CalibrationResult) -> None:
    cascade = cascade_from_calibration(calibration)
    cheapest = min(
        (r for r in calibration.rules.values() if r.chosen is not None),
        key=lambda r: r.chosen.cost_usd_per_million,  # type: ignore[union-attr]
    )
    assert cheapest.chosen is not None
    (target,) = cascade.chosen
    assert target.rule == cheapest.rule
    assert target.label == f"target ({cheapest.rule})"
    assert target.point.thresholds == cheapest.chosen.thresholds
    assert target.point.accuracy >= cascade.target_accuracy
    # the oracle is at least as accurate as any setting, for no more than the chosen one
    assert cascade.oracle.cost_usd_per_million <= target.point.cost_usd_per_million
    assert cascade.oracle.accuracy >= max(p.accuracy for c in cascade.curves for p in c.points)
    assert cascade.cloud_only.cost_usd_per_million > target.point.cost_usd_per_million
    assert cascade.stages == ("tiny (device)", "small (edge)", "large (cloud)")
    assert cascade.cost_source == calibration.cost_source
    for curve in cascade.curves:
        costs = [p.cost_usd_per_million for p in curve.points]
        accuracies = [p.accuracy for p in curve.points]
        assert costs == sorted(costs)
        assert accuracies == sorted(accuracies)
    # the JSON form (tierwise calibrate --json) gives the same section
    as_json = orjson.loads(orjson.dumps(calibration.to_dict()))
    assert cascade_from_calibration(as_json) == cascade
    (pinned,) = cascade_from_calibration(calibration, rule="max_prob").chosen
    assert pinned.rule == "max_prob"
    with pytest.raises(ReportError, match="no rule 'nope'"):
        cascade_from_calibration(calibration, rule="nope")


def test_a_plan_choice_lands_on_its_rules_curve(calibration: CalibrationResult) -> None:
    cascade = cascade_from_calibration(calibration)
    curve = next(c for c in cascade.curves if c.rule == "margin")
    middle = curve.points[len(curve.points) // 2]
    marked = choose_on_curve(cascade, "digits", "margin", middle.thresholds)
    assert marked.chosen[:-1] == cascade.chosen
    assert marked.chosen[-1] == ChosenPoint("digits", "margin", middle)
    # nearest thresholds: a plan rounding them still lands on the point
    near = choose_on_curve(cascade, "w", "margin", [t + 1e-7 for t in middle.thresholds])
    assert near.chosen[-1].point == middle
    assert choose_on_curve(cascade, "w", "margin", [0.5]) == cascade
    assert choose_on_curve(cascade, "w", "detector", middle.thresholds) == cascade


def test_a_broken_simulation_file_names_the_file_and_field(tmp_path: Path) -> None:
    bad = tmp_path / "simulation.json"
    bad.write_text("[1]")
    with pytest.raises(ReportError, match=r"simulation\.json: expected a JSON object"):
        load_simulation(bad)
    bad.write_text('{"workloads": {"scan": {"total": {}}}}')
    with pytest.raises(
        ReportError, match=r"simulation\.json: workloads\.scan: expected a field 'by_hour'"
    ):
        load_simulation(bad)
    good = tmp_path / "good.json"
    good.write_text('{"runs": [{"workloads": {}}, {"workloads": {"x": {}}}]}')  # a comparison
    assert load_simulation(good).hours == {}  # the first run
    check = tmp_path / "fidelity.json"
    check.write_text('{"rows": [{"level": "light"}]}')
    with pytest.raises(ReportError, match=r"fidelity\.json: rows\[0\]: expected a field 'within'"):
        load_simulation(good, check)
    bad.write_text('{"workloads": {"scan": {"total": {}, "by_hour": [{"requests": "many"}]}}}')
    with pytest.raises(ReportError, match=r"by_hour\[0\]\.requests: expected a number or null"):
        load_simulation(bad)


def test_a_broken_calibration_file_is_a_report_error(tmp_path: Path) -> None:
    bad = tmp_path / "calibration.json"
    bad.write_text("[1, 2]")
    with pytest.raises(ReportError, match=r"calibration\.json: expected a JSON object"):
        load_calibration_json(bad)
    with pytest.raises(ReportError, match="cannot read"):
        load_calibration_json(tmp_path / "absent.json")
    with pytest.raises(ReportError, match=r"calibrate --json \(no 'rules'\)"):
        cascade_from_calibration({"variants": ["a", "b"]}, source=str(bad))


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


def test_a_chosen_point_must_be_on_a_rules_curve() -> None:
    point = CurvePoint(1.0, 0.9)
    curve = CascadeCurve("max_prob", (point,))
    with pytest.raises(ConfigError, match=r"chosen\[0\]\.rule"):
        CascadeData(("a", "b"), (curve,), point, point, 0.9, (ChosenPoint("w", "margin", point),))
    with pytest.raises(ConfigError, match="stages"):
        CascadeData(("a",), (curve,), point, point, 0.9)


def test_latency_row_knows_when_it_misses_its_slo() -> None:
    assert LatencyRow("w", "edge", 1.0, 2.0, 3.0, slo_p99_ms=3.0).meets_slo
    assert not LatencyRow("w", "edge", 1.0, 2.0, 3.5, slo_p99_ms=3.0).meets_slo
    assert not LatencyRow("w", "edge", 1.0, 2.0, 3.0, slo_p50_ms=0.5).meets_slo
