"""Predicted against measured: the same seeded traffic through the simulator and through a
live fleet, compared per workload.

:func:`seeded_traffic` draws the requests once (Poisson arrivals at each workload's rate,
each request a held-out row); the live replay sends exactly those and the simulator
replays them (``simulate(..., traffic=...)``). :func:`live_summary` and
:func:`compare` turn both into :class:`FidelityRow` s: p50 and p99 latency, the share
answered on each tier kind and the cost per 1M, predicted beside measured, with whether
each is within its tolerance (latency 10%, shares 2 percentage points, cost 5%).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np

from tierwise.errors import ConfigError
from tierwise.sim.engine import SimRun, Traffic
from tierwise.sim.results import KINDS

__all__ = [
    "KINDS",
    "FidelityRow",
    "LiveRequests",
    "Tolerance",
    "WorkloadFigures",
    "compare",
    "live_summary",
    "seeded_traffic",
    "sent_traffic",
    "sim_summary",
]


@dataclass(frozen=True)
class Tolerance:
    """How close a prediction must come: latency within ``latency_rel`` of the measured,
    shares within ``share_pp`` percentage points, cost within ``cost_rel``."""

    latency_rel: float = 0.10
    share_pp: float = 2.0
    cost_rel: float = 0.05


def seeded_traffic(
    rates_rps: Mapping[str, float], duration_s: float, rows: int, *, seed: int
) -> dict[str, Traffic]:
    """Per workload: Poisson arrivals at its rate over ``duration_s`` and the held-out row
    (of ``rows``) each request is; the same seed gives the same requests."""
    if not duration_s > 0:
        raise ConfigError("duration_s", "seconds > 0", duration_s)
    if rows < 1:
        raise ConfigError("rows", "at least one held-out row", rows)
    out: dict[str, Traffic] = {}
    for index, (name, rate) in enumerate(sorted(rates_rps.items())):
        if not rate >= 0:
            raise ConfigError(f"rates_rps.{name}", "requests per second >= 0", rate)
        rng = np.random.default_rng([seed, index])
        n = int(rng.poisson(rate * duration_s))
        out[name] = (np.sort(rng.uniform(0.0, duration_s, n)), rng.integers(0, rows, n))
    return out


@dataclass
class LiveRequests:
    """What a live replay saw, one entry per request: its workload, when it was sent
    (seconds from the start), its held-out row, the tier kind that answered ("" for
    none), its latency, whether degraded, and its cost."""

    workload: list[str] = field(default_factory=list)
    arrival_s: list[float] = field(default_factory=list)
    row: list[int] = field(default_factory=list)
    kind: list[str] = field(default_factory=list)
    latency_ms: list[float] = field(default_factory=list)
    degraded: list[bool] = field(default_factory=list)
    cost_usd: list[float] = field(default_factory=list)

    def add(
        self, workload: str, arrival_s: float, row: int, kind: str, latency_ms: float,
        degraded: bool, cost_usd: float,
    ) -> None:  # fmt: skip
        self.workload.append(workload)
        self.arrival_s.append(arrival_s)
        self.row.append(row)
        self.kind.append(kind)
        self.latency_ms.append(latency_ms)
        self.degraded.append(degraded)
        self.cost_usd.append(cost_usd)


@dataclass(frozen=True)
class WorkloadFigures:
    """One workload's figures over the answered requests."""

    requests: int
    answered: int
    degraded: int
    p50_ms: float
    p99_ms: float
    share: dict[str, float]
    usd_per_million: float
    #: p50 of the requests each tier kind answered (None: it answered none)
    p50_by_kind_ms: dict[str, float | None] = field(default_factory=dict)


def _figures(
    latency_ms: np.ndarray, kinds: Sequence[str], degraded: np.ndarray, cost: np.ndarray
) -> WorkloadFigures:
    answered = np.array([k != "" for k in kinds], dtype=bool)
    n = len(kinds)
    lat = latency_ms[answered]
    p50, p99 = np.percentile(lat, [50, 99]).tolist() if lat.size else (float("nan"),) * 2
    return WorkloadFigures(
        requests=n,
        answered=int(answered.sum()),
        degraded=int(degraded.sum()),
        p50_ms=float(p50),
        p99_ms=float(p99),
        share={k: (sum(x == k for x in kinds) / n if n else 0.0) for k in KINDS},
        usd_per_million=float(cost[answered].mean() * 1e6) if answered.any() else 0.0,
        p50_by_kind_ms={k: _p50(latency_ms, kinds, k) for k in KINDS},
    )


