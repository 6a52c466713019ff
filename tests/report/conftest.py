"""Report fixtures: a ReportData built from the real zoo's calibration, latencies measured
here and the cost model's prices, and headless Chromium to open the page in."""

from __future__ import annotations

from collections.abc import Iterator
from functools import partial
from pathlib import Path
from typing import Any

import onnxruntime as ort
import pytest

from binaries import require_binary
from browser_fleet import CHROMIUM_ARGS as BROWSER_ARGS
from tierwise.bench import measure_latency
from tierwise.bench.measure import MeasureSettings, profile_zoo
from tierwise.bench.profiles import ProfileSet
from tierwise.calibrate.costs import spec_usd_per_inference
from tierwise.calibrate.sweep import CalibrationResult, calibrate
from tierwise.report import (
    CascadeData,
    DecisionMatrix,
    LatencyRow,
    MatrixRow,
    ReportData,
    SummaryTable,
    WorkloadCost,
    cascade_from_calibration,
)
from tierwise.report.simulation import SimulationData, simulation_data
from tierwise.spec import load_spec
from tierwise.zoo import load_eval, load_zoo

ROOT = Path(__file__).resolve().parents[2]
CHROMIUM_ARGS = ["--headless", *BROWSER_ARGS]
DRIVERS = ("latency", "privacy", "throughput", "memory", "cost", "operations")
TITLE = 'digits fleet <script>alert("x")</script> & co'


@pytest.fixture(scope="session")
def shelf_costs() -> dict[str, float]:
    """USD per inference by tier kind from the retail-shelf example's cost model (a cloud
    instance serving 4.4 inferences/s, the demo's prices)."""
    spec = load_spec(ROOT / "examples" / "retail-shelf.yaml")
    found = spec_usd_per_inference(spec, workload="shelf-detect", cloud_throughput_per_s=4.4)
    return found.usd_per_inference


@pytest.fixture(scope="session")
def calibration(shared_zoo_dir: Path, shelf_costs: dict[str, float]) -> CalibrationResult:
    return calibrate(shared_zoo_dir, target_accuracy=0.995, usd_per_inference=shelf_costs)


@pytest.fixture(scope="session")
def measured_ms(shared_zoo_dir: Path) -> dict[str, tuple[float, float, float]]:
    """p50 / p95 / p99 of one batch-1 inference of tiny, small and large, measured here."""
    x, _ = load_eval(shared_zoo_dir)
    zoo = load_zoo(shared_zoo_dir)
    out = {}
    for name in ("tiny", "small", "large"):
        session = ort.InferenceSession(
            str(zoo.model_path(name)), providers=["CPUExecutionProvider"]
        )
        feeds = {session.get_inputs()[0].name: x[:1]}
        stats = measure_latency(partial(session.run, None, feeds), runs=50, warmup_runs=5)
        out[name] = (stats.p50_ms, stats.p95_ms, stats.p99_ms)
    return out


def _matrix() -> DecisionMatrix:
    """Scores 1..5; None marks a hard constraint the tier breaks."""
    table: dict[str, tuple[tuple[int | None, ...], str]] = {
        "device": ((5, 5, 3, 4, 5, 2), "rank 1"),
        "edge": ((4, 4, 4, 5, 3, 4), "rank 2"),
        "cloud": ((2, None, 5, 5, 2, 5), "infeasible"),
    }
    rows = []
    for tier, (scores, verdict) in table.items():
        feasible = [s for s in scores if s is not None]
        rows.append(
            MatrixRow(
                workload="digits",
                tier=tier,
                scores=dict(zip(DRIVERS, scores, strict=True)),
                reasons={d: f"{d} on {tier}: <why> & how" for d in DRIVERS},
                total=None if len(feasible) < len(scores) else sum(feasible) / len(feasible),
                verdict=verdict,
            )
        )
    return DecisionMatrix(DRIVERS, tuple(rows), score_range=(1.0, 5.0))


