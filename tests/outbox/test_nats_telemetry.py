"""Heartbeats through NATS JetStream against a real hub and leaf node and a real control
plane: a node's heartbeats published during a partition wait on its leaf, reach the
control plane once the link heals, and count as of the time the node sent them; a
heartbeat the control plane cannot take is dropped without stopping the others."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from nats_helpers import NatsPair

from registry_helpers import make_keys, publish
from server_helpers import running_app
from tierwise.agent.control_settings import ControlSettings as AgentControl
from tierwise.agent.heartbeat import Heartbeat, heartbeat_for
from tierwise.agent.heartbeat_nats import HEARTBEAT_QUEUE, NatsHeartbeat
from tierwise.control.app import ControlApp
from tierwise.control.service import build_control_app
from tierwise.control.settings import ControlSettings
from tierwise.control.store_open import open_control_store
from tierwise.errors import AgentError
from tierwise.outbox import NatsOutbox
from tierwise.outbox.nats_settings import NatsTelemetrySettings
from tierwise.registry import LocalStore

pytestmark = pytest.mark.slow

COUNTERS = {
    "started_s": 5.0, "digest": None, "requests": 0, "errors": 0,
    "latency_bounds_s": [0.001, 0.01], "latency_counts": [0, 0, 0], "energy_j": 0.5,
    "inferences": 0, "agree": 0, "disagree": 0, "routed": 0, "fallbacks": 0,
}  # fmt: skip


@pytest.fixture
def plane(tmp_path: Path, pair: NatsPair) -> Iterator[tuple[str, ControlApp, str]]:
    registry = LocalStore(tmp_path / "registry", create=True)
    keys = make_keys(tmp_path)
    digest = publish(registry, tmp_path, keys, "1", {"small": 1}, name="digits").digest
    settings = ControlSettings.model_validate({
        "store": str(tmp_path / "control.db"), "heartbeat_s": 5,
        "registry": {"store": str(tmp_path / "registry"), "trusted_keys": [keys.public_path]},
        "telemetry": {"backend": "nats", "url": pair.hub_url, "hub_domain": pair.hub_domain,
                      "source_domains": [pair.leaf_domain], "fetch_timeout_s": 0.2},
    })  # fmt: skip
    app = build_control_app(settings, env={})
    with running_app(app) as (_, port):
        yield f"http://127.0.0.1:{port}", app, digest


def _document(node: str, digest: str, requests: int, sent_s: float) -> dict[str, Any]:
    counters = COUNTERS | {"requests": requests, "inferences": requests,
                           "latency_counts": [requests, requests, requests]}  # fmt: skip
    return {"node": node, "labels": {"hw": "pi5"}, "sent_s": sent_s,
            "address": "http://10.0.0.7:8000",
            "status": {"bundles": {"digits": {"version": "1", "digest": digest, "ready": True}}},
            "counters": {"digits": counters}}  # fmt: skip


async def _until_seen(url: str, node: str, at_s: float, timeout_s: float = 30.0) -> dict[str, Any]:
    """The node's record once its last heartbeat is the one sent at ``at_s``."""
    deadline = time.monotonic() + timeout_s
    async with httpx.AsyncClient(base_url=url, timeout=10) as client:
        while True:
            answer = await client.get(f"/v1/nodes/{node}")
            if answer.status_code == 200 and answer.json()["last_seen_s"] == pytest.approx(at_s):
                doc: dict[str, Any] = answer.json()
                return doc
            assert time.monotonic() < deadline, answer.text
            await asyncio.sleep(0.1)


def _requests(db: Path, node: str) -> int:
    store = open_control_store(str(db))
    try:
        record = store.get_node(node)
        assert record is not None
        return int(record.status["counters"]["digits"]["requests"])
    finally:
        store.close()


async def test_heartbeats_wait_out_a_partition_and_count_as_sent(
    pair: NatsPair, plane: tuple[str, ControlApp, str], tmp_path: Path
) -> None:
    url, app, digest = plane
    db = tmp_path / "control.db"
    leaf = NatsTelemetrySettings(url=pair.leaf_url, domain=pair.leaf_domain)
    beats = NatsHeartbeat(leaf, "edge-7", 10.0)
    pair.relay.cut()
    sent = time.time() - 30.0  # the node's clock, half a minute ago
    async with httpx.AsyncClient(base_url=url, timeout=10) as client:
        try:
            for i in range(3):
                await beats.send(_document("edge-7", digest, 10 * (i + 1), sent + i))
                beats.answered()
            # a heartbeat the control plane cannot take: not JSON
            async with await NatsOutbox.open(leaf) as box:
                await box.put(HEARTBEAT_QUEUE, b"{not json", meta={"node": "edge-8"})
            await asyncio.sleep(1.0)
            assert (await client.get("/v1/nodes/edge-7")).status_code == 404
            pair.relay.heal()
            node = await _until_seen(url, "edge-7", sent + 2)  # as sent, not as arrived
            assert _requests(db, "edge-7") == 30
            assert node["alive"] is False  # half a minute is past 3 heartbeat intervals
            assert node["labels"] == {"hw": "pi5"}
            assert node["status"]["address"] == "http://10.0.0.7:8000"
            # the next one arrives while the link is up
            now = time.time()
            await beats.send(_document("edge-7", digest, 40, now))
            node = await _until_seen(url, "edge-7", now)
            assert node["alive"] is True
            assert _requests(db, "edge-7") == 40
        finally:
            await beats.aclose()
        assert (await client.get("/v1/nodes/edge-8")).status_code == 404
    assert app.intake is not None
    assert app.intake.drainer.failures == 1  # the bad one, terminated
    assert app.intake.drainer.delivered == 4
    assert app.heartbeats == 4


async def test_an_unreachable_leaf_is_a_failed_heartbeat() -> None:
    settings = NatsTelemetrySettings(url="nats://127.0.0.1:1", connect_timeout_s=0.5)
    beats = NatsHeartbeat(settings, "edge-1", 10.0)
    with pytest.raises(AgentError, match="did not take a heartbeat"):
        await beats.send({"node": "edge-1"})
    await beats.aclose()


def test_agent_control_settings_pick_the_heartbeat_path() -> None:
    nats = AgentControl.model_validate(
        {"url": "http://127.0.0.1:9100/v1/nodes/{node}/desired",
         "telemetry": {"backend": "nats", "url": "nats://127.0.0.1:4222", "domain": "edge1"}}
    )  # fmt: skip
    assert isinstance(heartbeat_for(nats, "edge-1", {}), NatsHeartbeat)
    assert nats.telemetry is not None
    assert nats.telemetry.stream == "TIERWISE_TELEMETRY"
    assert nats.telemetry.discard == "old"  # a full stream drops the oldest heartbeats
    http = AgentControl.model_validate(
        {"url": "http://127.0.0.1:9100/d", "heartbeat_url": "http://127.0.0.1:9100/h"}
    )
    assert isinstance(heartbeat_for(http, "edge-1", {}), Heartbeat)
    assert heartbeat_for(AgentControl(url="http://127.0.0.1:9100/d"), "edge-1", {}) is None
    with pytest.raises(ValueError, match="not both"):
        AgentControl.model_validate(
            {"url": "http://h/d", "heartbeat_url": "http://h/h",
             "telemetry": {"backend": "nats", "url": "nats://h"}}
        )  # fmt: skip
