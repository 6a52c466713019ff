"""The terminal view of :class:`~tierwise.observe.status.FleetStatus` (rich tables)."""

from __future__ import annotations

from collections.abc import Iterator

from rich.console import Group, RenderableType
from rich.table import Table
from rich.text import Text

from tierwise.observe.status import FleetStatus

__all__ = ["status_view"]


def _f(value: float | None, fmt: str, scale: float = 1.0) -> str:
    return "-" if value is None else format(value * scale, fmt)


def _p99(row: dict[str, float | None]) -> Text:
    p99, slo = row["p99_s"], row["slo_p99_s"]
    text = Text(_f(p99, ".1f", 1000))
    if p99 is not None and slo is not None:
        text.stylize("red" if p99 > slo else "green")
    return text


def _tables(status: FleetStatus) -> Iterator[RenderableType]:
    yield Text(f"fleet status from {status.source}: {status.where}", style="bold")
    targets = Table(title="Targets", title_justify="left")
    for column in ("job", "instance", "tier", "state"):
        targets.add_column(column)
    for t in status.targets:
        state = Text("up", "green") if t.up else Text(f"down ({t.error})", "red")
        targets.add_row(t.job, t.instance, t.tier or "", state)
    yield targets
    workloads = Table(title="Workloads", title_justify="left")
    for column in ("workload", "req/s", "p99 ms", "SLO ms", "fallback", "USD per 1M"):
        workloads.add_column(column, justify="left" if column == "workload" else "right")
    for w in status.workloads:
        workloads.add_row(
            w["workload"], _f(w["rps"], ".2f"), _p99(w), _f(w["slo_p99_s"], "g", 1000),
            _f(w["fallback_rate"], ".1%"), _f(w["usd_per_million"], ".4g"),
        )  # fmt: skip
    yield workloads
    tiers = Table(title="Tiers", title_justify="left")
    for column in ("tier", "req/s", "J per inference", "power W", "drift"):
        tiers.add_column(column, justify="left" if column == "tier" else "right")
    levels = {0.0: Text("ok", "green"), 1.0: Text("warn", "yellow"), 2.0: Text("alert", "red")}
    for row in status.tiers:
        drift = row["drift_level"]
        level = levels.get(drift, Text("-")) if drift is not None else "-"
        tiers.add_row(
            row["tier"], _f(row["rps"], ".2f"), _f(row["joules_per_inference"], ".4g"),
            _f(row["power_watts"], ".3g"), level,
        )  # fmt: skip
    yield tiers
    if status.outbox or status.breakers:
        backlog = Table(title="Outbox and breakers", title_justify="left")
        for column in ("what", "name", "state"):
            backlog.add_column(column)
        for o in status.outbox:
            backlog.add_row(
                "outbox",
                o["queue"],
                f"{_f(o['items'], 'g')} items, oldest {_f(o['oldest_age_s'], '.0f')} s",
            )
        for b in status.breakers:
            backlog.add_row(
                "breaker", b["tier"], Text("open", "red") if b["open"] else Text("closed", "green")
            )
        yield backlog
    if status.alerts is not None:
        if not status.alerts:
            yield Text("no alerts pending or firing", style="green")
        for a in status.alerts:
            labels = ", ".join(f"{k}={v}" for k, v in sorted(a["labels"].items()))
            style = "red" if a["state"] == "firing" else "yellow"
            yield Text(f"{a['state']}: {a['alert']} {{{labels}}} {a['summary']}", style=style)


def status_view(status: FleetStatus) -> Group:
    """The status as a group of rich renderables, for ``console.print``."""
    return Group(*_tables(status))
