"""The record of one routed request: every tier tried, how long it took, what it cost,
how confident the answer was, and why the router moved on or stopped."""

from __future__ import annotations

import os
import random
from dataclasses import asdict, dataclass, field
from typing import Any, Literal

from tierwise.router.types import Cause

__all__ = ["Attempt", "Outcome", "Trace", "new_trace_id"]

Outcome = Literal["answered", "escalated", "error", "timeout", "skipped", "deferred"]

# A generator of our own (others may seed the module's), seeded from os.urandom now and
# again in a forked child: a fraction of the cost of secrets.token_hex, a system call per
# id. Trace ids find requests in logs and samples; they guard nothing, so they need not be
# unguessable.
_rng = random.Random()  # noqa: S311
os.register_at_fork(after_in_child=_rng.seed)
_bits = _rng.getrandbits


def new_trace_id() -> str:
    """16 random hex characters: unique enough to find one request in logs and samples."""
    return _bits(64).to_bytes(8, "big").hex()


@dataclass(slots=True)
class Attempt:
    """One tier's part in a request; ``cause`` names why it gave no answer (or was not
    asked), when it did not."""

    tier: str
    outcome: Outcome
    reason: str
    latency_ms: float = 0.0
    cost_usd: float = 0.0
    confidence: float | None = None
    cause: Cause | None = None


@dataclass(slots=True)
class Trace:
    """Everything the router did for one request. ``degraded_reason`` names the cause of
    a degraded answer (see :class:`~tierwise.router.router.Router`)."""

    trace_id: str
    workload: str
    attempts: list[Attempt] = field(default_factory=list)
    route: tuple[str, ...] = ()
    answered_by: str | None = None
    degraded: bool = False
    reason: str = ""
    total_ms: float = 0.0
    degraded_reason: Cause | None = None

    @property
    def cost_usd(self) -> float:
        return sum(a.cost_usd for a in self.attempts)

    def to_dict(self) -> dict[str, Any]:
        doc = asdict(self)
        doc["route"] = list(self.route)
        doc["cost_usd"] = self.cost_usd
        return doc