def _p50(latency_ms: np.ndarray, kinds: Sequence[str], kind: str) -> float | None:
    mine = latency_ms[np.array([k == kind for k in kinds], dtype=bool)]
    return float(np.percentile(mine, 50)) if mine.size else None


def sent_traffic(live: LiveRequests) -> dict[str, Traffic]:
    """The requests as the live replay sent them: per workload, send times (sorted) and
    rows, for the simulator to replay."""
    out: dict[str, Traffic] = {}
    names = np.array(live.workload)
    times, rows = np.asarray(live.arrival_s), np.asarray(live.row, dtype=np.int64)
    for name in sorted(set(live.workload)):
        mine = np.flatnonzero(names == name)
        order = mine[np.argsort(times[mine], kind="stable")]
        out[name] = (np.maximum(times[order], 0.0), rows[order])
    return out


def live_summary(live: LiveRequests) -> dict[str, WorkloadFigures]:
    """Per workload, the figures of a live replay."""
    out = {}
    names = np.array(live.workload)
    for name in sorted(set(live.workload)):
        rows = np.flatnonzero(names == name)
        out[name] = _figures(
            np.asarray(live.latency_ms)[rows], [live.kind[i] for i in rows],
            np.asarray(live.degraded)[rows], np.asarray(live.cost_usd)[rows],
        )  # fmt: skip
    return out


def sim_summary(run: SimRun, kinds: Mapping[str, str]) -> dict[str, WorkloadFigures]:
    """Per workload that had requests, the figures of a simulation that kept them
    (``kinds``: plan tier -> tier kind)."""
    out = {}
    tier_kind = [kinds[t] for t in run.tiers]
    for w, name in enumerate(run.workloads):
        rows = np.flatnonzero(run.workload == w)
        if rows.size == 0:
            continue  # no traffic of its own in this run
        latency = (run.done_s[rows] - run.arrival_s[rows]) * 1000.0
        answered = run.answered_by[rows]
        out[name] = _figures(
            latency, [tier_kind[a] if a >= 0 else "" for a in answered],
            run.degraded[rows], run.cost_usd[rows],
        )  # fmt: skip
    return out


@dataclass(frozen=True)
class FidelityRow:
    """One workload at one load level: predicted beside measured, and what is within
    its tolerance."""

    level: str
    workload: str
    requests: int
    predicted: WorkloadFigures
    measured: WorkloadFigures
    within: dict[str, bool]

    @property
    def ok(self) -> bool:
        return all(self.within.values())

    def to_dict(self) -> dict[str, Any]:
        return {
            "level": self.level,
            "workload": self.workload,
            "requests": self.requests,
            "predicted": asdict(self.predicted),
            "measured": asdict(self.measured),
            "within": dict(self.within),
            "ok": self.ok,
        }


_NOTHING = WorkloadFigures(0, 0, 0, float("nan"), float("nan"), dict.fromkeys(KINDS, 0.0), 0.0)


def _close(predicted: float, measured: float, tolerance: float) -> bool:
    if measured == 0.0:
        return abs(predicted) <= tolerance
    return abs(predicted - measured) <= tolerance * abs(measured)


def compare(
    level: str,
    predicted: Mapping[str, WorkloadFigures],
    measured: Mapping[str, WorkloadFigures],
    tolerance: Tolerance | None = None,
) -> list[FidelityRow]:
    """A row per workload, with each figure checked against ``tolerance`` (a workload
    only one side saw is a row within nothing)."""
    tol = tolerance or Tolerance()
    rows = []
    for name in sorted(set(predicted) | set(measured)):
        p = predicted.get(name) or _NOTHING
        m = measured.get(name) or _NOTHING
        seen = name in predicted and name in measured
        within = {
            "p50": seen and _close(p.p50_ms, m.p50_ms, tol.latency_rel),
            "p99": seen and _close(p.p99_ms, m.p99_ms, tol.latency_rel),
            "share": seen
            and all(abs(p.share[k] - m.share[k]) * 100 <= tol.share_pp for k in KINDS),
            "cost": seen and _close(p.usd_per_million, m.usd_per_million, tol.cost_rel),
        }
        rows.append(FidelityRow(level, name, m.requests, p, m, within))
    return rows
