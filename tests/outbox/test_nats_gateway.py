"""Gateways on the JetStream outbox (``outbox: {backend: nats}``), against a real hub and
leaf node: an edge gateway whose cloud is out of reach publishes deferred work through
its leaf during a partition, the hub's gateway (``consume: true``) delivers it once after
the link heals, and the edge answers ``GET /v2/outbox/{id}`` from the hub's results. The
deliverer also holds items until their time, posts callbacks and records failures."""

from __future__ import annotations

import asyncio
import json
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import httpx
import numpy as np
import pytest
from nats_helpers import NatsPair, infer_body, model_runs, tier_deliver

from cascade_helpers import model_repo, write_plan
from server_helpers import RunningServer, free_port, running_app, running_server
from tierwise.errors import ConfigError
from tierwise.outbox import NatsDrainer, NatsOutbox, NatsOutboxSettings, NatsQueue, OutboxItem
from tierwise.planfile.load import load_plan
from tierwise.router.build import build_router
from tierwise.router.gateway import Gateway, GatewaySettings, load_gateway_settings
from tierwise.server import ServerSettings
from tierwise.zoo import load_eval

pytestmark = pytest.mark.slow

DEFERRABLE = """
  batch:
    privacy: public
    urgency: deferrable
    cascade:
      - {tier: cloud}
"""


def _plan(path: Path, zoo: Path, cloud_url: str) -> Path:
    plan = write_plan(path, zoo, cloud_url, cloud_url)
    plan.write_text(plan.read_text() + DEFERRABLE)
    return plan


@contextmanager
def _gateway(plan_path: Path, outbox: dict[str, object]) -> Iterator[tuple[str, Gateway]]:
    plan = load_plan(plan_path)
    settings = GatewaySettings.model_validate({"outbox": outbox})
    app = Gateway(plan, build_router(plan), settings)
    with running_app(app) as (_, port):
        yield f"http://127.0.0.1:{port}", app


def _until(check: Callable[[], bool], timeout_s: float = 30.0) -> None:
    deadline = time.monotonic() + timeout_s
    while not check():
        assert time.monotonic() < deadline, "condition not reached in time"
        time.sleep(0.1)


def _body(x: np.ndarray, **parameters: object) -> dict[str, object]:
    tensor = {"name": "image", "shape": list(x.shape), "datatype": "FP32",
              "data": x.ravel().tolist()}  # fmt: skip
    return {"id": "n-1", "parameters": parameters, "inputs": [tensor]}


def test_edge_defers_through_its_leaf_and_the_hub_delivers_once(
    shared_zoo_dir: Path, pair: NatsPair, tmp_path: Path
) -> None:
    cloud_port = free_port()
    cloud_url = f"http://127.0.0.1:{cloud_port}"
    dead_url = f"http://127.0.0.1:{free_port()}"  # the edge cannot reach the cloud
    edge_plan = _plan(tmp_path / "edge.yaml", shared_zoo_dir, dead_url)
    hub_plan = _plan(tmp_path / "hub.yaml", shared_zoo_dir, cloud_url)
    edge_outbox = {"backend": "nats", "url": pair.leaf_url, "domain": pair.leaf_domain,
                   "hub_domain": pair.hub_domain, "publish_timeout_s": 1.0}  # fmt: skip
    hub_outbox = {"backend": "nats", "url": pair.hub_url, "domain": pair.hub_domain,
                  "hub_domain": pair.hub_domain, "source_domains": [pair.leaf_domain],
                  "consume": True, "fetch_timeout_s": 0.2}  # fmt: skip
    x, _ = load_eval(shared_zoo_dir)
    repo = model_repo(shared_zoo_dir, tmp_path, "large")
    pair.relay.cut()
    with (
        running_server(ServerSettings(model_repo=repo), port=cloud_port),
        _gateway(edge_plan, edge_outbox) as (edge, edge_app),
        httpx.Client(base_url=edge, timeout=10) as client,
    ):
        accepted = client.post("/v2/models/batch/infer", json=_body(x[:2], idempotency_key="k-1"))
        assert accepted.status_code == 202, accepted.text
        item = accepted.json()
        again = client.post("/v2/models/batch/infer", json=_body(x[:2], idempotency_key="k-1"))
        assert again.json()["id"] == item["id"]  # the same key is queued once
        # the hub is out of reach: the item reads as the leaf holds it
        assert client.get(item["result_url"]).json()["status"] == "pending"
        assert client.get("/v2/outbox/not-an-item").status_code == 404
        with _gateway(hub_plan, hub_outbox) as (hub, hub_app):
            time.sleep(1.0)
            assert model_runs(cloud_url, "large") == 0  # nothing crossed the cut link
            pair.relay.heal()

            def done() -> bool:
                return bool(client.get(item["result_url"]).json()["status"] == "done")

            _until(done)
            time.sleep(0.5)  # room for a duplicate delivery, were there one
            assert isinstance(hub_app.queue, NatsQueue)
            assert hub_app.queue.drainer is not None
            assert hub_app.queue.drainer.delivered == 1
            hub_metrics = httpx.get(f"{hub}/metrics").text
        status = client.get(item["result_url"]).json()
        assert model_runs(cloud_url, "large") == 1  # acted on once
        assert status["attempts"] == 1
        result = status["result"]
        assert result["parameters"]["tier"] == "cloud"
        assert len({o["name"]: o for o in result["outputs"]}["label"]["data"]) == 2
        edge_metrics = client.get("/metrics").text
    assert 'tierwise_outbox_items{queue="deferred"}' in hub_metrics
    assert 'tierwise_outbox_stored_items{queue="deferred"}' in edge_metrics
    assert isinstance(edge_app.queue, NatsQueue)
    assert edge_app.queue.drainer is None


