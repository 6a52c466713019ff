"""Outbox: a durable queue for deferred work and for requests a partition keeps from
their tier, delivered when the tier is back.

The SQLite store is :class:`Outbox` (:mod:`tierwise.outbox.store`), the deliverer
:class:`Drainer` (:mod:`tierwise.outbox.drain`) with its :class:`DrainerSettings`
(:mod:`tierwise.outbox.settings`), its backlog gauges :class:`OutboxCollector`
(:mod:`tierwise.outbox.metrics`); values and errors live in
:mod:`tierwise.outbox.types`. This module is the one place to import them from.
Receivers (a tier server, the gateway) deduplicate redeliveries with
:class:`IdempotencyStore` (:mod:`tierwise.outbox.idempotency`).

The NATS JetStream backend (edge leaf nodes publish, the hub consumes) is
:class:`NatsOutbox` (:mod:`tierwise.outbox.nats_store`) with its deliverer
:class:`NatsDrainer` (:mod:`tierwise.outbox.nats_drain`) and :class:`NatsOutboxSettings`;
those load ``nats-py`` (the ``nats`` extra) only when first used.

A gateway holds either through :class:`DeferredQueue` (:mod:`tierwise.outbox.queue`):
:class:`SqliteQueue` or :class:`NatsQueue` (:mod:`tierwise.outbox.nats_queue`), built by
:func:`open_queue` from :class:`SqliteOutboxSettings` or :class:`NatsOutboxSettings`.
"""

from __future__ import annotations

from importlib import import_module
from typing import Any

from tierwise.outbox.drain import DeliverFn, Drainer
from tierwise.outbox.idempotency import IdempotencyStore
from tierwise.outbox.metrics import OutboxCollector
from tierwise.outbox.nats_settings import NatsOutboxSettings, nats_outbox_settings
from tierwise.outbox.queue import DeferredQueue, SqliteOutboxSettings, SqliteQueue, open_queue
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
    "DeferredQueue",
    "DeliverFn",
    "Drainer",
    "DrainerSettings",
    "IdempotencyStore",
    "ItemStatus",
    "NatsDrainer",
    "NatsOutbox",
    "NatsOutboxSettings",
    "NatsQueue",
    "Outbox",
    "OutboxCollector",
    "OutboxError",
    "OutboxFullError",
    "OutboxItem",
    "OutboxItemNotFoundError",
    "SqliteOutboxSettings",
    "SqliteQueue",
    "nats_outbox_settings",
    "open_queue",
]

_LAZY = {"NatsOutbox": "nats_store", "NatsDrainer": "nats_drain", "NatsQueue": "nats_queue"}


def __getattr__(name: str) -> Any:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module 'tierwise.outbox' has no attribute {name!r}")
    return getattr(import_module(f"tierwise.outbox.{module}"), name)
