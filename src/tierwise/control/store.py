"""The control plane's storage: nodes, desired versions, rollouts, the audit log, a lease.

:class:`ControlStore` is the contract the control plane writes through. Every decision is
one :class:`Change` written in one transaction (rollout document, desired versions and the
audit entries that explain them), so a crash leaves either all of it or none of it.

Two backends implement it: SQLite (:mod:`tierwise.control.store_sqlite`, the embedded
default, which also holds the SQL both share) and PostgreSQL
(:mod:`tierwise.control.store_postgres`, one database for several control plane
replicas, of which only the holder of the lease runs rollouts). :data:`SCHEMA` is their
one schema; JSON documents are TEXT columns.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, fields
from typing import Any

__all__ = [
    "ACTIVE_STATES",
    "LEASE_NAME",
    "SCHEMA",
    "SCHEMA_VERSION",
    "AuditEntry",
    "Change",
    "ControlStore",
    "Heartbeat",
    "NodeRecord",
    "RolloutRow",
]

ACTIVE_STATES = frozenset({"running", "paused"})
#: The one lease the control plane replicas compete for.
LEASE_NAME = "control"
SCHEMA_VERSION = 1
#: Both dialects' DDL; ``{real}`` is the 8-byte float type (PostgreSQL's REAL has 4 bytes).
SCHEMA = """
CREATE TABLE IF NOT EXISTS control_schema (version INTEGER NOT NULL);
CREATE TABLE IF NOT EXISTS control_nodes (
    node TEXT PRIMARY KEY, labels TEXT NOT NULL, status TEXT NOT NULL,
    registered_s {real} NOT NULL, last_seen_s {real} NOT NULL);
CREATE TABLE IF NOT EXISTS control_desired (
    node TEXT NOT NULL, bundle TEXT NOT NULL, ref TEXT NOT NULL, PRIMARY KEY (node, bundle));
CREATE TABLE IF NOT EXISTS control_rollouts (
    id TEXT PRIMARY KEY, bundle TEXT NOT NULL, state TEXT NOT NULL, doc TEXT NOT NULL,
    updated_s {real} NOT NULL, created BIGINT NOT NULL);
CREATE INDEX IF NOT EXISTS control_rollouts_bundle ON control_rollouts (bundle, created);
CREATE TABLE IF NOT EXISTS control_audit (
    seq BIGINT PRIMARY KEY, at_s {real} NOT NULL, actor TEXT NOT NULL, action TEXT NOT NULL,
    rollout TEXT, detail TEXT NOT NULL);
CREATE INDEX IF NOT EXISTS control_audit_rollout ON control_audit (rollout, seq);
CREATE TABLE IF NOT EXISTS control_leases (
    name TEXT PRIMARY KEY, holder TEXT NOT NULL, expires_s {real} NOT NULL);
INSERT INTO control_schema (version) SELECT {version}
    WHERE NOT EXISTS (SELECT 1 FROM control_schema);
"""


@dataclass(frozen=True, slots=True)
class Heartbeat:
    """One heartbeat as received: ``at_s`` is the wall clock (``time.time()``) then."""

    node: str
    labels: Mapping[str, str]
    status: Mapping[str, Any]
    at_s: float


@dataclass(frozen=True, slots=True)
class NodeRecord:
    """A node as stored: its last labels and status, first and latest heartbeat times."""

    node: str
    labels: dict[str, str]
    status: dict[str, Any]
    registered_s: float
    last_seen_s: float


@dataclass(frozen=True, slots=True)
class AuditEntry:
    """Who did what, when, and the evidence; ``seq`` is assigned when appended."""

    at_s: float
    actor: str
    action: str
    rollout: str | None
    detail: Mapping[str, Any]
    seq: int = 0

    def to_dict(self) -> dict[str, Any]:
        out = {field.name: getattr(self, field.name) for field in fields(self)}
        out["detail"] = dict(self.detail)
        return out


@dataclass(frozen=True, slots=True)
class RolloutRow:
    """A rollout's whole document; ``state`` is free text to the store."""

    id: str
    bundle: str
    state: str
    doc: dict[str, Any]
    updated_s: float


@dataclass(frozen=True, slots=True)
class Change:
    """What one decision writes, in ONE transaction: all of it or none of it.

    ``cleared`` is applied before ``desired``, so a pair in both ends up set.

    Preconditions, checked inside the transaction (another replica may have decided in
    between); when one does not hold, nothing is written and RolloutError says why:
    ``based_on`` is the ``updated_s`` of ``rollout`` as the decision read it (a change
    made meanwhile is never overwritten); ``active_seen`` (for a new rollout) the ids of
    the active rollouts of its bundle the decision checked for overlap; ``lease`` the
    ``(holder, now_s)`` that must hold the leader lease."""

    rollout: RolloutRow | None = None
    desired: Sequence[tuple[str, str, str]] = ()
    cleared: Sequence[tuple[str, str]] = ()
    audit: Sequence[AuditEntry] = ()
    based_on: float | None = None
    active_seen: Sequence[str] | None = None
    lease: tuple[str, float] | None = None


class ControlStore(ABC):
    """Nodes, desired versions, rollouts, audit log and a leader lease."""

    @abstractmethod
    def record_heartbeats(self, beats: Sequence[Heartbeat]) -> None:
        """Upsert every node in one transaction; ``registered_s`` stays the first's."""

    @abstractmethod
    def get_node(self, node: str) -> NodeRecord | None: ...

    @abstractmethod
    def list_nodes(self) -> list[NodeRecord]:
        """Every node, by name."""

    @abstractmethod
    def forget_node(self, node: str) -> bool:
        """Drop a node and its desired versions; False when it was not known."""

    @abstractmethod
    def desired_of(self, node: str) -> dict[str, str]:
        """Bundle -> ref for one node."""

    @abstractmethod
    def all_desired(self) -> dict[str, dict[str, str]]:
        """Node -> bundle -> ref."""

    @abstractmethod
    def get_rollout(self, rollout_id: str) -> RolloutRow | None: ...

    @abstractmethod
    def list_rollouts(
        self, *, active_only: bool = False, bundle: str | None = None
    ) -> list[RolloutRow]:
        """Newest (first written) first; ``active_only`` keeps :data:`ACTIVE_STATES`."""

    @abstractmethod
    def audit(
        self, *, rollout: str | None = None, after_seq: int = 0, limit: int = 1000
    ) -> list[AuditEntry]:
        """Entries with ``seq > after_seq``, oldest first, at most ``limit``."""

    @abstractmethod
    def apply(self, change: Change) -> list[int]:
        """Write ``change`` in one transaction; the seqs of the audit entries appended."""

    @abstractmethod
    def acquire_lease(self, holder: str, ttl_s: float, now_s: float) -> bool:
        """Take or renew the lease until ``now_s + ttl_s``: True when ``holder`` holds it
        now, False while another holder's lease has not expired."""

    @abstractmethod
    def release_lease(self, holder: str) -> None:
        """Give the lease up if ``holder`` holds it."""

    @abstractmethod
    def close(self) -> None: ...

    @property
    @abstractmethod
    def kind(self) -> str:
        """``"sqlite"`` or ``"postgresql"``."""
