"""What a simulation found, per workload and per hour of its arrivals.

For each workload, over the whole run (``total``) and for each hour: requests, answered,
failed and still in the outbox when the run ends (``pending``); latency p50/p95/p99 (from
leaving the outbox to the answer, ms) against the SLO's p99 and how many answers missed
it; the share answered by device, edge and cloud tiers; degraded answers and calls that
failed over; deferred requests, their waits in the outbox and the outbox's deepest
backlog; cost per 1M requests; joules per answered request; and the share of right answers
(the plan's measured accuracy, drawn per request).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np

from tierwise.sim.engine import SimRun
from tierwise.sim.inputs import SimFleet

__all__ = ["KINDS", "run_title", "summarize"]

KINDS = ("device", "edge", "cloud")


def run_title(summary: Mapping[str, Any]) -> str:
    """How a run names itself (``tierwise simulate``'s header, the report's section):
    its scenario or none, its requests, simulated hours and seed."""
    scenario = summary.get("scenario")
    hours = summary.get("hours") or 0
    what = "no scenario" if scenario is None else f"scenario {scenario}"
    return (
        f"{what}: {int(summary.get('requests') or 0):,} requests in {hours:g} simulated "
        f"hour{'' if hours == 1 else 's'} (seed {summary.get('seed', 0)})"
    )


def _round(value: float | None, digits: int = 4) -> float | None:
    if value is None or not np.isfinite(value):
        return None
    return float(f"{value:.{digits}g}")


def _figures(
    run: SimRun, fleet: SimFleet, rows: np.ndarray, slo_ms: float | None, depth: int
) -> dict[str, Any]:
    n = int(rows.size)
    done = run.done_s[rows]
    ok = ~np.isnan(done)
    latency_ms = (done[ok] - run.release_s[rows][ok]) * 1000.0
    kinds = np.array([fleet.tiers[t].kind for t in run.tiers] + ["none"])
    answered_kind = kinds[run.answered_by[rows]]  # -1 indexes "none"
    deferred = run.deferred[rows]
    waits = (run.release_s[rows] - run.arrival_s[rows])[deferred]
    waits = waits[~np.isnan(waits)]
    p50, p95, p99 = np.percentile(latency_ms, [50, 95, 99]) if latency_ms.size else (np.nan,) * 3
    answered = int(ok.sum())
    pending = int((deferred & np.isnan(run.release_s[rows])).sum())
    return {
        "requests": n,
        "answered": answered,
        "failed": n - answered - pending,
        "pending": pending,
        "p50_ms": _round(p50),
        "p95_ms": _round(p95),
        "p99_ms": _round(p99),
        "slo_p99_ms": slo_ms,
        "slo_misses": int((latency_ms > slo_ms).sum()) if slo_ms is not None else None,
        "share": {k: _round(float((answered_kind == k).mean()) if n else 0.0) for k in KINDS},
        "degraded": int(run.degraded[rows].sum()),
        "fallbacks": int(run.fallbacks[rows].sum()),
        "deferred": int(deferred.sum()),
        "deferred_wait_s_mean": _round(float(waits.mean())) if waits.size else None,
        "deferred_wait_s_max": _round(float(waits.max())) if waits.size else None,
        "outbox_depth_max": depth,
        "usd_per_million": _round(float(run.cost_usd[rows].sum()) / n * 1e6) if n else None,
        "energy_j_per_inference": (
            _round(float(run.energy_j[rows].sum()) / answered) if answered else None
        ),
        "accuracy": _round(float(run.correct[rows].sum()) / answered) if answered else None,
    }


#: latency histogram bins for the run's totals: 1 us to 1000 s, 0.5% wide
_EDGES_MS = np.logspace(-3, 6, 4501)


class Tally:
    """The run's figures, added an hour of served requests at a time: each hour's
    exactly, the whole run's from sums and a fine latency histogram (percentiles within
    half a percent). Requests count in the hour they were served (a deferred one in the
    hour it left the outbox)."""

    def __init__(
        self,
        fleet: SimFleet,
        workloads: tuple[str, ...],
        tiers: tuple[str, ...],
        horizon_s: float,
        groups: tuple[str, ...] = ("rest",),
    ) -> None:
        self.fleet = fleet
        #: per group of sites (tierwise.sim.sites) and workload: requests, answered, degraded
        self.groups = groups
        self.by_group = np.zeros((len(groups), len(workloads), 3), dtype=np.int64)
        self.workloads = workloads
        self.tiers = tiers
        self.hours = max(1, int(np.ceil(horizon_s / 3600.0)))
        self.by_hour: list[list[dict[str, Any] | None]] = [[None] * self.hours for _ in workloads]
        self.depths = np.zeros((len(workloads), self.hours), dtype=np.int64)
        self.hist = np.zeros((len(workloads), _EDGES_MS.size + 1), dtype=np.int64)
        self.sums = [dict.fromkeys(_SUMMED, 0.0) for _ in workloads]
        self.wait_max = [0.0] * len(workloads)
        self.shares = np.zeros((len(workloads), len(KINDS)), dtype=np.int64)

    def depth(self, workload: int, hour: int, items: int) -> None:
        """The outbox holds ``items`` of ``workload`` during ``hour``."""
        h = min(hour, self.hours - 1)
        self.depths[workload, h] = max(int(self.depths[workload, h]), items)

    def add(self, part: SimRun, hour: int) -> None:
        """Tally the requests served in ``hour``."""
        h = min(hour, self.hours - 1)
        kinds = np.array([self.fleet.tiers[t].kind for t in part.tiers] + ["none"])
        for wi, name in enumerate(self.workloads):
            rows = np.flatnonzero(part.workload == wi)
            slo = self.fleet.workloads[name].slo_p99_ms
            figures = _figures(part, self.fleet, rows, slo, int(self.depths[wi, h]))
            self.by_hour[wi][h] = figures
            sums = self.sums[wi]
            for key in _SUMMED:
                value = figures.get(key)
                if key == "cost":
                    value = float(part.cost_usd[rows].sum())
                elif key == "energy":
                    value = float(part.energy_j[rows].sum())
                elif key == "correct":
                    value = float(part.correct[rows].sum())
                elif key == "wait":
                    waits = (part.release_s[rows] - part.arrival_s[rows])[part.deferred[rows]]
                    waits = waits[~np.isnan(waits)]
                    value = float(waits.sum())
                    if waits.size:
                        self.wait_max[wi] = max(self.wait_max[wi], float(waits.max()))
                elif key == "waited":
                    waited = part.deferred[rows] & ~np.isnan(part.release_s[rows])
                    value = float(waited.sum())
                sums[key] += float(value or 0)
            done = part.done_s[rows]
            ok = ~np.isnan(done)
            latency = (done[ok] - part.release_s[rows][ok]) * 1000.0
            self.hist[wi] += np.bincount(np.searchsorted(_EDGES_MS, latency),
                                         minlength=_EDGES_MS.size + 1)  # fmt: skip
            if len(self.groups) > 1:
                group = part.group[rows]
                answered = ~np.isnan(part.done_s[rows])
                for g in range(len(self.groups)):
                    mine = group == g
                    self.by_group[g, wi] += (int(mine.sum()), int((mine & answered).sum()),
                                             int((mine & part.degraded[rows]).sum()))  # fmt: skip
            answered_kind = kinds[part.answered_by[rows]]
            for k, kind in enumerate(KINDS):
                self.shares[wi, k] += int((answered_kind == kind).sum())

    def total(self, wi: int) -> dict[str, Any]:
        """The whole run's figures of workload ``wi``."""
        sums = self.sums[wi]
        n, answered = int(sums["requests"]), int(sums["answered"])
        slo = self.fleet.workloads[self.workloads[wi]].slo_p99_ms
        p50, p95, p99 = (self._quantile(wi, q) for q in (0.5, 0.95, 0.99))
        waited = sums["waited"]
        return {
            "requests": n,
            "answered": answered,
            "failed": int(sums["failed"]),
            "pending": int(sums["pending"]),
            "p50_ms": p50,
            "p95_ms": p95,
            "p99_ms": p99,
            "slo_p99_ms": slo,
            "slo_misses": int(sums["slo_misses"]) if slo is not None else None,
            "share": {k: _round(self.shares[wi, i] / n if n else 0.0) for i, k in enumerate(KINDS)},
            "degraded": int(sums["degraded"]),
            "fallbacks": int(sums["fallbacks"]),
            "deferred": int(sums["deferred"]),
            "deferred_wait_s_mean": _round(sums["wait"] / waited) if waited else None,
            "deferred_wait_s_max": _round(self.wait_max[wi]) if waited else None,
            "outbox_depth_max": int(self.depths[wi].max()),
            "usd_per_million": _round(sums["cost"] / n * 1e6) if n else None,
            "energy_j_per_inference": _round(sums["energy"] / answered) if answered else None,
            "accuracy": _round(sums["correct"] / answered) if answered else None,
        }

    def _quantile(self, wi: int, q: float) -> float | None:
        counts = self.hist[wi]
        total = int(counts.sum())
        if not total:
            return None
        k = int(np.searchsorted(np.cumsum(counts), q * total, side="left"))
        low = _EDGES_MS[max(0, k - 1)]
        high = _EDGES_MS[min(k, _EDGES_MS.size - 1)]
        return _round(float(np.sqrt(low * high)))


