"""The demo's network: each remote tier of the live plan is reached through an emulated
link (:class:`~tierwise.link.LinkRelay`) with the round trips the plan gives it, so the
latencies the replay measures include the network the planner predicted with.

The links run on an event loop of their own, in a background thread, for as long as the
context lasts. Each tier draws its round trips from a stream seeded by the demo's seed
and the tier's place in the plan, so two runs see the same network.
"""

from __future__ import annotations

import asyncio
import contextlib
import threading
from collections.abc import Iterator, Mapping
from typing import Any
from urllib.parse import urlsplit

from tierwise.errors import DemoError
from tierwise.link import LinkRelay, LinkSettings
from tierwise.link.settings import PartitionMode

__all__ = ["Links", "link_seed", "linked_tiers"]

_START_TIMEOUT_S = 10.0


def link_seed(seed: int, index: int) -> int:
    """The seed of the link to the ``index``-th tier of the plan."""
    return seed * 1000 + index


class Links:
    """The running links: ``urls`` (tier -> URL of its link), their ``seeds``, and a
    partition switch (from any thread)."""

    def __init__(self, relays: dict[str, LinkRelay], loop: asyncio.AbstractEventLoop) -> None:
        self._relays, self._loop = relays, loop
        self.urls = {name: f"http://127.0.0.1:{relay.port}" for name, relay in relays.items()}
        self.seeds = {name: int(relay.settings.seed or 0) for name, relay in relays.items()}

    def partition(self, tier: str, mode: PartitionMode = "reset") -> None:
        """Cut ``tier``'s link (see :meth:`LinkRelay.partition`)."""
        self._loop.call_soon_threadsafe(self._relays[tier].partition, mode)

    def heal(self, tier: str) -> None:
        self._loop.call_soon_threadsafe(self._relays[tier].heal)

    def reseed(self) -> None:
        """Start every link's round trips again from its seed (waits until done)."""

        async def all_of_them() -> None:
            for relay in self._relays.values():
                relay.reseed()

        asyncio.run_coroutine_threadsafe(all_of_them(), self._loop).result(_START_TIMEOUT_S)


@contextlib.contextmanager
def linked_tiers(
    tiers: Mapping[str, Mapping[str, Any]], live: Mapping[str, str], *, seed: int
) -> Iterator[Links]:
    """A link per remote tier of ``tiers`` (a plan's ``tiers:``) to its live server
    (``live``: planned URL -> live URL); yields the :class:`Links`."""
    relays: dict[str, LinkRelay] = {}
    for index, (name, tier) in enumerate(tiers.items()):
        if "url" not in tier:
            continue
        target = urlsplit(live[tier["url"]])
        if target.hostname is None or target.port is None:
            raise DemoError(f"tier {name}: no host and port in {live[tier['url']]}")
        p50 = float(tier.get("rtt_p50_ms", 0.0))
        settings = LinkSettings(
            target_host=target.hostname, target_port=target.port, rtt_p50_ms=p50,
            rtt_p99_ms=max(p50, float(tier.get("rtt_p99_ms", p50))), seed=link_seed(seed, index),
        )  # fmt: skip
        relays[name] = LinkRelay(settings)
    loop = asyncio.new_event_loop()
    thread = threading.Thread(target=loop.run_forever, name="tierwise-demo-links", daemon=True)
    thread.start()
    try:
        for relay in relays.values():
            asyncio.run_coroutine_threadsafe(relay.start(), loop).result(_START_TIMEOUT_S)
        yield Links(relays, loop)
    finally:
        try:
            for relay in relays.values():
                asyncio.run_coroutine_threadsafe(relay.stop(), loop).result(_START_TIMEOUT_S)
        finally:
            loop.call_soon_threadsafe(loop.stop)
            thread.join(_START_TIMEOUT_S)
            if not thread.is_alive():
                loop.close()
