"""The fleet as the control plane sees it at one moment: each node's labels, whether it
is reachable, and what each of its bundles serves, from its last heartbeat.

A node silent for longer than ``stale_s`` is *unreachable*: a rollout neither counts it
as healthy nor as failed, and it converges to its desired versions when it comes back.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from tierwise.control.selector import Selector
from tierwise.control.store import NodeRecord

__all__ = ["Fleet", "NodeView", "Serving"]


@dataclass(frozen=True, slots=True)
class Serving:
    """What one bundle serves on a node, and how its last sync went."""

    version: str | None
    digest: str | None
    ready: bool
    sync_result: str | None
    sync_error: str | None


def _serving(doc: Any) -> Serving:
    if not isinstance(doc, Mapping):
        return Serving(None, None, False, None, None)
    last = doc.get("last_sync")
    last = last if isinstance(last, Mapping) else {}
    return Serving(
        version=_text(doc.get("version")),
        digest=_text(doc.get("digest")),
        ready=doc.get("ready") is True,
        sync_result=_text(last.get("result")),
        sync_error=_text(last.get("error")),
    )


def _text(value: Any) -> str | None:
    return value if isinstance(value, str) else None


@dataclass(frozen=True, slots=True)
class NodeView:
    """One node: its record and what the control plane reads from it."""

    record: NodeRecord
    alive: bool

    @property
    def name(self) -> str:
        return self.record.node

    @property
    def labels(self) -> Mapping[str, str]:
        return self.record.labels

    def bundles(self) -> Mapping[str, Any]:
        found = self.record.status.get("bundles")
        return found if isinstance(found, Mapping) else {}

    def syncs(self, bundle: str) -> bool:
        """Whether the node runs ``bundle`` at all."""
        return bundle in self.bundles()

    def serving(self, bundle: str) -> Serving:
        return _serving(self.bundles().get(bundle))

    def addresses(self) -> list[str]:
        """``host:port`` of its tier server and router front (Prometheus' ``instance``)."""
        found: list[str] = []
        for key in ("address", "gateway_address"):
            value = self.record.status.get(key)
            if isinstance(value, str) and "://" in value:
                found.append(value.split("://", 1)[1].rstrip("/"))
        return found


class Fleet:
    """Every node known, as of ``now_s``."""

    def __init__(self, records: Iterable[NodeRecord], *, now_s: float, stale_s: float) -> None:
        self.now_s = now_s
        self.nodes: dict[str, NodeView] = {
            r.node: NodeView(r, now_s - r.last_seen_s <= stale_s) for r in records
        }

    def get(self, name: str) -> NodeView | None:
        return self.nodes.get(name)

    def selected(self, selector: Selector, bundle: str) -> list[NodeView]:
        """The nodes ``selector`` picks that run ``bundle``, by name."""
        return sorted(
            (n for n in self.nodes.values() if n.syncs(bundle) and selector.matches(n.labels)),
            key=lambda n: n.name,
        )
