"""The outbox's gauges, read from its store when ``/metrics`` is scraped.

- ``tierwise_outbox_items{queue}``: undelivered items (pending or leased) per queue (the
  tier an item waits for, or the gateway's deferred-work queue);
- ``tierwise_outbox_oldest_age_seconds{queue}``: how long the oldest of them has waited.

One grouped query per scrape over the undelivered items, of which the store holds at most
``max_items``: the cost of a scrape is bounded whatever the traffic. A scrape runs on the
gateway's event loop, so it never waits for the store's lock (a write may hold it up to
the busy timeout): while one does, the gauges show the last figures read, their ages
brought up to now. A store that fails to answer is logged and left out of that scrape
rather than failing it.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator

from prometheus_client.core import GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

from tierwise.outbox.store import Outbox
from tierwise.outbox.types import OutboxError

__all__ = ["OutboxCollector"]

log = logging.getLogger("tierwise.outbox")


class OutboxCollector(Collector):
    """The backlog gauges of one outbox (see the module docstring)."""

    def __init__(self, outbox: Outbox) -> None:
        self._outbox = outbox

    def collect(self) -> Iterator[Metric]:
        items = GaugeMetricFamily(
            "tierwise_outbox_items", "Undelivered outbox items, by queue.", labels=["queue"]
        )
        oldest = GaugeMetricFamily(
            "tierwise_outbox_oldest_age_seconds",
            "Age of the oldest undelivered outbox item, by queue.",
            labels=["queue"],
        )
        try:
            backlog = self._outbox.backlog(wait=False)
        except OutboxError as exc:
            log.warning("outbox backlog unreadable for /metrics: %s", exc)
            backlog = {}
        for queue, (count, age_s) in sorted(backlog.items()):
            items.add_metric([queue], float(count))
            oldest.add_metric([queue], age_s)
        yield items
        yield oldest
