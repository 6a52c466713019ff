"""Outbox: a durable queue for deferred work and for requests a partition keeps from
their tier, delivered when the tier is back.

The SQLite store is :class:`Outbox` (:mod:`tierwise.outbox.store`), the deliverer
:class:`Drainer` (:mod:`tierwise.outbox.drain`) with its :class:`DrainerSettings`
(:mod:`tierwise.outbox.settings`), its backlog gauges :class:`OutboxCollector`
(:mod:`tierwise.outbox.metrics`); values and errors live in
:mod:`tierwise.outbox.types`. This module is the one place to import them from.
Receivers deduplicate redeliveries with :class:`tierwise.server.idempotency.IdempotencyStore`.
"""

from __future__ import annotations

from tierwise.outbox.drain import DeliverFn, Drainer
from tierwise.outbox.metrics import OutboxCollector
from tierwise.outbox.settings import DrainerSettings
from tierwise.outbox.store import Outbox
from tierwise.outbox.types import (
    CallbackStatus,
    ItemStatus,
    OutboxError,
    OutboxFullError,
    OutboxItem,
    OutboxItemNotFoundError,
)

__all__ = [
    "CallbackStatus",
    "DeliverFn",
    "Drainer",
    "DrainerSettings",
    "ItemStatus",
    "Outbox",
    "OutboxCollector",
    "OutboxError",
    "OutboxFullError",
    "OutboxItem",
    "OutboxItemNotFoundError",
]
