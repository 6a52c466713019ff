"""The record of one routed request: every tier tried, how long it took, what it cost,
how confident the answer was, and why the router moved on or stopped."""

from __future__ import annotations

import secrets
from dataclasses import asdict, dataclass, field
from typing import Any, Literal

__all__ = ["Attempt", "Outcome", "Trace", "new_trace_id"]

Outcome = Literal["answered", "escalated", "error", "timeout", "skipped", "deferred"]


def new_trace_id() -> str:
    """16 random hex characters: unique enough to find one request in logs and samples."""
    return secrets.token_hex(8)


@dataclass(slots=True)
class Attempt:
    """One tier's part in a request."""

    tier: str
    outcome: Outcome
    reason: str
    latency_ms: float = 0.0
    cost_usd: float = 0.0
    confidence: float | None = None


@dataclass(slots=True)
class Trace:
    """Everything the router did for one request."""

    trace_id: str
    workload: str
    attempts: list[Attempt] = field(default_factory=list)
    route: tuple[str, ...] = ()
    answered_by: str | None = None
    degraded: bool = False
    reason: str = ""
    total_ms: float = 0.0

    @property
    def cost_usd(self) -> float:
        return sum(a.cost_usd for a in self.attempts)

    def to_dict(self) -> dict[str, Any]:
        doc = asdict(self)
        doc["route"] = list(self.route)
        doc["cost_usd"] = self.cost_usd
        return doc
