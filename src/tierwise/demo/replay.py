"""The held-out split replayed through :class:`tierwise.Client`, one workload at a time:
accuracy, where each request was answered, latency percentiles and cost per 1M."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np

from tierwise.errors import ConfigError
from tierwise.planfile.load import load_plan
from tierwise.router.client import Client
from tierwise.zoo import load_eval

__all__ = ["KINDS", "ReplaySummary", "replay"]

#: Tier kinds a request may be answered on, in cascade order.
KINDS = ("device", "edge", "cloud")


@dataclass(frozen=True, slots=True)
class ReplaySummary:
    """How one workload fared over the replayed rows. ``share`` is the fraction of
    requests answered on each tier kind; latencies are wall-clock ms in this process."""

    workload: str
    route: str
    requests: int
    accuracy: float
    share: dict[str, float]
    p50_ms: float
    p95_ms: float
    p99_ms: float
    usd_per_million: float
    degraded: int

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


async def _replay_one(
    client: Client,
    workload: str,
    x: np.ndarray,
    y: np.ndarray,
    step: Callable[[], None],
) -> ReplaySummary:
    plan = client.plan
    kind_of = {name: tier.kind for name, tier in plan.tiers.items()}
    latencies, costs, kinds, correct, degraded = [], [], [], 0, 0
    for image, label in zip(x, y, strict=True):
        started = time.perf_counter()
        result = await client.infer({"image": image[None]}, workload=workload)
        latencies.append((time.perf_counter() - started) * 1000.0)
        costs.append(result.trace.cost_usd)
        kinds.append(kind_of.get(result.tier or "", "-"))
        correct += int(result.outputs["label"][0] == label)
        degraded += int(result.degraded)
        step()
    p50, p95, p99 = np.percentile(latencies, [50, 95, 99])
    route = " -> ".join(stage.tier for stage in plan.workloads[workload].cascade)
    return ReplaySummary(
        workload=workload,
        route=route,
        requests=len(y),
        accuracy=correct / len(y),
        share={k: kinds.count(k) / len(kinds) for k in KINDS},
        p50_ms=float(p50),
        p95_ms=float(p95),
        p99_ms=float(p99),
        usd_per_million=float(np.mean(costs)) * 1e6,
        degraded=degraded,
    )


def replay(
    plan_path: Path,
    zoo_dir: Path,
    workloads: Sequence[str],
    *,
    requests: int | None = None,
    step: Callable[[], None] = lambda: None,
) -> list[ReplaySummary]:
    """Replay the zoo's held-out split (its first ``requests`` rows; all by default)
    through each of ``workloads`` of the plan, one request at a time."""
    x, y = load_eval(zoo_dir)
    if requests is not None:
        if isinstance(requests, bool) or not 1 <= requests <= len(y):
            raise ConfigError("requests", f"a whole number in [1, {len(y)}]", requests)
        x, y = x[:requests], y[:requests]

    async def run() -> list[ReplaySummary]:
        async with Client(load_plan(plan_path)) as client:
            return [await _replay_one(client, w, x, y, step) for w in workloads]

    return asyncio.run(run())
