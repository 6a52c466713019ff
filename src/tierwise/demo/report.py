"""The demo's report: the plan's report plus what the replay measured.

To the report of the plan (:func:`tierwise.report.load.load_report_data`) the demo adds
the latency each replayed route measured against its SLO, and makes the replay its
summary: per route, accuracy, where requests were answered, latency and cost per 1M.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import replace
from typing import Any

from tierwise.demo.replay import KINDS, ReplaySummary
from tierwise.demo.stages import StoryFiles
from tierwise.demo.tiers import baseline_workload
from tierwise.report import LatencyRow, ReportData, SummaryTable
from tierwise.report.load import load_report_data
from tierwise.spec import load_spec

__all__ = ["MEASURED", "MEASURED_LINKED", "SUMMARY_COLUMNS", "demo_report_data", "replay_table"]

#: Where the replay's latencies come from (and with the demo's emulated links).
MEASURED = "measured on loopback"
MEASURED_LINKED = "measured on loopback through links with the plan's round trips"
SUMMARY_COLUMNS = ("route", "acc", *KINDS, "p50 ms", "p99/SLO ms", "USD / 1M")


def _route(summary: ReplaySummary, main_workload: str) -> tuple[str, str]:
    """(route label, spec workload) of a replayed workload."""
    if summary.workload == baseline_workload(main_workload):
        return "cloud only", main_workload
    return "plan", summary.workload


def replay_table(
    replayed: Sequence[ReplaySummary],
    slo_p99_ms: dict[str, float],
    *,
    main_workload: str,
    requests: int,
    network: bool = False,
) -> SummaryTable:
    """One row per replayed route: each workload as planned, then ``cloud only`` (the
    main workload, every request to the cloud); ``slo_p99_ms`` by spec workload."""
    rows = []
    for summary in replayed:
        route, workload = _route(summary, main_workload)
        slo = slo_p99_ms.get(workload)
        rows.append(
            (
                workload if route == "plan" else route,
                f"{summary.accuracy:.1%}",
                *(f"{summary.share[k]:.0%}" for k in KINDS),
                f"{summary.p50_ms:.3g}",
                f"{summary.p99_ms:.3g}/" + ("-" if slo is None else f"{slo:g}"),
                f"{summary.usd_per_million:.3g}",
            )
        )
    where = "loopback, behind links with the plan's round trips" if network else "loopback"
    title = (
        f"{requests} held-out reads per route through tierwise.Client, tier servers on "
        f"{where}; cloud only: {main_workload}, every read to the cloud; USD at the plan's "
        "prices"
    )
    return SummaryTable(title, SUMMARY_COLUMNS, tuple(rows))


def demo_report_data(
    files: StoryFiles,
    replayed: Sequence[ReplaySummary],
    *,
    main_workload: str,
    requests: int,
    network: bool = False,
    simulation: Any = None,
) -> ReportData:
    """The plan's report with the replay's latencies and summary, and ``simulation`` (a
    :class:`~tierwise.report.simulation.SimulationData`) as its simulation section."""
    base = load_report_data(
        files.plan,
        profiles=[files.profiles],
        calibrations=[files.calibration],
        title="tierwise demo: the parcel hub, planned and replayed",
    )
    spec = load_spec(files.fleet)
    measured = []
    for summary in replayed:
        route, workload = _route(summary, main_workload)
        found = spec.workloads.get(workload)
        slo = found.slo if found is not None else None
        measured.append(
            LatencyRow(
                workload=workload,
                label=route,
                p50_ms=summary.p50_ms,
                p95_ms=summary.p95_ms,
                p99_ms=summary.p99_ms,
                slo_p50_ms=slo.p50_ms if slo else None,
                slo_p95_ms=slo.p95_ms if slo else None,
                slo_p99_ms=slo.p99_ms if slo else None,
                source=MEASURED_LINKED if network else MEASURED,
            )
        )
    slos = {name: w.slo.p99_ms for name, w in spec.workloads.items()}
    table = replay_table(
        replayed, slos, main_workload=main_workload, requests=requests, network=network
    )
    facts = (*base.facts, ("live plan", str(files.live_plan)))
    order = list(spec.workloads)
    latency = sorted(
        (*base.latency, *measured),
        key=lambda r: order.index(r.workload) if r.workload in order else len(order),
    )
    return replace(base, latency=tuple(latency), summary=table, facts=facts, simulation=simulation)
