"""The report page: one self-contained HTML file beside its PNG plots.

:func:`write_report` draws the plots (:mod:`tierwise.report.plots`) into the output folder
and writes ``index.html`` next to them. The page loads nothing from the network: the style
is inline, there is no script, images are relative files. Every piece of text is escaped.
Sections carry stable ids (:data:`SECTIONS`); a section without data says so instead of
showing a plot.
"""

from __future__ import annotations

import html
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from tierwise.errors import ReportError
from tierwise.report.data import (
    CascadeData,
    CurvePoint,
    DecisionMatrix,
    LatencyRow,
    ReportData,
    WorkloadCost,
)
from tierwise.report.plots import cascade_png, cost_png, latency_png, matrix_png
from tierwise.report.simulation import SimulationData, share_text, simulation_png

__all__ = ["PAGE_NAME", "SECTIONS", "ReportFiles", "render_page", "write_report"]

#: The page's file name inside the output folder.
PAGE_NAME = "index.html"
#: Section id -> heading, in page order.
SECTIONS: dict[str, str] = {
    "summary": "Summary",
    "matrix": "Decision matrix",
    "cost": "Cost per 1M inferences by workload and tier",
    "latency": "Latency percentiles against SLOs",
    "cascade": "Cascade: accuracy against cost",
    "simulation": "Simulation: a day of the fleet, and predicted against measured",
}
_PLOTS = {
    "matrix": "matrix.png",
    "cost": "cost.png",
    "latency": "latency.png",
    "cascade": "cascade.png",
    "simulation": "simulation.png",
}

_NO_SIMULATION = (
    "No simulation: run `tierwise simulate --plan PLAN -o DIR` and pass "
    "`--simulation DIR/simulation.json` to tierwise report."
)

_STYLE = """
body { font-family: system-ui, -apple-system, "Segoe UI", sans-serif; margin: 2rem auto;
       max-width: 980px; color: #1d2d35; line-height: 1.4; padding: 0 1rem; }
h1 { font-size: 1.6rem; margin-bottom: 0.3rem; }
h2 { font-size: 1.2rem; border-bottom: 1px solid #ccd; padding-bottom: 0.2rem; margin-top: 2rem; }
dl.facts { display: grid; grid-template-columns: max-content auto; gap: 0.1rem 1rem;
           font-size: 0.9rem; color: #445; }
dl.facts dt { font-weight: 600; }
dl.facts dd { margin: 0; overflow-wrap: anywhere; }
img { max-width: 100%; height: auto; display: block; margin: 0.5rem 0; }
table { border-collapse: collapse; font-size: 0.85rem; margin: 0.5rem 0; }
th, td { border: 1px solid #dde; padding: 0.2rem 0.5rem; text-align: left; vertical-align: top; }
th { background: #f1f4f7; }
td.num { text-align: right; font-variant-numeric: tabular-nums; }
p.empty { color: #777; font-style: italic; }
.miss { color: #c1121f; font-weight: 600; }
details { margin: 0.5rem 0; }
"""


@dataclass(frozen=True)
class ReportFiles:
    """What :func:`write_report` wrote: the page and each plot, by section id."""

    page: Path
    plots: dict[str, Path]


def _e(value: object) -> str:
    return html.escape(str(value), quote=True)


_NUMERIC = re.compile(r"^[-+$]?[\d.,]+(e[-+]?\d+)?%?( / [-+$]?[\d.,]+(e[-+]?\d+)?%?)?$")


def _numeric_columns(rows: Sequence[Sequence[str]]) -> set[int]:
    """Columns whose every cell is a number (or ``-``): right-aligned."""
    if not rows:
        return set()
    return {
        j
        for j in range(len(rows[0]))
        if all(_NUMERIC.match(row[j]) or row[j] == "-" for row in rows)
    }


def _table(columns: Sequence[str], rows: Sequence[Sequence[str]], numeric: set[int]) -> str:
    head = "".join(f"<th>{_e(c)}</th>" for c in columns)
    body = "".join(
        "<tr>"
        + "".join(
            f'<td class="num">{_e(cell)}</td>' if j in numeric else f"<td>{_e(cell)}</td>"
            for j, cell in enumerate(row)
        )
        + "</tr>"
        for row in rows
    )
    return f"<table><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>"


