"""A real NATS pair for the outbox tests: a hub and one leaf node, each with JetStream in
its own domain, on free loopback ports with throwaway store folders. The leaf reaches the
hub through a loopback TCP relay that a test can cut (a partition) and heal."""

from __future__ import annotations

import asyncio
import json
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from dataclasses import dataclass
from pathlib import Path

import httpx

from binaries import require_binary
from net_helpers import Link
from server_helpers import free_port
from tierwise.outbox import DeliverFn, NatsOutbox, NatsOutboxSettings, OutboxItem

__all__ = [
    "NatsPair",
    "infer_body",
    "model_runs",
    "nats_pair",
    "publisher_argv",
    "tier_deliver",
]

HUB_DOMAIN = "hub"
LEAF_DOMAIN = "edge1"


@dataclass
class NatsPair:
    """The running pair: client URLs, the relay on the leaf's link, the domains."""

    hub_url: str
    leaf_url: str
    relay: Link
    hub_domain: str
    leaf_domain: str
    folder: Path


def _config(name: str, port: int, store: Path, domain: str, leafnodes: str) -> str:
    return (
        f"server_name: {name}\n"
        f"listen: 127.0.0.1:{port}\n"
        "max_payload: 1MB\n"
        f"jetstream {{ store_dir: {str(store)!r}, domain: {domain},"
        " max_memory_store: 64MB, max_file_store: 4GB }\n"
        f"{leafnodes}\n"
    )


def _start(binary: str, conf: Path, port: int, log: Path) -> subprocess.Popen[bytes]:
    with log.open("wb") as out:
        process = subprocess.Popen([binary, "-c", str(conf)], stdout=out, stderr=subprocess.STDOUT)
    deadline = time.monotonic() + 20
    while True:
        if process.poll() is not None:
            raise RuntimeError(f"nats-server exited early:\n{log.read_text(errors='replace')}")
        with suppress(OSError), socket.create_connection(("127.0.0.1", port), timeout=0.5):
            return process
        if time.monotonic() > deadline:
            process.kill()
            raise RuntimeError(f"nats-server did not listen:\n{log.read_text(errors='replace')}")
        time.sleep(0.05)


def _stop(process: subprocess.Popen[bytes]) -> None:
    if process.poll() is None:
        process.terminate()
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


@contextmanager
def nats_pair(folder: Path) -> Iterator[NatsPair]:
    """Start the hub, the relay and the leaf (in that order) under ``folder``; stop all."""
    binary = require_binary("nats-server")
    folder.mkdir(parents=True, exist_ok=True)
    hub_port, hub_leaf_port, leaf_port = free_port(), free_port(), free_port()
    hub_conf = folder / "hub.conf"
    hub_conf.write_text(
        _config(
            "hub", hub_port, folder / "hub-js", HUB_DOMAIN,
            f"leafnodes {{ listen: 127.0.0.1:{hub_leaf_port} }}",
        )
    )  # fmt: skip
    hub = _start(binary, hub_conf, hub_port, folder / "hub.log")
    relay = Link(hub_leaf_port)
    leaf: subprocess.Popen[bytes] | None = None
    try:
        leaf_conf = folder / "leaf.conf"
        remote = f'{{ url: "nats://127.0.0.1:{relay.port}" }}'
        leaf_conf.write_text(
            _config(
                "leaf", leaf_port, folder / "leaf-js", LEAF_DOMAIN,
                f"leafnodes {{ reconnect: 1, remotes: [{remote}] }}",
            )
        )  # fmt: skip
        leaf = _start(binary, leaf_conf, leaf_port, folder / "leaf.log")
        yield NatsPair(
            hub_url=f"nats://127.0.0.1:{hub_port}",
            leaf_url=f"nats://127.0.0.1:{leaf_port}",
            relay=relay,
            hub_domain=HUB_DOMAIN,
            leaf_domain=LEAF_DOMAIN,
            folder=folder,
        )
    finally:
        if leaf is not None:
            _stop(leaf)
        relay.close()
        _stop(hub)


# -- the tier side and a publisher process ----------------------------------------------


def infer_body(i: int) -> bytes:
    """A V2 JSON request for the ``scale`` model (x: [1, 4])."""
    doc = {"id": f"r{i}", "inputs": [{"name": "x", "shape": [1, 4], "datatype": "FP32",
           "data": [float(i), 1.0, 2.0, 3.0]}]}  # fmt: skip
    return json.dumps(doc).encode()


def tier_deliver(client: httpx.AsyncClient, url: str) -> DeliverFn:
    """A deliver function that POSTs an item to ``url`` with its idempotency key in the
    request's parameters (as the gateway's deferred work does)."""

    async def deliver(item: OutboxItem) -> bytes:
        doc = json.loads(item.payload)
        doc.setdefault("parameters", {})["idempotency_key"] = item.idempotency_key or item.id
        response = await client.post(url, content=json.dumps(doc).encode())
        response.raise_for_status()
        return response.content

    return deliver


def model_runs(server_url: str, model: str = "scale") -> float:
    """How often ``model`` ran successfully on the tier server (its request counter)."""
    prefix = f'tierwise_requests_total{{model="{model}",outcome="success"'
    text = httpx.get(f"{server_url}/metrics", timeout=10).text
    return sum(
        float(line.rsplit(" ", 1)[1]) for line in text.splitlines() if line.startswith(prefix)
    )


async def _publish(url: str, domain: str, count: int) -> None:
    settings = NatsOutboxSettings(url=url, domain=domain)
    box = await NatsOutbox.open(settings)
    print("start", flush=True)
    for i in range(count):
        key = f"key-{i}"
        item_id = await box.put("cloud", infer_body(i), idempotency_key=key, meta={"i": i})
        print("put", key, item_id, flush=True)
    await box.close()
    print("finished", flush=True)


def publisher_argv(url: str, domain: str, count: int) -> list[str]:
    """The command of a publisher process putting ``count`` items (keys ``key-<i>``),
    printing ``put <key> <id>`` after each put returned."""
    return [sys.executable, str(Path(__file__)), url, domain, str(count)]


if __name__ == "__main__":
    asyncio.run(_publish(sys.argv[1], sys.argv[2], int(sys.argv[3])))
