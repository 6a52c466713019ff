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

__all__ = ["linked_tiers"]

_START_TIMEOUT_S = 10.0


@contextlib.contextmanager
def linked_tiers(
    tiers: Mapping[str, Mapping[str, Any]], live: Mapping[str, str], *, seed: int
) -> Iterator[dict[str, str]]:
    """A link per remote tier of ``tiers`` (a plan's ``tiers:``) to its live server
    (``live``: planned URL -> live URL); yields ``{tier: URL of its link}``."""
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
            rtt_p99_ms=max(p50, float(tier.get("rtt_p99_ms", p50))), seed=seed * 1000 + index,
        )  # fmt: skip
        relays[name] = LinkRelay(settings)
    loop = asyncio.new_event_loop()
    thread = threading.Thread(target=loop.run_forever, name="tierwise-demo-links", daemon=True)
    thread.start()
    try:
        for relay in relays.values():
            asyncio.run_coroutine_threadsafe(relay.start(), loop).result(_START_TIMEOUT_S)
        yield {name: f"http://127.0.0.1:{relay.port}" for name, relay in relays.items()}
    finally:
        try:
            for relay in relays.values():
                asyncio.run_coroutine_threadsafe(relay.stop(), loop).result(_START_TIMEOUT_S)
        finally:
            loop.call_soon_threadsafe(loop.stop)
            thread.join(_START_TIMEOUT_S)
            if not thread.is_alive():
                loop.close()
