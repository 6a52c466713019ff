"""Outbox backends benchmark: deferred requests per second delivered to a tier server with
exactly-once effect, through each backend, side by side in one run.

A ``tierwise serve`` process serves a small ONNX model; every delivery carries its item's
idempotency key, and the model's success counter must grow by exactly the number of
items in each part (no loss, no double effect).

1. **Direct**: the delivery code calls the tier server for in-memory items, in batches
   of the consumer's fetch size (the ceiling any queue can reach); measured before and
   after the others, the faster run is the baseline.
2. **JetStream**: items published on a leaf node (its own JetStream domain), sourced to
   the hub's stream, consumed there by :class:`NatsDrainer` (durable pull consumer,
   explicit acks) with the same delivery code; timed from the first publish to the last
   ack. Target: >= 50% of the direct rate.
3. **SQLite**: the default :class:`Outbox` with its :class:`Drainer`, same delivery code
   (reported beside the others).

Prints one JSON line; exits 1 when the target or the exactly-once check is missed.
"""

from __future__ import annotations

import argparse
import asyncio
import shutil
import sys
import tempfile
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import httpx
import orjson

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tests"))  # a model
sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tests" / "outbox"))  # NATS

from harness import free_port, server
from nats_helpers import infer_body, model_runs, nats_pair, tier_deliver

from onnx_models import scale_model
from tierwise.outbox import (
    Drainer,
    DrainerSettings,
    NatsDrainer,
    NatsOutbox,
    NatsOutboxSettings,
    Outbox,
    OutboxItem,
)

TARGET_RATIO = 0.5
PUBLISH_CONCURRENCY = 64


async def _until_delivered(drainer: Drainer | NatsDrainer, n: int, limit_s: float = 600) -> None:
    deadline = time.monotonic() + limit_s
    while drainer.delivered < n:
        if time.monotonic() > deadline:
            raise RuntimeError(f"only {drainer.delivered} of {n} items delivered")
        await asyncio.sleep(0.005)


async def _direct(
    deliver: Callable[[OutboxItem], Awaitable[bytes]],
    n: int,
    batch: int,
    *,
    key_prefix: str = "direct",
) -> float:
    items = [
        OutboxItem(
            id=f"{key_prefix}-{i}",
            tier="cloud",
            payload=infer_body(i),
            meta={"i": i},
            status="leased",
            attempts=1,
            not_before_s=0.0,
            created_s=0.0,
            updated_s=0.0,
            idempotency_key=f"{key_prefix}-{i}",
        )
        for i in range(n)
    ]
    started = time.perf_counter()
    for first in range(0, n, batch):
        await asyncio.gather(*(deliver(item) for item in items[first : first + batch]))
    return time.perf_counter() - started


async def _jetstream(
    deliver: Callable[[OutboxItem], Awaitable[bytes]], n: int, batch: int, folder: Path
) -> tuple[float, int]:
    with nats_pair(folder) as pair:
        edge = NatsOutboxSettings(url=pair.leaf_url, domain=pair.leaf_domain)
        hub = NatsOutboxSettings(
            url=pair.hub_url, hub_domain=pair.hub_domain, source_domains=(pair.leaf_domain,),
            fetch_batch=batch, fetch_timeout_s=0.05,
        )  # fmt: skip
        drainer = NatsDrainer(hub, "cloud", deliver)
        async with drainer, await NatsOutbox.open(edge) as box:
            gate = asyncio.Semaphore(PUBLISH_CONCURRENCY)

            async def put(i: int) -> str:
                async with gate:
                    return await box.put(
                        "cloud", infer_body(i), idempotency_key=f"js-{i}", meta={"i": i}
                    )

            started = time.perf_counter()
            await asyncio.gather(*(put(i) for i in range(n)))
            await _until_delivered(drainer, n)
            elapsed = time.perf_counter() - started
            await asyncio.sleep(0.5)  # a late redelivery would show in the count below
        return elapsed, drainer.delivered


