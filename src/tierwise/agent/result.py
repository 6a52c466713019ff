"""What a sync did, for one bundle and for the node."""

from __future__ import annotations

import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

__all__ = ["SyncResult", "combine"]

#: the node's result is the first of these that any of its bundles had
_PRECEDENCE = ("error", "held", "activated", "up-to-date", "idle")


@dataclass
class SyncResult:
    """What one sync did: ``result`` is ``activated``, ``up-to-date``, ``held``, ``idle``
    (no desired state) or ``error`` (``error`` says which check failed). A node's result
    has one per bundle in ``bundles``."""

    result: str
    at_s: float = field(default_factory=time.time)
    seconds: float = 0.0
    bundle: str | None = None
    reference: str | None = None
    version: str | None = None
    digest: str | None = None
    error: str | None = None
    fetched_bytes: int = 0
    bundles: dict[str, SyncResult] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        doc = {k: v for k, v in self.__dict__.items() if v is not None and k != "bundles"}
        if self.bundles:
            doc["bundles"] = {name: r.to_dict() for name, r in self.bundles.items()}
        return doc


def combine(results: Mapping[str, SyncResult]) -> SyncResult:
    """The node's result from its bundles' (in the node's order): the worst of them
    (error, then held, activated, up-to-date, idle), their errors, what they fetched. With
    one bundle it is that bundle's result."""
    parts = dict(results)
    if len(parts) == 1:
        (only,) = parts.values()
        node = SyncResult(**{k: v for k, v in only.__dict__.items() if k != "bundles"})
        node.bundles = parts
        return node
    worst = min(parts.values(), key=lambda r: _PRECEDENCE.index(r.result)).result
    errors = [f"{name}: {r.error}" for name, r in parts.items() if r.error and r.result == worst]
    return SyncResult(
        worst,
        error="; ".join(errors) or None,
        fetched_bytes=sum(r.fetched_bytes for r in parts.values()),
        bundles=parts,
    )
