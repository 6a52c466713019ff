"""Heartbeats from NATS JetStream: the control plane's side of an agent's
``control.telemetry`` (:mod:`tierwise.agent.heartbeat_nats`).

With ``telemetry: {backend: nats, url: HUB, hub_domain: ..., source_domains: [...]}`` in
``control.yaml``, the control plane consumes the hub's heartbeat stream (every leaf's
stream sourced into it) with a durable pull consumer and explicit acks, and takes each
heartbeat as the HTTP route does, as of the time the node sent it (never later than
now). A heartbeat is acked once stored; one that cannot be taken (bad JSON, a bad node
name, a 4xx-type error) is terminated and logged; a busy writer makes it come back later.
Replicas share the durable consumer, so each heartbeat is taken by one of them.
"""

from __future__ import annotations

import math
import time
from collections.abc import Awaitable, Callable
from typing import Any

import orjson

from tierwise.agent.heartbeat_nats import HEARTBEAT_QUEUE
from tierwise.errors import ConfigError
from tierwise.outbox.nats_drain import NatsDrainer
from tierwise.outbox.nats_settings import NatsTelemetrySettings
from tierwise.outbox.types import OutboxItem

__all__ = ["IngestFn", "NatsHeartbeatIntake"]

#: Takes ``(node, heartbeat document, at_s)``; returns once stored.
IngestFn = Callable[[str, dict[str, Any], float], Awaitable[None]]


class NatsHeartbeatIntake:
    """Feeds the hub's heartbeat stream to ``ingest`` (see the module docstring)."""

    def __init__(
        self,
        settings: NatsTelemetrySettings,
        ingest: IngestFn,
        node_name: Callable[[str], bool],
        *,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.settings = settings
        self._ingest = ingest
        self._node_name = node_name
        self._clock = clock
        self.drainer = NatsDrainer(settings, HEARTBEAT_QUEUE, self._deliver, keep_results=False)

    async def start(self) -> None:
        await self.drainer.start()

    async def stop(self) -> None:
        await self.drainer.stop()

    async def _deliver(self, item: OutboxItem) -> bytes:
        node = item.meta.get("node")
        if not isinstance(node, str) or not self._node_name(node):
            raise ConfigError("node", "a node name (letters, digits, '.', '_', '-')", node)
        try:
            doc = orjson.loads(item.payload)
        except orjson.JSONDecodeError as exc:
            raise ConfigError("heartbeat", "a JSON object", str(exc)) from exc
        if not isinstance(doc, dict):
            raise ConfigError("heartbeat", "a JSON object", type(doc).__name__)
        now = self._clock()
        sent = doc.get("sent_s")
        at_s = now
        if isinstance(sent, int | float) and not isinstance(sent, bool) and math.isfinite(sent):
            at_s = min(float(sent), now)
        await self._ingest(node, doc, at_s)
        return b""