async def _sqlite(
    deliver: Callable[[OutboxItem], Awaitable[bytes]], n: int, batch: int, folder: Path
) -> float:
    box = Outbox(folder / "outbox.db", max_items=n)
    settings = DrainerSettings(poll_s=0.01, batch_size=batch)
    try:
        drainer = Drainer(box, "cloud", deliver, lambda: True, settings)
        started = time.perf_counter()
        async with drainer:
            for i in range(n):
                await asyncio.to_thread(
                    box.put, "cloud", infer_body(i), idempotency_key=f"sq-{i}", meta={"i": i}
                )
                drainer.wake()
            await _until_delivered(drainer, n)
            elapsed = time.perf_counter() - started
        return elapsed
    finally:
        box.close()


async def _run(n: int, batch: int, folder: Path, tier_url: str) -> dict[str, Any]:
    url = f"{tier_url}/v2/models/scale/infer"
    runs: dict[str, float] = {}
    limits = httpx.Limits(max_connections=batch, max_keepalive_connections=batch)
    async with httpx.AsyncClient(timeout=30, limits=limits) as client:
        deliver = tier_deliver(client, url)
        for warm in range(batch):  # connections and the model's first run
            await client.post(url, content=infer_body(warm))
        before = model_runs(tier_url)
        direct_s = await _direct(deliver, n, batch)
        runs["direct"] = model_runs(tier_url) - before
        before = model_runs(tier_url)
        jetstream_s, delivered = await _jetstream(deliver, n, batch, folder / "nats")
        runs["jetstream"] = model_runs(tier_url) - before
        before = model_runs(tier_url)
        sqlite_s = await _sqlite(deliver, n, batch, folder)
        runs["sqlite"] = model_runs(tier_url) - before
        # the direct rate again, after the others: the better of the two is the baseline
        before = model_runs(tier_url)
        direct_s = min(direct_s, await _direct(deliver, n, batch, key_prefix="direct2"))
        runs["direct_again"] = model_runs(tier_url) - before
    direct_rate, js_rate, sqlite_rate = n / direct_s, n / jetstream_s, n / sqlite_s
    return {
        "items": n,
        "batch": batch,
        "direct_per_s": round(direct_rate, 1),
        "jetstream_per_s": round(js_rate, 1),
        "sqlite_per_s": round(sqlite_rate, 1),
        "jetstream_ratio": round(js_rate / direct_rate, 3),
        "target_ratio": TARGET_RATIO,
        "jetstream_acked": delivered,
        "model_runs": {k: int(v) for k, v in runs.items()},
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--items", type=int, default=2000, help="Items per backend.")
    parser.add_argument("--batch", type=int, default=16, help="Items fetched per round.")
    args = parser.parse_args()
    if shutil.which("nats-server") is None:
        sys.stderr.write(
            "needs nats-server: scripts/system-deps.sh test (or apt-get install nats-server)\n"
        )
        return 2
    with tempfile.TemporaryDirectory(prefix="tierwise-outbox-bench-") as tmp:
        folder = Path(tmp)
        repo = folder / "repo"
        scale_model(repo / "scale" / "1" / "model.onnx", 2.0)
        port = free_port()
        argv = [sys.executable, "-m", "tierwise", "serve", "--model-repo", str(repo),
                "--port", str(port)]  # fmt: skip
        tier_url = f"http://127.0.0.1:{port}"
        with server(argv, f"{tier_url}/v2/health/ready", log=folder / "serve.log"):
            result = asyncio.run(_run(args.items, args.batch, folder, tier_url))
    misses: list[str] = []
    if result["jetstream_ratio"] < TARGET_RATIO:
        misses.append("jetstream_ratio")
    if any(count != args.items for count in result["model_runs"].values()):
        misses.append("exactly_once")
    print(orjson.dumps({"benchmark": "outbox_backends", **result, "misses": misses}).decode())
    return 1 if misses else 0


if __name__ == "__main__":
    sys.exit(main())
