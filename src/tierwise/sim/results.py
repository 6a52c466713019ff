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

from typing import Any

import numpy as np

from tierwise.sim.engine import SimRun
from tierwise.sim.inputs import SimFleet

__all__ = ["KINDS", "summarize"]

KINDS = ("device", "edge", "cloud")


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


def _depths(run: SimRun, rows: np.ndarray, hours: int) -> tuple[list[int], int]:
    """The outbox's deepest backlog of these requests in each hour, and overall."""
    deferred = rows[run.deferred[rows]]
    if deferred.size == 0:
        return [0] * hours, 0
    leave = np.nan_to_num(run.release_s[deferred], nan=run.horizon_s)
    times = np.concatenate((run.arrival_s[deferred], leave))
    steps = np.concatenate((np.ones(deferred.size), -np.ones(deferred.size)))
    order = np.lexsort((steps, times))  # at one instant, leaving before arriving
    depth = np.cumsum(steps[order])
    hour = np.minimum((times[order] // 3600).astype(np.int64), hours - 1)
    per_hour = [0] * hours
    for h in range(hours):
        here = depth[hour == h]
        per_hour[h] = int(here.max()) if here.size else (per_hour[h - 1] if h else 0)
    return per_hour, int(depth.max())


def summarize(run: SimRun, fleet: SimFleet) -> dict[str, Any]:
    """The run's figures (see the module docstring) as a JSON-ready mapping."""
    hours = max(1, int(np.ceil(run.horizon_s / 3600.0)))
    hour_of = np.minimum((run.arrival_s // 3600).astype(np.int64), hours - 1)
    out: dict[str, Any] = {
        "hours": fleet.settings.hours,
        "seed": fleet.settings.seed,
        "requests": int(run.arrival_s.size),
        "policy_calls": run.policy_calls,
        "tiers": {
            name: {
                "kind": t.kind,
                "servers": t.servers,
                "spec_tier": t.spec_tier,
                "variant": t.variant,
            }
            for name, t in fleet.tiers.items()
        },
        "workloads": {},
    }
    for wi, name in enumerate(run.workloads):
        rows = np.flatnonzero(run.workload == wi)
        slo = fleet.workloads[name].slo_p99_ms
        per_hour, deepest = _depths(run, rows, hours)
        by_hour = []
        for h in range(hours):
            in_hour = rows[hour_of[rows] == h]
            by_hour.append({"hour": (fleet.settings.start_hour + h) % 24,
                            **_figures(run, fleet, in_hour, slo, per_hour[h])})  # fmt: skip
        out["workloads"][name] = {
            "total": _figures(run, fleet, rows, slo, deepest),
            "by_hour": by_hour,
        }
    return out
