"""What a gateway needs of an outbox, whichever backend holds it: queue an item, read an
item back by id, and run the deliverer of one queue.

:class:`SqliteQueue` is the default (one SQLite file, :class:`Outbox` + :class:`Drainer`);
:class:`~tierwise.outbox.nats_queue.NatsQueue` is the JetStream backend. The gateway's
settings pick one (``outbox: {backend: sqlite | nats, ...}``, :class:`SqliteOutboxSettings`
or :class:`~tierwise.outbox.nats_settings.NatsOutboxSettings`), and :func:`open_queue`
builds it.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any, Literal, Protocol

from prometheus_client.registry import Collector
from pydantic import BaseModel, ConfigDict, Field

from tierwise.outbox.drain import DeliverFn, Drainer
from tierwise.outbox.metrics import OutboxCollector
from tierwise.outbox.nats_settings import NatsOutboxSettings
from tierwise.outbox.settings import DrainerSettings
from tierwise.outbox.store import Outbox
from tierwise.outbox.types import OutboxItem

__all__ = ["DeferredQueue", "SqliteOutboxSettings", "SqliteQueue", "open_queue"]


class SqliteOutboxSettings(BaseModel):
    """The default outbox: one SQLite file (``outbox: {backend: sqlite, path: ...}``)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    backend: Literal["sqlite"] = "sqlite"
    path: Path
    max_items: int = Field(default=10_000, ge=1, description="undelivered items kept")


class DeferredQueue(Protocol):
    """An outbox as a gateway uses it (see the module docstring)."""

    #: where the items live (a file, a server URL), for errors and logs
    path: str

    async def put(
        self,
        tier: str,
        payload: bytes,
        *,
        idempotency_key: str | None,
        not_before_s: float | None,
        callback_url: str | None,
        meta: Mapping[str, Any],
    ) -> str:
        """Queue ``payload`` for ``tier``; the item's id once it is durable."""
        ...

    async def get(self, item_id: str) -> OutboxItem:
        """The item's status (and its result once done); OutboxItemNotFoundError if none."""
        ...

    async def start(self, tier: str, deliver: DeliverFn, healthy: Callable[[], bool]) -> None:
        """Connect, and deliver ``tier``'s items while ``healthy()`` (where this end
        delivers)."""
        ...

    async def stop(self) -> None:
        """Stop delivering and close (idempotent)."""
        ...

    def collector(self) -> Collector | None:
        """The backlog gauges for ``/metrics`` (None when the backend keeps its own)."""
        ...


class SqliteQueue:
    """:class:`DeferredQueue` on the SQLite :class:`Outbox` and its :class:`Drainer`."""

    def __init__(self, settings: SqliteOutboxSettings, drainer: DrainerSettings) -> None:
        self.outbox = Outbox(settings.path, max_items=settings.max_items)
        self.path = self.outbox.path
        self._drainer_settings = drainer
        self.drainer: Drainer | None = None

    async def put(
        self,
        tier: str,
        payload: bytes,
        *,
        idempotency_key: str | None,
        not_before_s: float | None,
        callback_url: str | None,
        meta: Mapping[str, Any],
    ) -> str:
        return await asyncio.to_thread(
            self.outbox.put,
            tier,
            payload,
            idempotency_key=idempotency_key,
            not_before_s=not_before_s,
            callback_url=callback_url,
            meta=meta,
        )

    async def get(self, item_id: str) -> OutboxItem:
        return self.outbox.get(item_id)

    async def start(self, tier: str, deliver: DeliverFn, healthy: Callable[[], bool]) -> None:
        if self.drainer is None:
            self.drainer = Drainer(self.outbox, tier, deliver, healthy, self._drainer_settings)
        self.drainer.start()

    async def stop(self) -> None:
        if self.drainer is not None:
            await self.drainer.stop()
        self.outbox.close()

    def collector(self) -> Collector | None:
        return OutboxCollector(self.outbox)


def open_queue(
    settings: SqliteOutboxSettings | NatsOutboxSettings, drainer: DrainerSettings
) -> DeferredQueue:
    """The queue ``settings`` describe (nothing connects before :meth:`start`)."""
    if isinstance(settings, NatsOutboxSettings):
        from tierwise.outbox.nats_queue import NatsQueue  # loads nats-py

        return NatsQueue(settings)
    return SqliteQueue(settings, drainer)
