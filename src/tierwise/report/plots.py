"""The report's four plots as PNG bytes: matplotlib's Agg canvas, no pyplot, no display.

Each function draws on its own :class:`~matplotlib.figure.Figure` under matplotlib's
default style (whatever a user's matplotlibrc says), and PNGs carry no version or date,
so the same data gives the same bytes.
"""

from __future__ import annotations

import io
from collections.abc import Iterator, Sequence
from contextlib import contextmanager

import matplotlib as mpl
import matplotlib.style
import numpy as np
from matplotlib.axes import Axes
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure

from tierwise.errors import ConfigError
from tierwise.report.data import CascadeData, DecisionMatrix, LatencyRow, WorkloadCost

__all__ = ["DPI", "cascade_png", "cost_png", "latency_png", "matrix_png"]

#: Resolution of every plot; figure sizes are in inches.
DPI = 100
_WIDTH_IN = 9.0
_PALETTE = ("#2a9d8f", "#e9c46a", "#457b9d", "#e76f51", "#8d6a9f", "#6c757d")
_PERCENTILE_COLOURS = {"p50": "#8ecae6", "p95": "#219ebc", "p99": "#023047"}
_CHOSEN_COLOURS = ("#e63946", "#9d4edd", "#f77f00", "#06d6a0")
_RULE_COLOURS = ("#457b9d", "#2a9d8f", "#e9c46a", "#8d6a9f", "#6c757d")
# a log axis once the values span more than this ratio
_LOG_SPAN = 50.0


@contextmanager
def _figure(height_in: float) -> Iterator[Figure]:
    with matplotlib.style.context("default"), mpl.rc_context({"font.size": 9.0}):
        figure = Figure(figsize=(_WIDTH_IN, height_in), dpi=DPI, layout="constrained")
        FigureCanvasAgg(figure)
        yield figure


def _png(figure: Figure) -> bytes:
    buffer = io.BytesIO()
    figure.savefig(buffer, format="png", dpi=DPI, metadata={"Software": None})
    return buffer.getvalue()


def _require(parameter: str, items: Sequence[object]) -> None:
    if not items:
        raise ConfigError(parameter, "at least one row to plot")


def _short(value: float, unit: str = "") -> str:
    if value == 0:
        return f"{unit}0"
    if value >= 100:
        return f"{unit}{value:,.0f}"
    if value >= 1:
        return f"{unit}{value:.2f}"
    return f"{unit}{value:.2g}"


def matrix_png(matrix: DecisionMatrix) -> bytes:
    """Heatmap of the decision matrix: one row per workload @ tier, one column per driver,
    each cell annotated with its score (a grey cross where the tier breaks a hard
    constraint); the row's total and verdict on the right."""
    _require("matrix.rows", matrix.rows)
    low, high = matrix.score_range
    raw = [[row.scores[d] for d in matrix.drivers] for row in matrix.rows]
    scores = np.ma.masked_invalid(
        np.array([[np.nan if v is None else v for v in r] for r in raw], dtype=np.float64)
    )
    colours = mpl.colormaps["RdYlGn"].with_extremes(bad="#d9d9d9")
    with _figure(1.4 + 0.38 * len(matrix.rows)) as figure:
        ax = figure.add_subplot()
        image = ax.imshow(scores, cmap=colours, vmin=low, vmax=high, aspect="auto")
        ax.set_xticks(range(len(matrix.drivers)), labels=list(matrix.drivers))
        ax.set_yticks(range(len(matrix.rows)), labels=[r.label for r in matrix.rows])
        ax.tick_params(top=True, bottom=False, labeltop=True, labelbottom=False)
        ax.tick_params(axis="x", labelrotation=20)
        for i, row in enumerate(raw):
            for j, value in enumerate(row):
                if value is None:
                    ax.text(j, i, "x", ha="center", va="center", color="#7a0000")
                    continue
                shade = (value - low) / (high - low)
                colour = "white" if shade < 0.2 or shade > 0.85 else "black"
                ax.text(j, i, f"{value:.2g}", ha="center", va="center", color=colour)
        right = ax.secondary_yaxis("right")
        totals = ["-" if r.total is None else f"{r.total:.3g}" for r in matrix.rows]
        right.set_yticks(
            range(len(matrix.rows)),
            labels=[f"{t}  {r.verdict}".rstrip() for t, r in zip(totals, matrix.rows, strict=True)],
        )
        right.set_ylabel("total, verdict")
        figure.colorbar(
            image, ax=ax, location="bottom", shrink=0.5, label="score (x: breaks a hard constraint)"
        )
        return _png(figure)