_SUMMED = ("requests", "answered", "failed", "pending", "slo_misses", "degraded", "fallbacks",
           "deferred", "cost", "energy", "correct", "wait", "waited")  # fmt: skip


def summarize(run: SimRun, fleet: SimFleet) -> dict[str, Any]:
    """The run's figures (see the module docstring) as a JSON-ready mapping."""
    tally: Tally = run.tally
    out: dict[str, Any] = {
        "hours": fleet.settings.hours,
        "seed": fleet.settings.seed,
        "requests": sum(int(t["requests"]) for t in tally.sums),
        "policy_calls": run.policy_calls,
        "tiers": {
            name: {
                "kind": t.kind,
                "servers": t.servers,
                "spec_tier": t.spec_tier,
                "variant": t.variant,
            }
            | _scaled(run.servers_up.get(name), t.scaling, tally.hours)
            for name, t in fleet.tiers.items()
        },
        "workloads": {},
    }
    for wi, name in enumerate(tally.workloads):
        hours = []
        for h, figures in enumerate(tally.by_hour[wi]):
            hour = (fleet.settings.start_hour + h) % 24
            hours.append({"hour": hour, **(figures or _figures_empty())})
        out["workloads"][name] = {"total": tally.total(wi), "by_hour": hours}
    if len(tally.groups) > 1:  # some sites were cut: how their requests and the rest's fared
        keys = ("requests", "answered", "degraded")
        out["site_groups"] = {
            group: {
                name: dict(zip(keys, tally.by_group[g, wi].tolist(), strict=True))
                for wi, name in enumerate(tally.workloads)
                if tally.by_group[g, wi, 0]
            }
            for g, group in enumerate(tally.groups)
        }
    return out


def _scaled(timeline: list[tuple[float, int]] | None, scaling: Any, hours: int) -> dict[str, Any]:
    """An autoscaled tier's fewest servers and the most it had up in each hour."""
    if scaling is None or not timeline:
        return {}
    by_hour = []
    for h in range(hours):
        begin, end = h * 3600.0, (h + 1) * 3600.0
        at_start = [n for t, n in timeline if t <= begin][-1:]  # up as the hour begins
        during = [n for t, n in timeline if begin < t < end]
        by_hour.append(max(at_start + during, default=scaling.floor))
    return {"servers_min": scaling.floor, "autoscaled": True, "servers_by_hour": by_hour}


def _figures_empty() -> dict[str, Any]:
    return {"requests": 0}
