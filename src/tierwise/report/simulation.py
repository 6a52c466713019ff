"""The report's simulation section: a simulated day of the fleet hour by hour (from
``tierwise simulate -o``'s ``simulation.json``) and, when a fidelity check ran, the
simulator's predictions beside what the live fleet measured.

:func:`simulation_data` reads both documents (ReportError naming the file and field of a
mistake); :func:`simulation_png` draws p99 latency per hour against each workload's SLO,
the share answered in the cloud and the cost per 1M per hour, and predicted against
measured latencies with the ±10% band the check holds them to.
"""

from __future__ import annotations

import io
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import matplotlib as mpl
import matplotlib.style
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure

from tierwise.errors import ReportError
from tierwise.report.calibration import read_json_object

__all__ = [
    "KINDS",
    "FidelityLine",
    "HourRow",
    "SimulationData",
    "load_simulation",
    "share_text",
    "simulation_data",
    "simulation_png",
]

_DPI = 100
#: Tier kinds, in cascade order.
KINDS = ("device", "edge", "cloud")
_COLOURS = ("#2a9d8f", "#e76f51", "#457b9d", "#e9c46a", "#8d6a9f", "#6c757d")


@dataclass(frozen=True)
class HourRow:
    """One workload in one simulated hour."""

    hour: int
    requests: int
    p99_ms: float | None
    cloud_share: float
    degraded: int
    usd_per_million: float | None


@dataclass(frozen=True)
class FidelityLine:
    """One workload at one load level: predicted beside measured."""

    level: str
    workload: str
    requests: int
    predicted: dict[str, Any]
    measured: dict[str, Any]
    within: dict[str, bool]

    @property
    def ok(self) -> bool:
        return all(self.within.values())


@dataclass(frozen=True)
class SimulationData:
    """What the section shows: ``title`` (the run's scenario, hours and seed), hourly
    rows per workload with its SLO, and the fidelity check's lines (may be empty)."""

    title: str
    hours: dict[str, tuple[HourRow, ...]]
    slo_p99_ms: dict[str, float | None]
    fidelity: tuple[FidelityLine, ...] = ()
    fidelity_title: str = ""


def _field(doc: Mapping[str, Any], key: str, where: str) -> Any:
    if not isinstance(doc, Mapping) or key not in doc:
        raise ReportError(f"{where}: expected a field {key!r}")
    return doc[key]


def _optional(doc: Mapping[str, Any], key: str, where: str) -> float | None:
    """A number or null (a figure without requests)."""
    value = doc.get(key) if isinstance(doc, Mapping) else None
    if value is not None and (isinstance(value, bool) or not isinstance(value, int | float)):
        raise ReportError(f"{where}.{key}: expected a number or null, got {value!r}")
    return None if value is None else float(value)


def _side(doc: Any, where: str) -> dict[str, Any]:
    """One side (predicted or measured) of a fidelity row, checked."""
    if not isinstance(doc, Mapping):
        raise ReportError(f"{where}: expected the figures of one side")
    share = _field(doc, "share", where)
    if not isinstance(share, Mapping):
        raise ReportError(f"{where}.share: expected the share of each tier kind")
    return {
        "p50_ms": _optional(doc, "p50_ms", where),
        "p99_ms": _optional(doc, "p99_ms", where),
        "usd_per_million": _optional(doc, "usd_per_million", where),
        "share": {k: _optional(share, k, f"{where}.share") or 0.0 for k in KINDS},
    }


def simulation_data(
    simulation: Mapping[str, Any],
    *,
    source: str = "simulation.json",
    fidelity: Mapping[str, Any] | None = None,
    fidelity_source: str = "fidelity.json",
) -> SimulationData:
    """The section's data from a ``simulation.json`` document (one run) and, optionally,
    a fidelity check's document (``tierwise demo --fidelity``'s ``fidelity.json``)."""
    workloads = _field(simulation, "workloads", source)
    if not isinstance(workloads, Mapping):
        raise ReportError(f"{source}: workloads: expected figures per workload")
    hours: dict[str, tuple[HourRow, ...]] = {}
    slos: dict[str, float | None] = {}
    for name, doc in workloads.items():
        where = f"{source}: workloads.{name}"
        by_hour = _field(doc, "by_hour", where)
        if not isinstance(by_hour, list):
            raise ReportError(f"{where}.by_hour: expected a list of hours")
        rows = []
        for i, hour in enumerate(by_hour):
            at = f"{where}.by_hour[{i}]"
            if not _optional(hour, "requests", at):
                continue
            share = _field(hour, "share", at)
            rows.append(
                HourRow(
                    hour=int(_optional(hour, "hour", at) or 0),
                    requests=int(_optional(hour, "requests", at) or 0),
                    p99_ms=_optional(hour, "p99_ms", at),
                    cloud_share=_optional(share, "cloud", f"{at}.share") or 0.0,
                    degraded=int(_optional(hour, "degraded", at) or 0),
                    usd_per_million=_optional(hour, "usd_per_million", at),
                )
            )
        hours[str(name)] = tuple(rows)
        slos[str(name)] = _optional(_field(doc, "total", where), "slo_p99_ms", f"{where}.total")
    requests = _optional(simulation, "requests", source) or 0
    simulated_h = _optional(simulation, "hours", source) or 0
    from tierwise.sim.results import run_title  # the one wording, as the CLI prints it

    title = run_title({**simulation, "requests": requests, "hours": simulated_h})
    lines: list[FidelityLine] = []
    fidelity_title = ""
    if fidelity is not None:
        found = _field(fidelity, "rows", fidelity_source)
        if not isinstance(found, list):
            raise ReportError(f"{fidelity_source}: rows: expected a list of levels")
        for i, row in enumerate(found):
            where = f"{fidelity_source}: rows[{i}]"
            within = _field(row, "within", where)
            if not isinstance(within, Mapping):
                raise ReportError(f"{where}.within: expected which figures were within")
            lines.append(
                FidelityLine(
                    level=str(_field(row, "level", where)),
                    workload=str(_field(row, "workload", where)),
                    requests=int(_optional(row, "requests", where) or 0),
                    predicted=_side(_field(row, "predicted", where), f"{where}.predicted"),
                    measured=_side(_field(row, "measured", where), f"{where}.measured"),
                    within={str(k): bool(v) for k, v in within.items()},
                )
            )
        fidelity_title = str(fidelity.get("title", ""))
    return SimulationData(title, hours, slos, tuple(lines), fidelity_title)