# -- the deliverer's outcomes, holds and callbacks ---------------------------------------


@contextmanager
def _callback_sink() -> Iterator[tuple[str, list[tuple[dict[str, str], bytes]]]]:
    received: list[tuple[dict[str, str], bytes]] = []

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            body = self.rfile.read(int(self.headers.get("content-length", "0")))
            received.append(({k.lower(): v for k, v in self.headers.items()}, body))
            self.send_response(204)
            self.end_headers()

        def log_message(self, *args: object) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}/done", received
    finally:
        server.shutdown()
        server.server_close()


async def test_hub_publishers_holds_callbacks_and_failures(
    pair: NatsPair, tier: RunningServer
) -> None:
    # a publisher at the hub (its own domain) and a consumer there: one server's worth
    hub = NatsOutboxSettings(url=pair.hub_url, domain=pair.hub_domain,
                             hub_domain=pair.hub_domain, fetch_timeout_s=0.2,
                             backoff_base_s=0.05)  # fmt: skip
    url = f"{tier.url}/v2/models/scale/infer"
    with _callback_sink() as (callback_url, received):
        async with httpx.AsyncClient(timeout=10) as client:
            real = tier_deliver(client, url)

            async def deliver(item: OutboxItem) -> bytes:
                if item.meta.get("bad"):
                    raise ConfigError("input", "a tensor the model takes", "nothing")
                return await real(item)

            drainer = NatsDrainer(hub, "cloud", deliver)
            async with drainer, await NatsOutbox.open(hub) as box:
                held_until = time.time() + 1.5
                held = await box.put("cloud", infer_body(1), not_before_s=held_until)
                called = await box.put("cloud", infer_body(2), callback_url=callback_url)
                bad = await box.put("cloud", infer_body(3), meta={"bad": True})
                await _async_until(lambda: drainer.delivered == 1 and drainer.failures == 1)
                assert model_runs(tier.url) == 1  # the held item waits
                assert drainer.held >= 1
                await _async_until(lambda: drainer.delivered == 2)
                assert time.time() >= held_until
                assert drainer.results is not None
                outcome = await drainer.results.get(called)
                assert outcome is not None
                assert outcome.status == "done"
                assert outcome.callback_status == "delivered"
                doubled = json.loads(outcome.result or b"")["outputs"][0]["data"]
                assert doubled == [4.0, 2.0, 4.0, 6.0]
                failed = await drainer.results.get(bad)
                assert failed is not None
                assert failed.status == "failed"
                assert "a tensor the model takes" in (failed.last_error or "")
                assert (await drainer.results.get(held)) is not None
    assert model_runs(tier.url) == 2
    [(headers, body)] = received
    assert headers["tierwise-outbox-item"] == called
    assert json.loads(body)["outputs"][0]["data"] == [4.0, 2.0, 4.0, 6.0]


async def _async_until(check: Callable[[], bool], timeout_s: float = 30.0) -> None:
    deadline = time.monotonic() + timeout_s
    while not check():
        assert time.monotonic() < deadline, "condition not reached in time"
        await asyncio.sleep(0.05)


# -- settings -----------------------------------------------------------------------------


def test_gateway_settings_choose_the_backend(tmp_path: Path) -> None:
    path = tmp_path / "gateway.yaml"
    path.write_text("outbox: {backend: nats, url: 'nats://127.0.0.1:4222', domain: edge1}\n")
    settings = load_gateway_settings(path)
    assert isinstance(settings.outbox_settings(), NatsOutboxSettings)
    short = GatewaySettings(outbox_path=tmp_path / "o.db")
    sqlite = short.outbox_settings()
    assert sqlite is not None
    assert sqlite.backend == "sqlite"
    path.write_text("outbox: {backend: kafka, url: x}\n")
    with pytest.raises(ConfigError, match="outbox"):
        load_gateway_settings(path)
    path.write_text(f"outbox_path: {tmp_path / 'o.db'}\noutbox: {{backend: sqlite, path: x}}\n")
    with pytest.raises(ConfigError, match="not both"):
        load_gateway_settings(path)
    path.write_text("outbox: {backend: nats, url: 'nats://h', consume: true, domain: edge1}\n")
    with pytest.raises(ConfigError, match="hub_domain"):
        load_gateway_settings(path)


def test_unreachable_broker_fails_the_start_in_one_line(
    shared_zoo_dir: Path, tmp_path: Path
) -> None:
    plan = _plan(tmp_path / "plan.yaml", shared_zoo_dir, "http://127.0.0.1:9")
    outbox = {"backend": "nats", "url": "nats://127.0.0.1:1", "connect_timeout_s": 0.5}
    loaded = load_plan(plan)
    app = Gateway(loaded, build_router(loaded), GatewaySettings.model_validate({"outbox": outbox}))
    sent: list[dict[str, str]] = []

    async def receive() -> dict[str, str]:
        return {"type": "lifespan.startup"}

    async def send(message: dict[str, str]) -> None:
        sent.append(message)

    asyncio.run(app._lifespan(receive, send))
    assert [m["type"] for m in sent] == ["lifespan.startup.failed"]
    assert app.startup_error is not None  # the CLI prints it in one line, exit 2
    assert "cannot connect" in str(app.startup_error)