def _log_if_wide(values: Sequence[float]) -> bool:
    positive = [v for v in values if v > 0]
    return bool(positive) and max(positive) / min(positive) > _LOG_SPAN


def cost_png(costs: Sequence[WorkloadCost]) -> bytes:
    """Grouped bars: USD per 1M inferences of each workload on each tier, the plan's
    placement hatched, the budget as a dashed red line over the group."""
    _require("costs", costs)
    tiers = list(dict.fromkeys(t for c in costs for t in c.usd_per_million_by_tier))
    series = [*tiers, "plan"]
    values = [v for c in costs for v in c.usd_per_million_by_tier.values()]
    values += [c.planned_usd_per_million or 0.0 for c in costs]
    values += [c.budget_usd_per_million or 0.0 for c in costs]
    log = _log_if_wide(values)
    floor = min((v for v in values if v > 0), default=1.0) / 3 if log else 0.0
    width = 0.8 / len(series)
    with _figure(4.2) as figure:
        ax = figure.add_subplot()
        for k, name in enumerate(series):
            xs, heights, labels = [], [], []
            for i, cost in enumerate(costs):
                value = (
                    cost.planned_usd_per_million
                    if name == "plan"
                    else cost.usd_per_million_by_tier.get(name)
                )
                if value is None:
                    continue
                xs.append(i - 0.4 + width * (k + 0.5))
                heights.append(max(value, floor))
                labels.append(_short(value, "$"))
            if not xs:
                continue
            plan = name == "plan"
            bars = ax.bar(
                xs,
                heights,
                width * 0.92,
                label=costs[0].planned_label if plan else name,
                color="white" if plan else _PALETTE[k % len(_PALETTE)],
                edgecolor="black",
                hatch="//" if plan else None,
                linewidth=0.6,
            )
            ax.bar_label(bars, labels=labels, fontsize=7, padding=1)
        for i, cost in enumerate(costs):
            if cost.budget_usd_per_million is not None:
                ax.hlines(
                    max(cost.budget_usd_per_million, floor),
                    i - 0.45,
                    i + 0.45,
                    colors="#d62828",
                    linestyles="dashed",
                    linewidth=1.2,
                    label="budget" if i == _first_budget(costs) else "_nolegend_",
                )
        if log:
            ax.set_yscale("log")
        ax.set_xticks(range(len(costs)), labels=[c.workload for c in costs])
        ax.set_ylabel("USD per 1M inferences" + (" (log)" if log else ""))
        ax.margins(y=0.15)
        figure.legend(fontsize=8, ncols=min(len(series) + 1, 6), loc="outside lower center")
        ax.grid(axis="y", alpha=0.3)
        return _png(figure)


def _first_budget(costs: Sequence[WorkloadCost]) -> int:
    return next(i for i, c in enumerate(costs) if c.budget_usd_per_million is not None)


def latency_png(rows: Sequence[LatencyRow]) -> bytes:
    """Horizontal bars of p50 / p95 / p99 per route, with each percentile's SLO as a black
    tick; a bar past its SLO is outlined red."""
    _require("latency", rows)
    values = [v for r in rows for v, slo in r.percentiles().values() for v in (v, slo or 0.0)]
    log = _log_if_wide(values)
    floor = min((v for v in values if v > 0), default=1.0) / 3 if log else 0.0
    height = 0.8 / 3
    with _figure(1.2 + 0.62 * len(rows)) as figure:
        ax = figure.add_subplot()
        for k, (name, colour) in enumerate(_PERCENTILE_COLOURS.items()):
            ys = [i - 0.4 + height * (k + 0.5) for i in range(len(rows))]
            pairs = [r.percentiles()[name] for r in rows]
            over = [slo is not None and ms > slo for ms, slo in pairs]
            ax.barh(
                ys,
                [max(ms, floor) for ms, _ in pairs],
                height * 0.9,
                label=name,
                color=colour,
                edgecolor=["#d62828" if o else colour for o in over],
                linewidth=[1.6 if o else 0.0 for o in over],
            )
            slo_points = [(y, slo) for y, (_, slo) in zip(ys, pairs, strict=True) if slo]
            if slo_points:
                ax.scatter(
                    [s for _, s in slo_points],
                    [y for y, _ in slo_points],
                    marker="|",
                    s=120,
                    color="black",
                    linewidths=2.0,
                    zorder=3,
                    label="SLO" if k == 0 else None,
                )
        if log:
            ax.set_xscale("log")
        labels = [
            f"{r.workload}: {r.label}, {r.source}" + ("" if r.meets_slo else " (misses SLO)")
            for r in rows
        ]
        ax.set_yticks(range(len(rows)), labels=labels)
        ax.invert_yaxis()
        ax.set_xlabel("latency, ms" + (" (log)" if log else ""))
        ax.grid(axis="x", alpha=0.3)
        figure.legend(fontsize=8, ncols=4, loc="outside lower center")
        return _png(figure)