def _usd(value: float | None) -> str:
    return "-" if value is None else f"${value:,.4g}"


def _ms(value: float | None) -> str:
    return "-" if value is None else f"{value:.3g}"


def _score(value: float | None) -> str:
    return "infeasible" if value is None else f"{value:.3g}"


def _matrix_details(matrix: DecisionMatrix) -> str:
    rows = [
        [row.label, driver, _score(row.scores[driver]), row.reasons.get(driver, "")]
        for row in matrix.rows
        for driver in matrix.drivers
    ]
    totals = [[row.label, _score(row.total), row.verdict] for row in matrix.rows]
    return (
        _table(["workload @ tier", "total", "verdict"], totals, {1})
        + "<details><summary>Every score with its reason</summary>"
        + _table(["workload @ tier", "driver", "score", "reason"], rows, {2})
        + "</details>"
    )


def _cost_details(costs: Sequence[WorkloadCost]) -> str:
    tiers = list(dict.fromkeys(t for c in costs for t in c.usd_per_million_by_tier))
    rows = [
        [c.workload]
        + [_usd(c.usd_per_million_by_tier.get(t)) for t in tiers]
        + [_usd(c.planned_usd_per_million), _usd(c.budget_usd_per_million)]
        for c in costs
    ]
    return _table(["workload", *tiers, "plan", "budget"], rows, set(range(1, len(tiers) + 3)))


def _latency_details(rows: Sequence[LatencyRow]) -> str:
    table = [
        [r.workload, r.label, r.source]
        + [f"{_ms(ms)} / {_ms(slo)}" for ms, slo in r.percentiles().values()]
        + ["yes" if r.meets_slo else "no"]
        for r in rows
    ]
    columns = ["workload", "route", "source", "p50 / SLO", "p95 / SLO", "p99 / SLO", "meets SLO"]
    return _table(columns, table, {3, 4, 5})


def _cascade_details(cascade: CascadeData) -> str:
    def row(name: str, rule: str, point: CurvePoint) -> list[str]:
        thresholds = " / ".join(f"{t:.4g}" for t in point.thresholds) or "-"
        return [name, rule, thresholds, f"{point.accuracy * 100:.2f}%",
                _usd(point.cost_usd_per_million)]  # fmt: skip

    rows = [row(c.label, c.rule, c.point) for c in cascade.chosen]
    rows.append(row("oracle", "-", cascade.oracle))
    rows.append(row("cloud only", "-", cascade.cloud_only))
    prices = f" Costs at {cascade.cost_source} prices." if cascade.cost_source else ""
    note = (
        f"<p>Stages {_e(' -> '.join(cascade.stages))}; target accuracy "
        f"{cascade.target_accuracy * 100:.2f}%"
        + (f" over {cascade.samples} held-out samples" if cascade.samples else "")
        + ". The oracle escalates a request only while the current stage's answer is wrong: "
        f"no threshold setting is as accurate for less.{_e(prices)}</p>"
    )
    if not cascade.chosen:
        note += '<p class="miss">No setting of any rule reaches the target.</p>'
    columns = ["point", "rule", "thresholds", "accuracy", "USD / 1M"]
    return note + _table(columns, rows, {3, 4})


def _simulation_details(sim: SimulationData) -> str:
    out = f"<p>{_e(sim.title)}</p>"
    if not sim.fidelity:
        return out
    columns = ["level", "workload", "requests", "p50 ms sim / live", "p99 ms sim / live",
               "device / edge / cloud % sim / live", "USD per 1M sim / live", "within"]  # fmt: skip

    def pair(key: str, line: Any) -> str:
        return " / ".join("-" if v is None else f"{v:.3g}"
                          for v in (line.predicted[key], line.measured[key]))  # fmt: skip

    rows = [
        [line.level, line.workload, str(line.requests), pair("p50_ms", line),
         pair("p99_ms", line), f"{share_text(line.predicted)} / {share_text(line.measured)}",
         pair("usd_per_million", line),
         "yes" if line.ok else "no: " + ", ".join(k for k, v in line.within.items() if not v)]
        for line in sim.fidelity
    ]  # fmt: skip
    caption = f"<p>{_e(sim.fidelity_title)}</p>" if sim.fidelity_title else ""
    return out + caption + _table(columns, rows, {2})