@pytest.fixture(scope="session")
def report_data(
    calibration: CalibrationResult,
    measured_ms: dict[str, tuple[float, float, float]],
) -> ReportData:
    cascade: CascadeData = cascade_from_calibration(calibration)
    (target,) = cascade.chosen
    usd = dict(zip(calibration.tiers, calibration.usd_per_inference, strict=True))
    cost = WorkloadCost(
        "digits",
        {tier: value * 1e6 for tier, value in usd.items()},
        planned_usd_per_million=target.point.cost_usd_per_million,
        planned_label="cascade",
        budget_usd_per_million=20.0,
    )
    slo: dict[str, Any] = {"slo_p50_ms": 2.0, "slo_p95_ms": 5.0, "slo_p99_ms": 10.0}
    latency = [
        LatencyRow("digits", f"{name} ({tier})", *measured_ms[name], **slo)
        for name, tier in (("tiny", "device"), ("small", "edge"), ("large", "cloud"))
    ]
    rows = [
        (name, f"{point.accuracy:.2%}", f"{point.cost_usd_per_million:.2f}")
        for name, point in (("cascade", target.point), ("cloud only", cascade.cloud_only))
    ]
    summary = SummaryTable("cascade against cloud only", ("route", "accuracy", "USD / 1M"), rows)
    return ReportData(
        TITLE,
        matrix=_matrix(),
        costs=(cost,),
        latency=tuple(latency),
        cascade=cascade,
        summary=summary,
        facts=(("plan", "plans/<digits>.yaml"), ("costs", calibration.cost_source)),
        simulation=simulated_day(),
    )


def simulated_day() -> SimulationData:
    """A day as ``tierwise simulate -o`` writes it (two workloads, a cloud cut at 10:00)
    and a fidelity check with one miss."""

    def hour(h: int, p99: float, cloud: float) -> dict[str, Any]:
        return {"hour": h, "requests": 3600, "p99_ms": p99, "degraded": 0,
                "share": {"device": 0.5, "edge": 0.5 - cloud, "cloud": cloud},
                "usd_per_million": 1.0 + 40 * cloud}  # fmt: skip

    def side(p50: float, p99: float) -> dict[str, Any]:
        return {"p50_ms": p50, "p99_ms": p99, "usd_per_million": 1.0,
                "share": {"device": 0.5, "edge": 0.48, "cloud": 0.02}}  # fmt: skip

    doc = {
        "scenario": "bad-day", "hours": 24, "seed": 0, "requests": 2 * 24 * 3600,
        "workloads": {
            name: {"total": {"slo_p99_ms": slo},
                   "by_hour": [hour(h, p99 * (3 if h == 10 else 1), 0.0 if h == 10 else 0.02)
                               for h in range(24)]}
            for name, slo, p99 in (("digits", 300.0, 40.0), ("forms", 100.0, 12.0))
        },
    }  # fmt: skip
    check = {
        "title": "predicted <beside> measured",
        "rows": [
            {"level": "light", "workload": "digits", "requests": 500,
             "predicted": side(12.0, 40.0), "measured": side(12.5, 41.0),
             "within": {"p50": True, "p99": True, "share": True, "cost": True}},
            {"level": "near-edge-capacity", "workload": "digits", "requests": 2000,
             "predicted": side(20.0, 90.0), "measured": side(21.0, 120.0),
             "within": {"p50": True, "p99": False, "share": True, "cost": True}},
        ],
    }  # fmt: skip
    return simulation_data(doc, fidelity=check)


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    """Debian's headless Chromium driven by playwright (never a downloaded browser).

    Module-scoped: playwright's sync API keeps an event loop running in this thread while
    it is open, which async tests elsewhere must not meet."""
    chromium = require_binary("chromium")
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(
            executable_path=chromium, args=CHROMIUM_ARGS, headless=True
        )
        try:
            yield browser
        finally:
            browser.close()


@pytest.fixture(scope="session")
def digits_profiles(shared_zoo_dir: Path) -> ProfileSet:
    """The zoo measured here, briefly (batch 1 and 8, CPU)."""
    settings = MeasureSettings(
        batch_sizes=(1, 8), runs=20, warmup_runs=2, max_seconds_per_batch=0.2
    )
    return profile_zoo(shared_zoo_dir, model="digits", providers=["cpu"], settings=settings)
