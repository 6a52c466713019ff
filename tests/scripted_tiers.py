"""Tiers played in process for router tests, and a three-tier plan around a real
in-process model that is not the digits zoo's (``y = x``, from ``onnx_models``): the test
sets the device's confidence through its input, and says how the edge and the cloud
behave."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

from tierwise.errors import TierError, TierTimeoutError
from tierwise.planfile.schema import Plan
from tierwise.protocol import InferRequest, InferResponse
from tierwise.router.tiers import Tier
from tierwise.spec.tiers import TierKind

THRESHOLD = 0.8
LOW = np.array([[0.3, 0.3, 0.2, 0.2]], np.float32)  # the device's confidence: 0.3
HIGH = np.array([[0.95, 0.02, 0.02, 0.01]], np.float32)  # 0.95: the device settles it
EDGE_LOW = np.array([[0.5, 0.5, 0.0, 0.0]], np.float32)  # the edge's: 0.5
URL = "http://127.0.0.1:9"  # never called: scripted tiers stand in for these


class Scripted(Tier):
    """A remote tier played in process: answers ``y`` after ``delay_s`` (a timeout when
    that is over the limit, unless ``late``), or raises what ``error`` makes; records the
    parameters of every request it is sent."""

    def __init__(
        self,
        name: str,
        kind: TierKind,
        *,
        y: np.ndarray = EDGE_LOW,
        error: Callable[[], TierError] | None = None,
        delay_s: float = 0.0,
        late: bool = False,
    ) -> None:
        super().__init__(name, kind, timeout_s=2.0)
        self.y = y
        self.error = error
        self.delay_s = delay_s
        self.late = late  # answers after the limit (as an in-process tier may)
        self.seen: list[dict[str, Any]] = []

    @property
    def remote(self) -> bool:
        return True

    async def infer(self, request: InferRequest, *, timeout_s: float) -> InferResponse:
        self.seen.append(dict(request.parameters))
        if self.delay_s > timeout_s and not self.late:  # as a remote tier's client gives up
            await asyncio.sleep(timeout_s + 0.005)  # at the limit, never before it
            raise TierTimeoutError(tier=self.name, timeout_s=timeout_s)
        if self.delay_s:
            await asyncio.sleep(self.delay_s)
        if self.error is not None:
            raise self.error()
        return InferResponse(model_name=self.name, outputs={"y": self.y.copy()})


def _tier(kind: str, rtt_ms: float, cost: float, **where: Any) -> dict[str, Any]:
    return {"kind": kind, "rtt_p50_ms": rtt_ms / 2, "rtt_p99_ms": rtt_ms,
            "cost_usd_per_inference": cost, **where}  # fmt: skip


def _workload(*names: str, **fields: Any) -> dict[str, Any]:
    cascade: list[dict[str, Any]] = [
        {"tier": n, "rule": "max_prob", "threshold": THRESHOLD} for n in names[:-1]
    ]
    cascade.append({"tier": names[-1]})
    return {"privacy": "public", **fields, "cascade": cascade}


def plan(model: Path) -> Plan:
    tiers = {
        "device": _tier("device", 0, 0.0, site="s1", region="r1", local={"model": str(model)}),
        "edge": _tier("edge", 5, 1e-6, site="s1", region="r1", url=URL, model="m"),
        "cloud": _tier("cloud", 20, 1e-5, region="r1", url=URL, model="m"),
    }
    workloads = {
        "w": _workload("device", "edge", "cloud"),
        "near": _workload("device", "edge"),
        "capped": _workload("device", "edge", "cloud", budget_usd_per_period=0.0),
        "private": _workload("device", "edge", "cloud", privacy="sensitive"),
        "strict": _workload("device", "cloud"),
    }
    return Plan.model_validate({"tiers": tiers, "workloads": workloads})