def _section(key: str, body: str) -> str:
    return f'<section id="{key}" data-section="{key}"><h2>{_e(SECTIONS[key])}</h2>{body}</section>'


def _figure(key: str, alt: str) -> str:
    return f'<img src="{_PLOTS[key]}" alt="{_e(alt)}" data-plot="{key}">'


def _empty(what: str) -> str:
    return f'<p class="empty">{_e(what)}</p>'


def render_page(data: ReportData, plots: Sequence[str]) -> str:
    """The HTML of the page; ``plots`` are the section ids whose PNG sits beside it."""
    parts = [f"<h1>{_e(data.title)}</h1>"]
    if data.facts:
        facts = "".join(f"<dt>{_e(k)}</dt><dd>{_e(v)}</dd>" for k, v in data.facts)
        parts.append(f'<dl class="facts">{facts}</dl>')
    summary = data.summary
    parts.append(
        _section(
            "summary",
            _empty("No summary.")
            if summary is None
            else f"<p>{_e(summary.title)}</p>"
            + _table(summary.columns, summary.rows, _numeric_columns(summary.rows)),
        )
    )
    details: dict[str, tuple[str, Callable[[], str]]] = {
        "matrix": (
            "decision matrix heatmap",
            lambda: _matrix_details(data.matrix) if data.matrix else "",
        ),
        "cost": ("cost per 1M inferences by workload and tier", lambda: _cost_details(data.costs)),
        "latency": ("latency percentiles against SLOs", lambda: _latency_details(data.latency)),
        "cascade": (
            "cascade accuracy against cost",
            lambda: _cascade_details(data.cascade) if data.cascade else "",
        ),
        "simulation": (
            "simulated day and fidelity check",
            lambda: _simulation_details(data.simulation),
        ),
    }
    for key, (alt, detail) in details.items():
        if key == "simulation" and key not in plots and data.simulation is not None:
            parts.append(_section(key, detail()))  # no hours to plot: the tables still show
        elif key in plots:
            parts.append(_section(key, _figure(key, alt) + detail()))
        else:
            missing = (
                _NO_SIMULATION if key == "simulation" else f"No data for the {alt} in this plan."
            )
            parts.append(_section(key, _empty(missing)))
    body = "\n".join(parts)
    return (
        '<!DOCTYPE html>\n<html lang="en"><head><meta charset="utf-8">'
        '<meta name="viewport" content="width=device-width, initial-scale=1">'
        f"<title>{_e(data.title)}</title><style>{_STYLE}</style></head>\n"
        f"<body>\n{body}\n</body></html>\n"
    )


def _draw(data: ReportData) -> dict[str, bytes]:
    out: dict[str, bytes] = {}
    if data.matrix is not None and data.matrix.rows:
        out["matrix"] = matrix_png(data.matrix)
    if data.costs:
        out["cost"] = cost_png(data.costs)
    if data.latency:
        out["latency"] = latency_png(data.latency)
    if data.cascade is not None:
        out["cascade"] = cascade_png(data.cascade)
    if data.simulation is not None and data.simulation.hours:
        out["simulation"] = simulation_png(data.simulation)
    return out


def write_report(data: ReportData, out_dir: str | Path) -> ReportFiles:
    """Draw the plots into ``out_dir`` (created if needed) and write the page beside them;
    a plot an earlier report left there and this one lacks is removed."""
    folder = Path(out_dir)
    pngs = _draw(data)
    try:
        folder.mkdir(parents=True, exist_ok=True)
        plots = {}
        for key, name in _PLOTS.items():
            path = folder / name
            if key in pngs:
                path.write_bytes(pngs[key])
                plots[key] = path
            else:
                path.unlink(missing_ok=True)  # a plot of an earlier report, now without data
        page = folder / PAGE_NAME
        page.write_text(render_page(data, list(pngs)), encoding="utf-8")
    except OSError as exc:
        raise ReportError(f"cannot write the report into {folder}: {exc.strerror or exc}") from exc
    return ReportFiles(page=page, plots=plots)