def _accuracy_limits(cascade: CascadeData) -> tuple[float, float]:
    ys = [p.accuracy for c in cascade.curves for p in c.points]
    ys += [cascade.oracle.accuracy, cascade.cloud_only.accuracy, cascade.target_accuracy]
    low, high = min(ys), max(ys)
    pad = max((high - low) * 0.06, 0.002)
    return max(low - pad, 0.0) * 100, min(high + pad, 1.0) * 100


def _mark(
    ax: Axes,
    x: float,
    y: float,
    text: str,
    marker: str,
    colour: str,
    size: float,
    *,
    below: bool = True,
) -> None:
    ax.scatter(
        [x], [y * 100], marker=marker, s=size, color=colour, edgecolor="black", zorder=4, label=text
    )
    ax.annotate(
        text.split(" (")[0],
        (x, y * 100),
        textcoords="offset points",
        xytext=(7, -12 if below else 6),
        fontsize=8,
    )


def cascade_png(cascade: CascadeData) -> bytes:
    """Accuracy against USD per 1M inferences: each rule's front as a step line, the chosen
    settings (stars), the oracle bound (diamond), cloud only (square) and the target. The
    cost axis is logarithmic when costs span more than a factor of 50."""
    oracle, cloud = cascade.oracle, cascade.cloud_only
    costs = [p.cost_usd_per_million for c in cascade.curves for p in c.points]
    costs += [oracle.cost_usd_per_million, cloud.cost_usd_per_million]
    log = _log_if_wide(costs)
    floor = min((v for v in costs if v > 0), default=1.0) / 2 if log else 0.0
    with _figure(4.8) as figure:
        ax = figure.add_subplot()
        for k, curve in enumerate(cascade.curves):
            ax.plot(
                [max(p.cost_usd_per_million, floor) for p in curve.points],
                [p.accuracy * 100 for p in curve.points],
                drawstyle="steps-post",
                color=_RULE_COLOURS[k % len(_RULE_COLOURS)],
                linewidth=1.2,
                label=f"rule {curve.rule}",
            )
        ax.axhline(
            cascade.target_accuracy * 100,
            color="#d62828",
            linestyle="dashed",
            linewidth=1.0,
            label=f"target {cascade.target_accuracy * 100:.2f}%",
        )
        oracle_x = max(oracle.cost_usd_per_million, floor)
        _mark(ax, oracle_x, oracle.accuracy, "oracle (perfect router)", "D", "#ffb703", 70)
        cloud_x = max(cloud.cost_usd_per_million, floor)
        _mark(ax, cloud_x, cloud.accuracy, "cloud only", "s", "#6c757d", 60)
        for k, choice in enumerate(cascade.chosen):
            x = max(choice.point.cost_usd_per_million, floor)
            colour = _CHOSEN_COLOURS[k % len(_CHOSEN_COLOURS)]
            _mark(ax, x, choice.point.accuracy, choice.label, "*", colour, 220, below=k % 2 == 0)
        ax.set_ylim(*_accuracy_limits(cascade))
        if log:
            ax.set_xscale("log")
            ax.set_xlim(floor / 1.5, max(costs) * 1.8)
        else:
            ax.set_xlim(0, max(costs) * 1.1 if max(costs) > 0 else 1.0)
        ax.set_xlabel("USD per 1M inferences" + (" (log)" if log else ""))
        ax.set_ylabel("accuracy, %")
        ax.set_title(" -> ".join(cascade.stages), fontsize=9)
        ax.grid(alpha=0.3)
        figure.legend(fontsize=8, loc="outside right upper")
        return _png(figure)
