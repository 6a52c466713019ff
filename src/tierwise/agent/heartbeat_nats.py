"""Heartbeats through NATS JetStream (an agent's ``control.telemetry``).

Each heartbeat (:func:`tierwise.agent.counters.heartbeat_document`) is published to the
node's leaf node on ``PREFIX.DOMAIN.heartbeat.ID`` with ``Nats-Msg-Id`` set, so it is
stored on the node while the uplink is down and reaches the hub's stream when the link
heals; the control plane consumes it there (:mod:`tierwise.control.nats_intake`) and
takes it as of the time the node sent it. A publish has no answer: the node reads its
desired state from ``control.url`` at every sync, and heartbeats keep the settings'
interval. A publish that fails is recorded like an unanswered heartbeat.
"""

from __future__ import annotations

import uuid
from collections.abc import Mapping
from typing import Any

import orjson

from tierwise.agent.heartbeat import HeartbeatAnswer, HeartbeatSender
from tierwise.errors import AgentError, ConfigError, OutboxError, PayloadTooLargeError
from tierwise.outbox.nats_settings import NatsTelemetrySettings
from tierwise.outbox.nats_store import NatsOutbox

__all__ = ["HEARTBEAT_QUEUE", "NatsHeartbeat"]

#: The queue (subject token) heartbeats travel under.
HEARTBEAT_QUEUE = "heartbeat"


class NatsHeartbeat(HeartbeatSender):
    """Publishes one node's heartbeats (see the module docstring)."""

    def __init__(self, settings: NatsTelemetrySettings, node: str, heartbeat_s: float) -> None:
        super().__init__(node, settings.display_url, heartbeat_s)
        self.settings = settings
        self._box: NatsOutbox | None = None
        self._boot = uuid.uuid4().hex[:12]  # this process's heartbeats, for their ids
        self._seq = 0

    @property
    def where(self) -> str:
        return f"NATS {self.url} (stream {self.settings.stream})"

    async def send(self, document: Mapping[str, Any]) -> HeartbeatAnswer:
        """Publish one heartbeat; AgentError saying what failed."""
        try:
            if self._box is None:
                self._box = await NatsOutbox.open(self.settings)
            self._seq += 1
            await self._box.put(
                HEARTBEAT_QUEUE,
                orjson.dumps(dict(document)),
                idempotency_key=f"{self.node}:{self._boot}:{self._seq}",
                meta={"node": self.node},
            )
        except (OutboxError, PayloadTooLargeError, ConfigError) as exc:
            raise AgentError(f"{self.where} did not take a heartbeat: {exc}") from exc
        return HeartbeatAnswer()

    async def aclose(self) -> None:
        box, self._box = self._box, None
        if box is not None:
            await box.close()
