"""The outbox's backlog gauges: undelivered items per queue and the age of the oldest,
read from a real SQLite store at scrape time; delivered items leave them."""

from __future__ import annotations

import threading
from pathlib import Path

from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.parser import text_string_to_metric_families

from outbox_helpers import FakeClock
from tierwise.outbox import Outbox, OutboxCollector


def _gauges(registry: CollectorRegistry) -> dict[tuple[str, str], float]:
    text = generate_latest(registry).decode()
    return {
        (s.name, s.labels["queue"]): s.value
        for family in text_string_to_metric_families(text)
        for s in family.samples
    }


def test_backlog_gauges_follow_the_queue(tmp_path: Path) -> None:
    clock = FakeClock(1_000.0)
    box = Outbox(tmp_path / "outbox.db", max_items=10, clock=clock)
    registry = CollectorRegistry()
    registry.register(OutboxCollector(box))
    try:
        assert _gauges(registry) == {}
        first = box.put("cloud", b"a")
        clock.now_s = 1_030.0
        box.put("cloud", b"b")
        box.put("deferred", b"c")
        clock.now_s = 1_100.0
        assert box.backlog() == {"cloud": (2, 100.0), "deferred": (1, 70.0)}
        assert _gauges(registry) == {
            ("tierwise_outbox_items", "cloud"): 2.0,
            ("tierwise_outbox_items", "deferred"): 1.0,
            ("tierwise_outbox_oldest_age_seconds", "cloud"): 100.0,
            ("tierwise_outbox_oldest_age_seconds", "deferred"): 70.0,
        }
        assert box.complete(first, b"ok")  # the oldest delivered: the next is the oldest
        assert _gauges(registry)[("tierwise_outbox_oldest_age_seconds", "cloud")] == 70.0
        assert _gauges(registry)[("tierwise_outbox_items", "cloud")] == 1.0
    finally:
        box.close()


def test_a_scrape_never_waits_for_a_write_holding_the_store(tmp_path: Path) -> None:
    """While a write holds the store's lock (up to the busy timeout), a scrape on the
    event loop answers at once with the last figures read, their ages brought up to now."""
    clock = FakeClock(1_000.0)
    box = Outbox(tmp_path / "outbox.db", max_items=10, clock=clock)
    registry = CollectorRegistry()
    registry.register(OutboxCollector(box))
    scraped: list[dict[tuple[str, str], float]] = []
    try:
        box.put("cloud", b"a")
        clock.now_s = 1_010.0
        assert _gauges(registry)[("tierwise_outbox_oldest_age_seconds", "cloud")] == 10.0
        clock.now_s = 1_025.0
        with box._lock:  # a write in progress, as BEGIN IMMEDIATE waiting on another process
            scraper = threading.Thread(target=lambda: scraped.append(_gauges(registry)))
            scraper.start()
            scraper.join(timeout=30.0)
            finished = not scraper.is_alive()
        scraper.join()
        assert finished, "the scrape waited for the store's lock"
        assert scraped == [
            {
                ("tierwise_outbox_items", "cloud"): 1.0,
                ("tierwise_outbox_oldest_age_seconds", "cloud"): 25.0,
            }
        ]
        box.put("edge", b"b")  # the lock free again: a fresh read
        assert _gauges(registry)[("tierwise_outbox_items", "edge")] == 1.0
    finally:
        box.close()