def load_simulation(path: Path, fidelity: Path | None = None) -> SimulationData:
    """The section's data from a ``simulation.json`` file (one run; of a comparison, the
    first) and optionally a ``fidelity.json``; ReportError naming the file and field."""
    doc: Mapping[str, Any] = read_json_object(path, "simulation", "tierwise simulate -o")
    if "runs" in doc:
        runs = doc["runs"]
        if not isinstance(runs, list) or not runs:
            raise ReportError(f"{path}: runs: expected the compared runs")
        doc = runs[0]
    check = (
        read_json_object(fidelity, "fidelity check", "tierwise demo --fidelity")
        if fidelity is not None
        else None
    )
    return simulation_data(doc, source=str(path), fidelity=check,
                           fidelity_source=str(fidelity))  # fmt: skip


def share_text(side: Mapping[str, Any]) -> str:
    """One side of a fidelity row's shares: ``device/edge/cloud`` in percent."""
    return "/".join(f"{100 * side['share'][k]:.1f}" for k in KINDS)


def simulation_png(data: SimulationData) -> bytes:
    """p99 per hour against the SLO; cloud share and cost per hour; predicted against
    measured latency (when a fidelity check ran)."""
    panels = 3 if data.fidelity else 2
    with matplotlib.style.context("default"), mpl.rc_context({"font.size": 9.0}):
        figure = Figure(figsize=(9.0, 2.6 * panels), dpi=_DPI, layout="constrained")
        FigureCanvasAgg(figure)
        latency, cloud = figure.add_subplot(panels, 1, 1), figure.add_subplot(panels, 1, 2)
        cost = cloud.twinx()
        for i, (name, rows) in enumerate(data.hours.items()):
            colour = _COLOURS[i % len(_COLOURS)]
            xs = [r.hour for r in rows]
            latency.plot(xs, [r.p99_ms or 0.0 for r in rows], "-o", ms=3, color=colour,
                         label=f"{name} p99")  # fmt: skip
            slo = data.slo_p99_ms.get(name)
            if slo:
                latency.axhline(slo, color=colour, ls="--", lw=1, label=f"{name} SLO")
            cloud.plot(xs, [100 * r.cloud_share for r in rows], "-", color=colour,
                       label=f"{name} cloud share")  # fmt: skip
            cost.plot(xs, [r.usd_per_million or 0.0 for r in rows], ":", color=colour,
                      label=f"{name} USD / 1M")  # fmt: skip
        latency.set_ylabel("p99 latency, ms")
        latency.set_xlabel("hour of the simulated day")
        latency.legend(fontsize=7, ncols=2)
        latency.grid(alpha=0.3)
        cloud.set_ylabel("answered in the cloud, %")
        cost.set_ylabel("USD per 1M")
        cloud.set_xlabel("hour of the simulated day")
        handles = cloud.get_legend_handles_labels()
        more = cost.get_legend_handles_labels()
        cloud.legend(handles[0] + more[0], handles[1] + more[1], fontsize=7, ncols=2)
        cloud.grid(alpha=0.3)
        if data.fidelity:
            ax = figure.add_subplot(panels, 1, 3)
            top = 1.0
            for q, marker in (("p50_ms", "o"), ("p99_ms", "s")):
                both = [x for x in data.fidelity if x.measured[q] and x.predicted[q]]
                live = [float(line.measured[q]) for line in both]
                sim = [float(line.predicted[q]) for line in both]
                colours = ["#2a9d8f" if line.within.get(q[:3]) else "#d62828"
                           for line in both]  # fmt: skip
                ax.scatter(live, sim, marker=marker, c=colours, label=q[:3])
                top = max(top, *live, *sim)
            line_xs: list[float] = [0.1, top * 1.2]
            ax.plot(line_xs, line_xs, color="black", lw=1)
            ax.fill_between(line_xs, [x * 0.9 for x in line_xs], [x * 1.1 for x in line_xs],
                            color="#cccccc", alpha=0.5, label="±10%")  # fmt: skip
            ax.set_xscale("log")
            ax.set_yscale("log")
            ax.set_xlabel("measured live, ms")
            ax.set_ylabel("simulated, ms")
            ax.legend(fontsize=7)
            ax.grid(alpha=0.3)
        buffer = io.BytesIO()
        figure.savefig(buffer, format="png", dpi=_DPI, metadata={"Software": None})
        return buffer.getvalue()
