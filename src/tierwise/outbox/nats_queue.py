"""The gateway's outbox on NATS JetStream (:class:`~tierwise.outbox.queue.DeferredQueue`).

Every gateway with ``outbox: {backend: nats}`` publishes the work it defers through its
local server (:class:`NatsOutbox`: a leaf's stream, or the hub's stream at the hub). The
one with ``consume: true`` (at the hub) also runs a :class:`NatsDrainer` for the hub
stream and delivers the items, every domain's, through its own router.

``GET /v2/outbox/{id}`` reads the item's outcome from the hub's results bucket (reached
through the leaf while the link is up); an item without an outcome yet is ``pending`` as
long as this end's stream still holds it, and unknown otherwise. The backlog gauges are
read every ``gauge_refresh_s`` in the background, so a scrape never waits on the broker:
``tierwise_outbox_items{queue}`` (undelivered items, where the drainer runs) and
``tierwise_outbox_stored_items{queue}`` (what this end's stream holds).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable, Iterator, Mapping
from typing import Any

from prometheus_client.core import GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

from tierwise.errors import ConfigError
from tierwise.outbox.drain import DeliverFn
from tierwise.outbox.nats_drain import NatsDrainer
from tierwise.outbox.nats_results import NatsResults
from tierwise.outbox.nats_settings import NatsOutboxSettings
from tierwise.outbox.nats_store import NatsOutbox
from tierwise.outbox.types import OutboxError, OutboxItem, OutboxItemNotFoundError

__all__ = ["NatsQueue"]

log = logging.getLogger("tierwise.outbox")


class NatsQueue:
    """The JetStream outbox as a gateway uses it (see the module docstring)."""

    def __init__(self, settings: NatsOutboxSettings, *, gauge_refresh_s: float = 5.0) -> None:
        if not isinstance(settings, NatsOutboxSettings):
            raise ConfigError("settings", "a NatsOutboxSettings", type(settings).__name__)
        self.settings = settings
        self.path = settings.display_url
        self.box: NatsOutbox | None = None
        self.drainer: NatsDrainer | None = None
        self._results: NatsResults | None = None
        self._tiers: list[str] = []
        self._gauge_refresh_s = gauge_refresh_s
        self._gauges: dict[str, tuple[int, int | None]] = {}  # tier: (stored, undelivered)
        self._gauge_task: asyncio.Task[None] | None = None

    # -- lifecycle ------------------------------------------------------------------------

    async def start(self, tier: str, deliver: DeliverFn, healthy: Callable[[], bool]) -> None:
        if self.box is None:
            self.box = await NatsOutbox.open(self.settings)
        self._remember(tier)
        if self.settings.consume and self.drainer is None:
            drainer = NatsDrainer(self.settings, tier, deliver, healthy)
            try:
                await drainer.start()
            except BaseException:
                await self.stop()
                raise
            self.drainer, self._results = drainer, drainer.results
        if self._gauge_task is None:
            self._gauge_task = asyncio.get_running_loop().create_task(
                self._refresh_gauges(), name="tierwise-nats-outbox-gauges"
            )

    async def stop(self) -> None:
        task, self._gauge_task = self._gauge_task, None
        if task is not None:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
        drainer, self.drainer = self.drainer, None
        if drainer is not None:
            await drainer.stop()
        box, self.box = self.box, None
        self._results = None  # read through the next connection
        if box is not None:
            await box.close()

    # -- items ----------------------------------------------------------------------------

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
        if self.box is None:
            raise OutboxError("not connected (the gateway has not started)", path=self.path)
        self._remember(tier)
        return await self.box.put(
            tier,
            payload,
            idempotency_key=idempotency_key,
            meta=meta,
            not_before_s=not_before_s,
            callback_url=callback_url,
        )

    async def get(self, item_id: str) -> OutboxItem:
        if self.box is None:
            raise OutboxError("not connected (the gateway has not started)", path=self.path)
        outcome = await self._outcome(item_id)
        if outcome is not None:
            return outcome
        for tier in self._tiers:
            item = await self.box.find(tier, item_id)
            if item is not None:
                return item
        raise OutboxItemNotFoundError(path=self.path, item_id=item_id)

    async def _outcome(self, item_id: str) -> OutboxItem | None:
        """The item's outcome in the hub's bucket; None when it has none, or while the
        hub cannot be reached (the item then reads as this end holds it)."""
        box = self.box
        if box is None:
            return None
        try:
            if self._results is None:
                js = box.client.jetstream(
                    domain=self.settings.hub_domain, timeout=self.settings.publish_timeout_s
                )
                self._results = await NatsResults.open(js, self.settings, create=False)
            return await self._results.get(item_id)
        except OutboxError as exc:
            log.info("outbox item %s: no outcome read (%s)", item_id, exc)
            return None

    def _remember(self, tier: str) -> None:
        self.settings.subject(tier)  # a name NATS takes
        if tier not in self._tiers:
            self._tiers.append(tier)

    # -- gauges ---------------------------------------------------------------------------

    def collector(self) -> Collector | None:
        return _NatsCollector(self)

    async def _refresh_gauges(self) -> None:
        while True:
            for tier in list(self._tiers):
                try:
                    self._gauges[tier] = await self._read_gauges(tier)
                except Exception as exc:  # the gauges keep their last figures
                    log.debug("outbox gauges of %r not read: %s", tier, exc)
            await asyncio.sleep(self._gauge_refresh_s)

    async def _read_gauges(self, tier: str) -> tuple[int, int | None]:
        box = self.box
        if box is None:
            return 0, None
        stored = await box.pending_count()
        drainer = self.drainer
        undelivered = await drainer.undelivered() if drainer is not None else None
        return stored, undelivered


class _NatsCollector(Collector):
    """The last backlog figures :class:`NatsQueue` read (see the module docstring)."""

    def __init__(self, queue: NatsQueue) -> None:
        self._queue = queue

    def collect(self) -> Iterator[Metric]:
        stored = GaugeMetricFamily(
            "tierwise_outbox_stored_items",
            "Items this end's JetStream stream holds (delivered or not), by queue.",
            labels=["queue"],
        )
        items = GaugeMetricFamily(
            "tierwise_outbox_items", "Undelivered outbox items, by queue.", labels=["queue"]
        )
        for tier, (n_stored, undelivered) in sorted(self._queue._gauges.items()):
            stored.add_metric([tier], n_stored)
            if undelivered is not None:
                items.add_metric([tier], undelivered)
        yield stored
        yield items
